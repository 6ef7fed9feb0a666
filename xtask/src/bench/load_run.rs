//! One `voice-node simulate --load N` run against a server, with what the server and the machine
//! did during it, and the upward search for the most calls a server holds cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::machine::CpuTimes;
use super::scrape::{HistogramDelta, Scrape};
use super::stall_probe::{Probe, Stalls};

/// The server under load.
#[derive(Debug, Clone)]
pub struct Target {
    /// For the report: "voice node" or "Node.js relay (baseline)".
    pub name: &'static str,
    /// `simulate` arguments that pick the server (`--edge …` or `--stream-url …`).
    pub route: Vec<String>,
    /// The server process, sampled from /proc by the simulator.
    pub pid: u32,
    /// The node's `host:port`, for `/metrics` (`None` for the baseline, which has none).
    pub metrics_addr: Option<String>,
}

/// How the load generator is run.
#[derive(Debug, Clone)]
pub struct Generator {
    /// `voice-node` (release).
    pub bin: String,
    /// `taskset -c LIST` prefix, when pinning.
    pub cpus: Option<String>,
    /// `nice -n N` prefix, when running as root.
    pub nice: Option<String>,
    /// `TWILIO_AUTH_TOKEN` to sign with.
    pub auth_token: String,
    /// Seconds each call stays up.
    pub hold_s: u64,
    /// The greeting's length in whole 20 ms frames: each call should hear at least this many.
    pub greeting_frames: u64,
    /// Calls started per second (the ramp lasts `calls / ramp_rate` s, at least 1 s).
    pub ramp_rate: f64,
    /// The server's core, where the stall probe runs (`None`: unpinned, anywhere).
    pub probe_cpus: Option<String>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// Calls placed.
    pub calls: usize,
    /// The simulator's JSON report (`LoadReport`), as printed.
    pub report: Value,
    /// Whole machine: cores busy on average during the run (steal included).
    pub machine_cores_busy: f64,
    /// Whole machine: cores taken by the hypervisor for other guests during the run.
    pub machine_cores_stolen: f64,
    /// Node counters over the run (node only): late, dropped out, dropped in.
    pub node_late: Option<f64>,
    /// See [`LoadRun::node_late`].
    pub node_dropped: Option<f64>,
    /// Inbound frame → agent event latency over the run (node only).
    pub agent_event: Option<HistogramDelta>,
    /// Stalls on the server's core during the run, from the probe (see `stall_probe`).
    pub stalls: Option<Stalls>,
    /// Wall time of the run.
    pub wall_s: f64,
}

impl LoadRun {
    fn u64_at(&self, path: &[&str]) -> u64 {
        let mut v = &self.report;
        for key in path {
            v = &v[*key];
        }
        v.as_u64().unwrap_or(0)
    }

    fn f64_at(&self, path: &[&str]) -> f64 {
        let mut v = &self.report;
        for key in path {
            v = &v[*key];
        }
        v.as_f64().unwrap_or(0.0)
    }

    /// Agent frames that arrived late at the caller (the simulator's playback model).
    pub fn late_frames(&self) -> u64 {
        self.u64_at(&["late_frames"])
    }

    /// Greeting frames that never arrived, over all completed calls.
    pub fn missing_frames(&self) -> u64 {
        let completed = self.u64_at(&["completed"]);
        let received = self.u64_at(&["frames_received"]);
        (completed * self.greeting_frames()).saturating_sub(received)
    }

    fn greeting_frames(&self) -> u64 {
        self.report["bench_greeting_frames"].as_u64().unwrap_or(0)
    }

    /// Status callbacks (the call's final status, the stream's start/stop) that the edge did
    /// not accept, e.g. its 503 when no node took the forwarded event (the simulator's
    /// `callback_errors`). They are reported, not judged: a callback travels edge → node after
    /// (or beside) the media and says nothing about frames.
    pub fn callback_errors(&self) -> u64 {
        self.u64_at(&["callback_errors"])
    }

    /// Calls that reported an error other than a status callback's answer (the simulator's
    /// `failed_beyond_callbacks`: a call whose only error is a callback is not counted).
    pub fn failed_calls(&self) -> u64 {
        self.u64_at(&["failed_beyond_callbacks"])
    }

