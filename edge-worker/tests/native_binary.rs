//! The native binary (`cargo run -p edge-worker`): configuration errors, serving, and a
//! graceful stop on Ctrl-C.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_edge-worker");

fn base_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TWILIO_AUTH_TOKEN", "tok")
        .env("EDGE_SHARED_SECRET", "secret")
        .env("PUBLIC_WEBHOOK_BASE_URL", "https://edge.example.com")
        .env("CONTROL_URL", "http://127.0.0.1:9")
}

#[test]
fn missing_required_variable_is_named_and_exits_2() {
    for missing in [
        "TWILIO_AUTH_TOKEN",
        "EDGE_SHARED_SECRET",
        "PUBLIC_WEBHOOK_BASE_URL",
        "CONTROL_URL",
    ] {
        let out = base_env(&mut Command::new(BIN))
            .env_remove(missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{missing}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(missing), "{missing}: {stderr}");
    }
    let out = base_env(&mut Command::new(BIN))
        .env("FALLBACK_NODES", "not json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FALLBACK_NODES"));
}

#[test]
fn serves_and_stops_gracefully_on_ctrl_c() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = base_env(&mut Command::new(BIN))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Until it answers. A connection was once reset by the peer here in CI on a busy machine
    // (the cause was not established: the binary starting, or another test's socket briefly on
    // the port picked above); an I/O error means "try again", the 200 below is still required.
    let healthz = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    };
    let reply = loop {
        match healthz() {
            Ok(reply) if !reply.is_empty() => break reply,
            Ok(_) | Err(_) => {}
        }
        assert!(Instant::now() < deadline, "edge-worker did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("ok snapshot=none"), "{reply}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no graceful stop within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
}
