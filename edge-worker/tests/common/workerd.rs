//! Runs the WASM bundle (`edge-worker/dist/`, built by `cargo xtask edge-bundle`) in workerd
//! (`node_modules/.bin/workerd`, from `npm ci`) on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("edge-worker sits in the repository")
        .to_owned()
}

/// Panics with instructions when the bundle or the npm packages are missing.
pub fn require_bundle_and_npm() {
    let root = repo_root();
    let missing: Vec<String> = [
        "edge-worker/dist/index.js",
        "edge-worker/dist/index_bg.wasm",
        "node_modules/.bin/workerd",
        "node_modules/twilio/package.json",
    ]
    .iter()
    .filter(|p| !root.join(p).exists())
    .map(|p| p.to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "\n\nThe workerd end-to-end test needs the WASM bundle and the npm packages; missing: {}.\n\
         Build them with:\n    cargo xtask edge-bundle   # edge-worker/dist/\n    npm ci                    # node_modules/ (workerd, twilio)\n\
         or run everything with `cargo xtask test edge-e2e`.\n",
        missing.join(", ")
    );
}

/// A free loopback port (bound, read, released: workerd binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running workerd; killed on drop.
pub struct Workerd {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Workerd {
    /// Starts workerd serving the bundle with these text bindings, and waits for `/healthz`.
    pub fn start(bindings: &[(&str, &str)]) -> Workerd {
        require_bundle_and_npm();
        let root = repo_root();
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("callgate-workerd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["index.js", "index_bg.wasm"] {
            std::fs::copy(root.join("edge-worker/dist").join(file), dir.join(file)).unwrap();
        }
        std::fs::write(dir.join("config.capnp"), capnp_config(port, bindings)).unwrap();
        let log = std::fs::File::create(dir.join("workerd.log")).unwrap();
        let child = Command::new(root.join("node_modules/.bin/workerd"))
            .arg("serve")
            .arg(dir.join("config.capnp"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start node_modules/.bin/workerd");
        let mut workerd = Workerd { port, child, dir };
        workerd.wait_ready();
        workerd
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// workerd's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("workerd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("workerd exited with {status}:\n{}", self.log());
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = stream.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "workerd did not answer /healthz within 15 s:\n{}",
            self.log()
        );
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A capnp string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// workerd config: the bundle's two modules, text bindings for vars and secrets, and an
/// outbound network that may reach loopback (workerd's default allows only public addresses,
/// and the fake control node listens on 127.0.0.1).
pub fn capnp_config(port: u16, bindings: &[(&str, &str)]) -> String {
    let bindings: Vec<String> = bindings
        .iter()
        .map(|(name, value)| format!("    (name = {}, text = {}),", quote(name), quote(value)))
        .collect();
    format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .edgeWorker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "main") ],
);
const edgeWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2026-04-01",
  globalOutbound = "internet",
  bindings = [
{}
  ],
);
"#,
        bindings.join("\n")
    )
}