    /// Why this run is not clean (empty: every call completed without a call error, no late,
    /// dropped or missing frame anywhere). Status callback errors are not in it
    /// ([`LoadRun::callback_errors`]).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let calls = self.calls as u64;
        let completed = self.u64_at(&["completed"]);
        if completed < calls {
            out.push(format!(
                "{} of {calls} calls did not complete",
                calls - completed
            ));
        }
        let failed = self.failed_calls();
        if failed > 0 {
            out.push(format!("{failed} calls reported errors"));
        }
        if self.late_frames() > 0 {
            out.push(format!("{} late frames at the caller", self.late_frames()));
        }
        if self.missing_frames() > 0 {
            out.push(format!("{} greeting frames missing", self.missing_frames()));
        }
        if let Some(late) = self.node_late.filter(|&n| n > 0.0) {
            out.push(format!("{late} frames sent late by the node"));
        }
        if let Some(dropped) = self.node_dropped.filter(|&n| n > 0.0) {
            out.push(format!("{dropped} frames dropped by the node"));
        }
        out
    }

    /// Whether the generator itself fell behind (its sends more than 20 ms late, or its core
    /// nearly full): then the server's figures are a lower bound.
    pub fn generator_bound(&self) -> bool {
        self.u64_at(&["send_late_frames"]) > 0 || self.f64_at(&["simulator", "cores_used"]) > 0.9
    }

    /// The server's memory per call, KiB ((peak − before) / peak streams).
    pub fn rss_per_call_kib(&self) -> f64 {
        self.f64_at(&["node", "rss_per_call_kib"])
    }

    /// The server's CPU per call while all calls were up, % of one core.
    pub fn cpu_percent_per_call(&self) -> f64 {
        self.f64_at(&["node", "cpu_ms_per_call_second"]) / 10.0
    }

    /// The server's cores in use while all calls were up.
    pub fn server_cores(&self) -> f64 {
        self.f64_at(&["node", "cores_used_at_peak"])
    }

    /// The generator's cores in use over the run.
    pub fn generator_cores(&self) -> f64 {
        self.f64_at(&["simulator", "cores_used"])
    }

    /// The JSON kept in the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "clean": self.problems().is_empty(),
            "problems": self.problems(),
            "callback_errors": self.callback_errors(),
            "failed_calls": self.failed_calls(),
            "generator_bound": self.generator_bound(),
            "late_frames_at_caller": self.late_frames(),
            "missing_greeting_frames": self.missing_frames(),
            "node_frames_late": self.node_late,
            "node_frames_dropped": self.node_dropped,
            "server_rss_per_call_kib": self.rss_per_call_kib(),
            "server_cpu_percent_of_core_per_call": self.cpu_percent_per_call(),
            "server_cores_at_peak": self.server_cores(),
            "generator_cores": self.generator_cores(),
            "machine_cores_busy": round2(self.machine_cores_busy),
            "machine_cores_stolen_by_hypervisor": round2(self.machine_cores_stolen),
            "agent_event_latency_ms": self.agent_event.map(|h| json!({
                "count": h.count, "p50": round4(h.p50), "p99": round4(h.p99), "mean": round4(h.mean),
                "method": "histogram bucket deltas from /metrics, linear interpolation",
            })),
            "server_core_stalls": self.stalls.as_ref().map(Stalls::to_json),
            "wall_s": round2(self.wall_s),
            "simulate_report": self.report,
        })
    }
}

/// The simulator's `--ramp` for `calls` started at `rate` a second: at least a second, as its
/// default, so a small run is not one burst.
fn ramp_seconds(calls: usize, rate: f64) -> String {
    format!("{:.3}", (calls as f64 / rate).max(1.0))
}

