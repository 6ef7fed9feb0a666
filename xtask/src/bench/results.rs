//! The results file: `bench/results/<date>-<host>[-quick].md` for people and `.json` with every
//! figure, plus the summary printed at the end of the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::load_run::{LoadRun, largest_clean, round2};
use super::machine::Machine;

/// The edge benchmark's outcome.
#[derive(Debug)]
pub enum EdgeResult {
    /// `--skip-edge`.
    Skipped,
    /// Its printed report.
    Measured(String),
    /// Why it could not run.
    Failed(String),
}

/// Everything one `cargo xtask bench` measured.
#[derive(Debug)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command as typed.
    pub command: String,
    /// When (UTC).
    pub date: String,
    /// `--quick`.
    pub quick: bool,
    /// Node and generator on separate cores.
    pub pinned: bool,
    /// Everything ran at nice −15 (as root), ahead of other work on the shared machine.
    pub niced: bool,
    /// Seconds each call stayed up.
    pub hold_s: u64,
    /// Calls started per second while a run ramped up.
    pub ramp_rate: f64,
    /// The greeting's length in frames (each call must hear all of them).
    pub greeting_frames: u64,
    /// Call counts at which frame → agent latency is reported.
    pub latency_sizes: Vec<usize>,
    /// The node's capacity search.
    pub node_runs: Vec<LoadRun>,
    /// Extra node runs for latency sizes the search did not cover.
    pub node_latency_runs: Vec<LoadRun>,
    /// The baseline's capacity search.
    pub baseline_runs: Vec<LoadRun>,
    /// Why the baseline was not measured.
    pub baseline_error: Option<String>,
    /// The edge benchmark.
    pub edge: EdgeResult,
    /// How long the whole benchmark took.
    pub elapsed_s: u64,
}

/// A capacity figure: the largest clean size, and whether the search stopped above it.
fn capacity(runs: &[LoadRun]) -> (Option<usize>, bool) {
    let best = largest_clean(runs).map(|r| r.calls);
    let limited = runs.iter().any(|r| !r.problems().is_empty());
    (best, limited)
}

fn capacity_text(runs: &[LoadRun]) -> String {
    match capacity(runs) {
        (Some(n), true) => format!("{n}"),
        (Some(n), false) => format!("≥ {n} (every size tried was clean)"),
        (None, _) => "none of the sizes tried was clean".into(),
    }
}

impl Results {
    fn file_stem(&self) -> String {
        let day = self.date.split_whitespace().next().unwrap_or("undated");
        let quick = if self.quick { "-quick" } else { "" };
        format!("{day}-{}{quick}", self.machine.host)
    }

