//! Edge benchmark (`cargo xtask bench-edge` builds the bundle and runs this in release mode):
//! 2,000 signed inbound webhooks, one at a time over a keep-alive connection, against the WASM
//! Worker in workerd and against the native build, both on loopback with the snapshot cached.
//!
//! Prints p50/p99/mean latency, CPU time per request of the server process (from
//! `/proc/PID/stat`, so it includes HTTP parsing and logging), the workerd/native ratio, and
//! the bundle size raw and gzipped.
//!
//! Usage: `bench_edge [--requests N] [--native-bin PATH]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::workerd::{Workerd, free_port, repo_root};
use common::*;
use edge_worker::platform::Clock;

struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    cpu_ms_per_request: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// utime + stime of a process, in ms (Linux; `None` elsewhere).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the name, they are at indices 11 and 12.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = 100.0; // USER_HZ on Linux
    Some(ticks * 1000.0 / hz)
}

async fn run(client: &reqwest::Client, base_url: &str, pid: u32, requests: usize) -> Stats {
    let request = |i: usize| {
        let call_sid = format!("CA{i:032x}");
        let params = with(voice_params(SCREENING_NUMBER, CALLER), "CallSid", &call_sid);
        let sig =
            shared::signature::compute(AUTH_TOKEN, &format!("{BASE}/telephony/inbound"), &params);
        let body = shared::form::Form::from_pairs(params).to_urlencoded();
        client
            .post(format!("{base_url}/telephony/inbound"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .header("x-home-region", "us1")
            .body(body)
    };
    // Warm up: snapshot pulled, JIT/caches warm, connection open.
    for i in 0..200 {
        let r = request(i).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    let cpu_before = cpu_ms(pid);
    let mut latencies = Vec::with_capacity(requests);
    for i in 0..requests {
        let req = request(1_000 + i);
        let t0 = Instant::now();
        let r = req.send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(
            status == 200 && body.contains("<Stream "),
            "{status}: {body}"
        );
    }
    let cpu_after = cpu_ms(pid);
    latencies.sort_by(f64::total_cmp);
    Stats {
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        mean_ms: latencies.iter().sum::<f64>() / latencies.len() as f64,
        cpu_ms_per_request: cpu_before
            .zip(cpu_after)
            .map(|(a, b)| (b - a) / requests as f64),
    }
}

struct Native(Child);

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gzip_size(path: &std::path::Path) -> Option<usize> {
    let out = Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len())
}

fn print_stats(name: &str, s: &Stats) {
    let cpu = s
        .cpu_ms_per_request
        .map(|c| format!("{c:.3} ms"))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "{name:<16} p50 {:>7.3} ms   p99 {:>7.3} ms   mean {:>7.3} ms   server CPU/request {cpu}",
        s.p50_ms, s.p99_ms, s.mean_ms
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let requests: usize = arg("--requests")
        .map(|n| n.parse().unwrap())
        .unwrap_or(2_000);
    let native_bin = arg("--native-bin")
        .map(Into::into)
        .unwrap_or_else(|| repo_root().join("target/release/edge-worker"));

    let node = FakeNode::start(Clock::system()).await;
    node.set_snapshot(Some(standard_snapshot(&node.base(), NOW_S)));
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    let control = node.base();
    let bindings = [
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("EDGE_SHARED_SECRET", secret.as_str()),
        ("PUBLIC_WEBHOOK_BASE_URL", BASE),
        ("CONTROL_URL", control.as_str()),
        // Cached for the whole run, so both sides measure webhook handling, not pulls.
        ("SNAPSHOT_TTL_MS", "3600000"),
    ];

    let dist = repo_root().join("edge-worker/dist");
    let wasm = std::fs::metadata(dist.join("index_bg.wasm"))
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let js = std::fs::metadata(dist.join("index.js"))
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let wasm_gz = gzip_size(&dist.join("index_bg.wasm")).unwrap_or(0);
    let js_gz = gzip_size(&dist.join("index.js")).unwrap_or(0);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();

    let workerd = Workerd::start(&bindings);
    let wasm_stats = run(&client, &workerd.url(""), workerd.pid(), requests).await;
    drop(workerd);

    let port = free_port();
    let mut cmd = Command::new(&native_bin);
    cmd.envs(bindings.iter().map(|(k, v)| (*k, *v)))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let native = Native(cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "start {} ({e}); build it with cargo build --release -p edge-worker",
            native_bin.display()
        )
    }));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let native_stats = run(&client, &base, native.0.id(), requests).await;
    drop(native);

    println!(
        "\nedge benchmark: {requests} signed inbound webhooks (screening → <Connect><Stream>), sequential, loopback"
    );
    print_stats("workerd (WASM)", &wasm_stats);
    print_stats("native (tokio)", &native_stats);
    println!(
        "ratio workerd/native: p50 {:.2}x   p99 {:.2}x",
        wasm_stats.p50_ms / native_stats.p50_ms,
        wasm_stats.p99_ms / native_stats.p99_ms
    );
    println!(
        "bundle: index_bg.wasm {wasm} B ({wasm_gz} B gzip -9), index.js {js} B ({js_gz} B gzip -9); total gzipped {} B",
        wasm_gz + js_gz
    );
    let ok = wasm_stats.p99_ms < 5.0 && wasm_gz + js_gz < 1_000_000;
    println!(
        "targets (p99 < 5 ms in workerd, bundle < 1 MB gzipped): {}",
        if ok { "met" } else { "NOT met" }
    );
}