/// Runs `calls` concurrent calls against `target`.
pub fn run(generator: &Generator, target: &Target, calls: usize) -> anyhow::Result<LoadRun> {
    let before = match &target.metrics_addr {
        Some(addr) => Some(Scrape::fetch(addr)?),
        None => None,
    };
    let probe = Probe::start(generator.probe_cpus.as_deref())?;
    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    let mut argv: Vec<&str> = Vec::new();
    if let Some(nice) = &generator.nice {
        argv.extend(["nice", "-n", nice]);
    }
    if let Some(cpus) = &generator.cpus {
        argv.extend(["taskset", "-c", cpus]);
    }
    argv.push(&generator.bin);
    let mut command = Command::new(argv[0]);
    command.args(&argv[1..]);
    command
        .arg("simulate")
        .args(&target.route)
        .args(["--from", "+14155550123", "--to", super::NUMBER])
        .args(["--load", &calls.to_string()])
        .args(["--duration", &generator.hold_s.to_string()])
        .args(["--ramp", &ramp_seconds(calls, generator.ramp_rate)])
        .args(["--node-pid", &target.pid.to_string()])
        .env("TWILIO_AUTH_TOKEN", &generator.auth_token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    let out = command.output().context("running voice-node simulate");
    let stalls = probe.finish();
    let out = out?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_after = CpuTimes::now();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut report: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "simulate printed no JSON report ({}): {}",
            out.status,
            crate::demo::tail(&String::from_utf8_lossy(&out.stderr), 800)
        )
    })?;
    report["bench_greeting_frames"] = json!(generator.greeting_frames);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (node_late, node_dropped, agent_event) = match (&target.metrics_addr, &before) {
        (Some(addr), Some(before)) => {
            let after = Scrape::fetch(addr)?;
            (
                Some(after.delta(before, "callgate_frames_late_total")),
                Some(
                    after.delta(before, "callgate_frames_dropped_total")
                        + after.delta(before, "callgate_agent_frames_dropped_total"),
                ),
                HistogramDelta::between(before, &after, "callgate_agent_event_latency_ms"),
            )
        }
        _ => (None, None, None),
    };
    Ok(LoadRun {
        calls,
        report,
        machine_cores_busy: cpu_before.cores_busy_until(&cpu_after, cores),
        machine_cores_stolen: cpu_before.cores_stolen_until(&cpu_after, cores),
        node_late,
        node_dropped,
        agent_event,
        stalls,
        wall_s,
    })
}

/// Places single calls until one goes through cleanly (up to `limit`): the edge pulls its
/// routing snapshot from the node on the first webhook (stale-while-revalidate), so until then a
/// call meets the empty fallback snapshot, gets no node (the caller hears a goodbye) and its
/// status callback is answered 503. That start-up race is the harness's, not a capacity
/// figure, so it is settled before the first measured run.
pub fn warm_up(generator: &Generator, target: &Target, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let run = run(
            &Generator {
                hold_s: 1,
                ..generator.clone()
            },
            target,
            1,
        )?;
        if run.u64_at(&["completed"]) == 1 && run.u64_at(&["failed"]) == 0 {
            return Ok(());
        }
        last = run.report["errors"].to_string();
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("no warm-up call went through within {limit:?} (last errors: {last})")
}

