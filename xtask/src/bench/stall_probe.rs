//! A stall probe beside the server under test: a process on the server's core, at the server's
//! priority, that does nothing but sleep 2 ms at a time and note every wake-up that came much
//! later than asked.
//!
//! Why: "zero late frames over a 30 s run" fails on a single 25 ms hiccup, and on this shared VM
//! the hypervisor and the kernel cause such hiccups whatever the server does (VM steal comes in
//! bursts). A late frame the probe's stall explains says nothing about the server; one without
//! a stall does. The probe costs ~500 wake-ups a second and no measurable CPU, and it does not
//! change what counts as late: runs are judged as before, and the stalls are reported beside
//! them.
//!
//! The probe is `cargo xtask __stall-probe` (hidden), started by the bench under `taskset` and
//! `nice` like the server; it runs until its stdin closes, then prints one JSON line.

use std::io::{Read as _, Write as _};
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

/// How long the probe sleeps at a time.
const TICK: Duration = Duration::from_millis(2);
/// An oversleep this long is a stall: the length after which a frame counts as late.
const STALL: Duration = Duration::from_millis(20);
/// Stalls listed one by one in the report (all are counted).
const LISTED: usize = 20;

/// What the probe saw over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stalls {
    /// Wake-ups at least [`STALL`] late.
    pub count: u64,
    /// The longest oversleep, ms.
    pub max_ms: f64,
    /// The first [`LISTED`] stalls: (seconds since the probe started, ms late).
    pub first: Vec<(f64, f64)>,
}

impl Stalls {
    fn from_json(v: &Value) -> Option<Self> {
        Some(Stalls {
            count: v["stalls"].as_u64()?,
            max_ms: v["max_ms"].as_f64()?,
            first: v["first"]
                .as_array()?
                .iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect(),
        })
    }

    /// The results file's JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "stalls_20ms": self.count,
            "max_oversleep_ms": self.max_ms,
            "first": self.first,
        })
    }

    /// "2 (max 41 ms)" or "0".
    pub fn describe(&self) -> String {
        if self.count == 0 {
            "0".to_owned()
        } else {
            format!("{} (max {:.0} ms)", self.count, self.max_ms)
        }
    }
}

/// `cargo xtask __stall-probe`: sleeps and measures until stdin closes, then prints the JSON.
pub fn main() -> ExitCode {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        flag.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let (mut count, mut max) = (0u64, Duration::ZERO);
    let mut first = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let before = Instant::now();
        std::thread::sleep(TICK);
        let over = before.elapsed().saturating_sub(TICK);
        max = max.max(over);
        if over >= STALL {
            count += 1;
            if first.len() < LISTED {
                first.push(json!([
                    round1(before.duration_since(started).as_secs_f64()),
                    round1(over.as_secs_f64() * 1000.0)
                ]));
            }
        }
    }
    let report = json!({
        "stalls": count,
        "max_ms": round1(max.as_secs_f64() * 1000.0),
        "first": first,
    });
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{report}");
    ExitCode::SUCCESS
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A running probe.
#[derive(Debug)]
pub struct Probe(Child);

impl Probe {
    /// Starts the probe on `cpus` (a `taskset` list) at the benchmark's priority, like the
    /// server it watches.
    pub fn start(cpus: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the xtask binary for the probe")?;
        let child = super::pinned(cpus, &exe.to_string_lossy(), &["__stall-probe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the stall probe")?;
        Ok(Probe(child))
    }

    /// Stops the probe and returns what it saw (`None`, with a message, if it printed nothing).
    pub fn finish(mut self) -> Option<Stalls> {
        drop(self.0.stdin.take());
        let output = self.0.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let stalls = serde_json::from_str(text.trim())
            .ok()
            .and_then(|v: Value| Stalls::from_json(&v));
        if stalls.is_none() {
            println!("  (the stall probe printed no report: {})", text.trim());
        }
        stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_probe_report_and_describes_it() {
        let v: Value =
            serde_json::from_str(r#"{"stalls":2,"max_ms":41.3,"first":[[3.2,25.0],[3.4,41.3]]}"#)
                .unwrap();
        let stalls = Stalls::from_json(&v).unwrap();
        assert_eq!(
            stalls,
            Stalls {
                count: 2,
                max_ms: 41.3,
                first: vec![(3.2, 25.0), (3.4, 41.3)]
            }
        );
        assert_eq!(stalls.describe(), "2 (max 41 ms)");
        assert_eq!(Stalls::default().describe(), "0");
        assert!(Stalls::from_json(&json!({"stalls": "two"})).is_none());
    }
}