    /// Writes the Markdown and JSON files into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let md = dir.join(format!("{}.md", self.file_stem()));
        let js = dir.join(format!("{}.json", self.file_stem()));
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("writing {}", md.display()))?;
        std::fs::write(&js, serde_json::to_string_pretty(&self.to_json())? + "\n")
            .with_context(|| format!("writing {}", js.display()))?;
        Ok((md, js))
    }

    /// The node run at `calls` (search or latency run).
    fn node_run_at(&self, calls: usize) -> Option<&LoadRun> {
        self.node_runs
            .iter()
            .chain(&self.node_latency_runs)
            .find(|r| r.calls == calls)
    }

    /// The largest size both servers held cleanly, with both runs: per-call costs are compared
    /// there, at the same load.
    fn common_clean(&self) -> Option<(&LoadRun, &LoadRun)> {
        self.node_runs
            .iter()
            .filter(|n| n.problems().is_empty())
            .filter_map(|n| {
                let b = self
                    .baseline_runs
                    .iter()
                    .find(|b| b.calls == n.calls && b.problems().is_empty())?;
                Some((n, b))
            })
            .max_by_key(|(n, _)| n.calls)
    }

    fn configuration(&self) -> String {
        let pinning = if self.pinned {
            "the server under test (voice node, or the baseline relay) pinned to CPU 1 with \
             `taskset`; the load generator, the edge and Postgres pinned to CPU 0. The server \
             therefore has one core to itself; its figures are one-core figures"
        } else {
            "no pinning (`--no-pin`): server, load generator, edge and Postgres share every core, \
             so at high load the generator takes CPU from the server"
        };
        let priority = if self.niced {
            "All benchmark processes (server, generator, edge, Postgres) ran at nice −15, so other \
             people's builds on this shared machine yield to them"
        } else {
            "All benchmark processes ran at nice 0 (not root), competing equally with any other \
             work on the machine"
        };
        format!(
            "{pinning}. {priority}. Calls start at {rate} a second (the ramp of a run of N calls \
             lasts N / {rate} s, at least 1 s). Each call: a signed voice webhook to the edge, TwiML followed, a signed \
             Media Stream to the node (stream token checked), caller line noise streamed in \
             real time (50 frames/s) for {} s, the agent's greeting ({} frames, {:.1} s) played \
             back paced and its mark echoed. Agent: `GreetingRecorder` (no models; \
             `CALLGATE_MODELS_DIR` empty), energy VAD on every inbound frame. Node: release \
             build, `RUST_LOG=warn`, `NODE_CAPACITY=100000` (so the search finds the node's \
             limit). Load generator: `voice-node simulate --load N` (release). Baseline: the \
             same generator straight to the relay's WebSocket (`--stream-url`; no webhook, no \
             token).",
            self.hold_s,
            self.greeting_frames,
            self.greeting_frames as f64 * 0.02,
            rate = self.ramp_rate,
        )
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# callgate benchmark{}: {}\n",
            if self.quick { " (--quick)" } else { "" },
            self.date
        );
        let _ = writeln!(o, "- Machine: {}", self.machine.describe());
        let _ = writeln!(o, "- Command: `{}`", self.command);
        let _ = writeln!(o, "- Date: {} ({} s in all)", self.date, self.elapsed_s);
        let _ = writeln!(o, "- Configuration: {}", self.configuration());
        let _ = writeln!(
            o,
            "- Shared machine: \"other load\" is the whole machine's busy cores (/proc/stat) \
             minus steal, the server's and the generator's, averaged over the run (the edge and \
             Postgres are in it, a few hundredths of a core); more than that means other work \
             (builds, tests) ran at the same time. \"stolen\" is the VM's steal time: cores the \
             hypervisor gave to other guests, which no priority inside the VM gets back. \
             \"stalls\" come from a probe on the server's core at the server's priority that \
             only sleeps 2 ms at a time: each is a wake-up 20 ms or more late, a moment when \
             nothing on that core could run, so a frame due then was late whatever the server \
             did. Runs are judged on late frames alone; the stalls say which late frames the \
             machine explains.\n"
        );

        let _ = writeln!(o, "## Summary\n");
        let _ = writeln!(o, "{}\n", self.summary());

        let _ = writeln!(o, "## Voice node: capacity search\n");
        run_table(&mut o, &self.node_runs, true);
        if !self.node_latency_runs.is_empty() {
            let _ = writeln!(o, "\nExtra runs for latency:\n");
            run_table(&mut o, &self.node_latency_runs, true);
        }

        let _ = writeln!(o, "\n## Inbound frame → agent event latency\n");
        let _ = writeln!(
            o,
            "From the node's `callgate_agent_event_latency_ms` histogram: bucket deltas over \
             the run, percentiles by linear interpolation inside a bucket (buckets 0.01, 0.025, \
             0.05, 0.1, 0.25, 0.5, 1, 2, 5 … ms), so p50/p99 are estimates; the mean is exact \
             (sum / count). The hop measured: an inbound `media` frame read and parsed from the \
             socket → the agent task receiving it.\n"
        );
        let _ = writeln!(
            o,
            "| calls | frames | p50 | p99 | mean |\n|---:|---:|---:|---:|---:|"
        );
        for &n in &self.latency_sizes {
            match self.node_run_at(n).and_then(|r| r.agent_event) {
                Some(h) => {
                    let _ = writeln!(
                        o,
                        "| {n} | {} | {:.3} ms | {:.3} ms | {:.3} ms |",
                        h.count, h.p50, h.p99, h.mean
                    );
                }
                None => {
                    let _ = writeln!(o, "| {n} | – | not measured | | |");
                }
            }
        }

        let _ = writeln!(
            o,
            "\n## Baseline: Node.js relay (Fastify + @fastify/websocket)\n"
        );
        let _ = writeln!(
            o,
            "`bench/node-relay/relay.js`: a Media Streams relay written the way Twilio's Node.js \
             samples are, doing what the minimal agent does (greeting in 20 ms frames paced on a \
             schedule, a mark after it, an energy check per inbound frame) but no signature or \
             token check and no database. A baseline for comparison, not part of callgate.\n"
        );
        match &self.baseline_error {
            Some(err) => {
                let _ = writeln!(o, "Not measured: {err}");
            }
            None if self.baseline_runs.is_empty() => {
                let _ = writeln!(o, "Skipped (`--skip-baseline`).");
            }
            None => run_table(&mut o, &self.baseline_runs, false),
        }

        let _ = writeln!(o, "\n## Edge\n");
        match &self.edge {
            EdgeResult::Skipped => {
                let _ = writeln!(o, "Skipped (`--skip-edge`).");
            }
            EdgeResult::Failed(err) => {
                let _ = writeln!(o, "Not measured: {err}");
            }
            EdgeResult::Measured(text) => {
                let _ = writeln!(
                    o,
                    "`bench_edge` (run by this command as `cargo xtask bench-edge` does): signed \
                     inbound webhooks, sequential over keep-alive, loopback, snapshot cached.\n\n\
                     ```text\n{text}\n```"
                );
            }
        }
        let _ = writeln!(
            o,
            "\n## Definitions\n\n\
             - Clean run: every call completed without error; no greeting frame arrived more than \
             20 ms after the caller's playback buffer ran dry (the simulator models Twilio's \
             buffer); every call heard every greeting frame; the node counted no frame sent more \
             than 20 ms behind its schedule and dropped none.\n\
             - Callback errors: status callbacks (the call's final status, the stream's start and \
             stop) the edge did not accept, e.g. its 503 when no node took the forwarded event. \
             Counted apart and not part of \"clean\": they travel edge → node beside the media and \
             say nothing about frames; a call whose only error is one still counts as completed \
             without error.\n\
             - Memory per call: (peak RSS − RSS before the run) / peak concurrent streams.\n\
             - CPU per call: the server's utime+stime while all calls were up (end of ramp to \
             first hang-up) / seconds / calls, as % of one core.\n\
             - Generator saturated: the generator sent a caller frame more than 20 ms late, or \
             used more than 0.9 of a core: the server's figures at that size are then a lower \
             bound of what it can do."
        );
        o
    }

    /// A few lines for the terminal and the top of the report.
    pub fn summary(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "- Voice node, most concurrent calls with zero late and zero dropped frames: **{}** \
             (target 2,000)",
            capacity_text(&self.node_runs)
        );
        if let Some(best) = largest_clean(&self.node_runs) {
            let _ = writeln!(
                o,
                "- At {} calls: {:.1} KiB and {:.3}% of one core per call (node {:.2} cores, \
                 generator {:.2} cores{}){}",
                best.calls,
                best.rss_per_call_kib(),
                best.cpu_percent_per_call(),
                best.server_cores(),
                best.generator_cores(),
                if best.generator_bound() {
                    ", saturated"
                } else {
                    ""
                },
                match best.callback_errors() {
                    0 => String::new(),
                    n => format!(
                        "; {n} status callbacks not accepted by the edge (not a frame problem, see Definitions)"
                    ),
                }
            );
        }
        for &n in &self.latency_sizes {
            if let Some(h) = self.node_run_at(n).and_then(|r| r.agent_event) {
                let _ = writeln!(
                    o,
                    "- Inbound frame → agent event at {n} calls: p50 {:.3} ms, p99 {:.3} ms \
                     (histogram estimate; mean {:.3} ms)",
                    h.p50, h.p99, h.mean
                );
            }
        }
        if !self.baseline_runs.is_empty() {
            let _ = writeln!(
                o,
                "- Node.js relay baseline, same measure: **{}**",
                capacity_text(&self.baseline_runs)
            );
            let (node_cap, _) = capacity(&self.node_runs);
            let (base_cap, base_limited) = capacity(&self.baseline_runs);
            if let (Some(n), Some(b)) = (node_cap, base_cap) {
                let _ = writeln!(
                    o,
                    "- Ratio, calls at zero late frames: {:.2}× ({n} / {}{b})",
                    n as f64 / b as f64,
                    if base_limited { "" } else { "≥ " }
                );
            }
            if let Some((n, b)) = self.common_clean() {
                let _ = writeln!(
                    o,
                    "- At {} calls (largest size both held cleanly): CPU per call relay / node \
                     {:.2}× ({:.3}% vs {:.3}% of a core), memory per call relay / node {:.2}× \
                     ({:.1} vs {:.1} KiB)",
                    n.calls,
                    b.cpu_percent_per_call() / n.cpu_percent_per_call().max(1e-9),
                    b.cpu_percent_per_call(),
                    n.cpu_percent_per_call(),
                    b.rss_per_call_kib() / n.rss_per_call_kib().max(1e-9),
                    b.rss_per_call_kib(),
                    n.rss_per_call_kib()
                );
            }
        }
        if let EdgeResult::Measured(text) = &self.edge {
            for line in text.lines().filter(|l| {
                l.starts_with("workerd")
                    || l.starts_with("native")
                    || l.starts_with("bundle")
                    || l.starts_with("ratio")
            }) {
                let _ = writeln!(
                    o,
                    "- Edge: {}",
                    line.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        o.trim_end().to_owned()
    }

    /// Every figure as JSON.
    pub fn to_json(&self) -> Value {
        let runs = |rs: &[LoadRun]| rs.iter().map(LoadRun::to_json).collect::<Vec<_>>();
        let (node_cap, node_limited) = capacity(&self.node_runs);
        let (base_cap, base_limited) = capacity(&self.baseline_runs);
        json!({
            "date": self.date,
            "command": self.command,
            "machine": self.machine.to_json(),
            "quick": self.quick,
            "pinned": self.pinned,
            "nice_minus_15": self.niced,
            "configuration": self.configuration(),
            "hold_s": self.hold_s,
            "ramp_calls_per_s": self.ramp_rate,
            "greeting_frames": self.greeting_frames,
            "elapsed_s": self.elapsed_s,
            "node": {
                "capacity_calls": node_cap,
                "capacity_is_lower_bound": !node_limited,
                "runs": runs(&self.node_runs),
                "latency_runs": runs(&self.node_latency_runs),
            },
            "baseline": {
                "capacity_calls": base_cap,
                "capacity_is_lower_bound": !base_limited,
                "error": self.baseline_error,
                "runs": runs(&self.baseline_runs),
            },
            "ratios": self.common_clean().map(|(n, b)| json!({
                "at_calls": n.calls,
                "cpu_per_call_relay_over_node": round2(b.cpu_percent_per_call() / n.cpu_percent_per_call().max(1e-9)),
                "memory_per_call_relay_over_node": round2(b.rss_per_call_kib() / n.rss_per_call_kib().max(1e-9)),
            })),
            "capacity_ratio_node_over_relay": match (node_cap, base_cap) {
                (Some(n), Some(b)) => Some(round2(n as f64 / b as f64)),
                _ => None,
            },
            "edge": match &self.edge {
                EdgeResult::Skipped => json!({"skipped": true}),
                EdgeResult::Failed(e) => json!({"error": e}),
                EdgeResult::Measured(text) => json!({"report": text}),
            },
        })
    }
}

fn run_table(o: &mut String, runs: &[LoadRun], node: bool) {
    let _ = writeln!(
        o,
        "| calls | result | late at caller | {}missing greeting frames | callback errors | RSS / call | CPU / call | server cores | generator cores | other load | stolen | stalls ≥ 20 ms on the server's core |",
        if node { "node late / dropped | " } else { "" }
    );
    let _ = writeln!(
        o,
        "|---:|---|---:|{}---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        if node { "---:|" } else { "" }
    );
    for r in runs {
        let problems = r.problems();
        let result = if problems.is_empty() {
            "clean".to_owned()
        } else {
            problems.join("; ")
        };
        let node_cols = if node {
            format!(
                "{} / {} | ",
                r.node_late.unwrap_or(0.0),
                r.node_dropped.unwrap_or(0.0)
            )
        } else {
            String::new()
        };
        let other = (r.machine_cores_busy
            - r.machine_cores_stolen
            - r.server_cores()
            - r.generator_cores())
        .max(0.0);
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {node_cols}{} | {} | {:.1} KiB | {:.3}% | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.calls,
            result,
            if r.generator_bound() {
                " (generator saturated)"
            } else {
                ""
            },
            r.late_frames(),
            r.missing_frames(),
            r.callback_errors(),
            r.rss_per_call_kib(),
            r.cpu_percent_per_call(),
            r.server_cores(),
            r.generator_cores(),
            other,
            r.machine_cores_stolen,
            r.stalls
                .as_ref()
                .map_or_else(|| "not measured".to_owned(), |s| s.describe())
        );
    }
}