/// Waits until the node reports no active call (the last run's sessions have wrapped up), so
/// runs do not overlap; the baseline has no metrics and gets a fixed pause.
pub fn settle(target: &Target) -> anyhow::Result<()> {
    let Some(addr) = &target.metrics_addr else {
        std::thread::sleep(Duration::from_secs(3));
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if Scrape::fetch(addr)?.get("callgate_active_calls") == 0.0 {
            std::thread::sleep(Duration::from_secs(2));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the node still had active calls 60 s after the run ended")
}

/// The capacity search over increasing `sizes`: runs each until the first run that is not
/// clean (after which larger sizes would not be clean either). Returns every run.
pub fn search(
    generator: &Generator,
    target: &Target,
    sizes: &[usize],
) -> anyhow::Result<Vec<LoadRun>> {
    let mut runs = Vec::new();
    for &calls in sizes {
        settle(target)?;
        let run = run(generator, target, calls)?;
        let problems = run.problems();
        println!(
            "  {:<28} {calls:>5} calls: {}; server {:.2} cores, {:.1} KiB and {:.3}% of a core per call; generator {:.2} cores{}",
            target.name,
            if problems.is_empty() {
                "clean".to_owned()
            } else {
                problems.join(", ")
            },
            run.server_cores(),
            run.rss_per_call_kib(),
            run.cpu_percent_per_call(),
            run.generator_cores(),
            if run.generator_bound() {
                " (generator saturated)"
            } else {
                ""
            },
        );
        let clean = problems.is_empty();
        runs.push(run);
        if !clean {
            break;
        }
    }
    Ok(runs)
}

/// The largest clean run of a search.
pub fn largest_clean(runs: &[LoadRun]) -> Option<&LoadRun> {
    runs.iter()
        .filter(|r| r.problems().is_empty())
        .max_by_key(|r| r.calls)
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `calls` calls with the simulator's report `report` (frames as a 10-frame
    /// greeting heard by every completed call unless the report says otherwise) and the node's
    /// late / dropped counters.
    fn run_with(calls: usize, report: Value, node_late: f64, node_dropped: f64) -> LoadRun {
        let mut report = report;
        report["bench_greeting_frames"] = json!(10);
        if report.get("frames_received").is_none() {
            report["frames_received"] = json!(report["completed"].as_u64().unwrap_or(0) * 10);
        }
        LoadRun {
            calls,
            report,
            machine_cores_busy: 1.0,
            machine_cores_stolen: 0.0,
            node_late: Some(node_late),
            node_dropped: Some(node_dropped),
            stalls: None,
            agent_event: None,
            wall_s: 15.0,
        }
    }

    /// The message the simulator wrote in the 2026-11-21 13:37 UTC quick run (listed in its
    /// `errors`, counted in its `callback_errors`).
    const EDGE_503: &str = "status callback http://127.0.0.1:36231/telephony/status answered \
                            HTTP 503: no voice node accepted the event; retry later";

    #[test]
    fn every_call_complete_and_no_late_frame_is_clean() {
        let r = run_with(
            100,
            json!({
                "completed": 100, "failed": 0, "late_frames": 0, "errors": [],
                "callback_errors": 0, "failed_beyond_callbacks": 0,
            }),
            0.0,
            0.0,
        );
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert_eq!((r.callback_errors(), r.failed_calls()), (0, 0));
    }

    #[test]
    fn late_dropped_or_missing_frames_are_not_clean() {
        let late = run_with(
            100,
            json!({"completed": 100, "failed": 0, "late_frames": 3}),
            0.0,
            0.0,
        );
        assert_eq!(late.problems(), ["3 late frames at the caller"]);
        let node = run_with(100, json!({"completed": 100, "failed": 0}), 5.0, 2.0);
        assert_eq!(
            node.problems(),
            [
                "5 frames sent late by the node",
                "2 frames dropped by the node"
            ]
        );
        let missing = run_with(
            100,
            json!({"completed": 100, "failed": 0, "frames_received": 995}),
            0.0,
            0.0,
        );
        assert_eq!(missing.problems(), ["5 greeting frames missing"]);
    }

    #[test]
    fn a_refused_status_callback_is_reported_but_does_not_spoil_a_clean_run() {
        let r = run_with(
            100,
            json!({
                "completed": 100, "failed": 1, "late_frames": 0,
                "errors": [{"count": 1, "message": EDGE_503}],
                "callback_errors": 1, "failed_beyond_callbacks": 0,
            }),
            0.0,
            0.0,
        );
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert_eq!(r.callback_errors(), 1);
        assert_eq!(r.failed_calls(), 0);
        assert!(r.to_json()["clean"].as_bool().unwrap());
        assert_eq!(r.to_json()["callback_errors"], 1);
    }

    #[test]
    fn a_call_that_failed_otherwise_is_not_clean_even_beside_callback_errors() {
        let r = run_with(
            100,
            json!({
                "completed": 99, "failed": 2, "late_frames": 0,
                "errors": [
                    {"count": 1, "message": EDGE_503},
                    {"count": 1, "message": "stream closed before the greeting ended"},
                ],
                "callback_errors": 1, "failed_beyond_callbacks": 1,
            }),
            0.0,
            0.0,
        );
        assert_eq!(r.callback_errors(), 1);
        assert_eq!(r.failed_calls(), 1);
        assert_eq!(
            r.problems(),
            ["1 of 100 calls did not complete", "1 calls reported errors"]
        );
    }

    #[test]
    fn failed_calls_without_callback_errors_all_count() {
        let r = run_with(
            10,
            json!({"completed": 10, "failed": 2, "failed_beyond_callbacks": 2}),
            0.0,
            0.0,
        );
        assert_eq!(r.failed_calls(), 2);
        assert_eq!(r.problems(), ["2 calls reported errors"]);
    }
}
