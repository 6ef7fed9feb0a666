//! `cargo xtask drill [--only NAME] [--soak-minutes M] [--soak-calls N]`: the failure drills of
//! issue 8, against real processes (Postgres, voice nodes, the native edge, `voice-node
//! simulate`), with a pass/fail table printed and written to `bench/drills/<date>.md`
//! (`<date>-<name>.md` with `--only`).
//!
//! Each drill builds its own small world and tears it down, so one failing does not poison the
//! next, and `--only` runs one alone. The drills (see [`scenarios`]):
//! - `sigterm`: 2 nodes + edge, 200 live calls, SIGTERM node A → all its calls finish, new calls
//!   go to B, A exits 0;
//! - `sigkill`: SIGKILL a node with live calls and a leased SMS job → the other node's reaper
//!   closes the calls (`failed`, `reaped` event) within the threshold, the job is finished
//!   there, and the Twilio fake sees the SMS sent once;
//! - `postgres`: Postgres killed (immediate shutdown) and restarted mid-call → calls go on, no
//!   turn lost, nothing dropped;
//! - `flood`: thousands of unsigned webhooks at the edge and handshakes at the node from another
//!   address while 20 real calls run → refused and rate-limited, real calls unaffected;
//! - `bad-input`: slow-loris and oversized bodies at edge and node, and every fuzz target for a
//!   short run when `cargo +nightly fuzz` is there;
//! - `soak`: N calls at a time for M minutes; node RSS and fds must stay flat;
//! - `provider-outage`: the cloud LLM returning 500s, then hanging → each call still gets its
//!   screening verdict from the offline fallback, the failure is recorded, nothing hangs.
//!
//! `cargo xtask drill` runs release builds: the drills measure the node, not the debug
//! allocator. The `drills` step of `cargo xtask test` ([`ci_step`]) runs the short drills
//! (sigterm, sigkill, postgres, flood, bad-input without fuzzing) at CI scale
//! ([`scenarios::Scale::ci`]: 50 calls at SIGTERM, shorter calls) against the debug binaries the
//! earlier steps built, with the same code and the same checks (but the flood's late frames,
//! which on debug builds measure the machine; see the scale).

mod attack;
mod cloud_fake;
mod harness;
mod scenarios;
pub mod twilio_fake;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Run one drill: sigterm, sigkill, postgres, flood, bad-input, soak, provider-outage.
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
    /// Soak length in minutes (the full soak is 30).
    #[arg(long, default_value_t = 3.0, value_name = "M")]
    soak_minutes: f64,
    /// Calls at a time during the soak (the full soak is 500).
    #[arg(long, default_value_t = 100, value_name = "N")]
    soak_calls: usize,
    /// Use the release binaries already in target/release instead of building them first
    /// (repeating one drill while the sources change under you).
    #[arg(long)]
    no_build: bool,
    /// Seconds per fuzz target in `bad-input`.
    #[arg(long, default_value_t = 30, value_name = "S")]
    fuzz_seconds: u64,
}

/// Every drill, in the order they run.
const DRILLS: &[&str] = &[
    "sigterm",
    "sigkill",
    "postgres",
    "flood",
    "bad-input",
    "soak",
];

/// The cloud LLM failing (500s, then hanging) with the offline models as the fallback; run
/// after the others, skipped when the models (`cargo xtask models`) are not installed.
const PROVIDER_OUTAGE: &str = "provider-outage";

/// A row of the table.
#[derive(Debug)]
struct Row {
    /// The drill.
    name: String,
    /// PASS / FAIL / skipped.
    verdict: &'static str,
    /// Wall time.
    seconds: f64,
    /// Figures and failed checks.
    detail: String,
}

pub fn run(args: &DrillArgs) -> anyhow::Result<ExitCode> {
    if let Some(only) = &args.only
        && !DRILLS.contains(&only.as_str())
        && only != PROVIDER_OUTAGE
    {
        bail!(
            "unknown drill {only:?}; the drills are: {}, {PROVIDER_OUTAGE}",
            DRILLS.join(", ")
        );
    }
    let mut ctx = crate::prerequisites::Context::default();
    ctx.ensure_postgres()?;
    if !args.no_build {
        println!("==> building the voice node and the edge (release)");
        crate::run::build_node_and_edge(true)?;
    }
    let stamp = utc_stamp();
    let plan = Plan {
        names: DRILLS
            .iter()
            .chain([&PROVIDER_OUTAGE])
            .copied()
            .filter(|name| args.only.as_deref().is_none_or(|o| o == *name))
            .collect(),
        scale: scenarios::Scale::full(args.fuzz_seconds),
        soak_calls: args.soak_calls,
        soak_minutes: args.soak_minutes,
        bins: crate::run::target_dir().join("release"),
        work: crate::repo_root().join(".callgate/drill").join(&stamp),
    };
    let rows = run_plan(&plan)?;

    let table = render(&rows, args, &stamp);
    println!("\n{table}");
    let dir = crate::repo_root().join("bench/drills");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // A single drill gets its own file, so it never overwrites the day's full table.
    let file = match &args.only {
        None => dir.join(format!("{}.md", &stamp[..10])),
        Some(only) => dir.join(format!("{}-{only}.md", &stamp[..10])),
    };
    std::fs::write(&file, &table).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "written to {}; logs in {}",
        file.display(),
        plan.work.display()
    );
    let failed = rows.iter().filter(|r| r.verdict == "FAIL").count();
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The drills CI runs (`cargo xtask test drills`): the ones that take seconds, not minutes, at
/// CI scale ([`scenarios::Scale::ci`]). Left to `cargo xtask drill`: the soak (minutes by
/// definition), the fuzzing (a nightly build of every target) and `provider-outage`, which is
/// neither short nor deterministic in a debug build: loading the offline models took 27–58 s,
/// the drill 71–112 s, and on a busy machine (load average 10) Whisper did not transcribe the
/// caller before the simulated caller hung up, so the call ended without a screening verdict.
const CI_DRILLS: &[&str] = &["sigterm", "sigkill", "postgres", "flood", "bad-input"];

/// The `drills` step of `cargo xtask test`: the short drills at CI scale, against the debug
/// binaries the `browser-e2e` step has already built (so CI compiles nothing more; run alone,
/// it builds them). Prints each drill's verdict; fails if any drill failed. Writes nothing under
/// `bench/drills/` (those files are measurements of the full drills); logs go to
/// `.callgate/drill/<stamp>-ci/`.
pub fn ci_step(ctx: &mut crate::prerequisites::Context) -> anyhow::Result<()> {
    ctx.ensure_postgres()?;
    let bins = crate::run::build_node_and_edge(false)?;
    let plan = Plan {
        names: CI_DRILLS.to_vec(),
        scale: scenarios::Scale::ci(),
        soak_calls: 0,
        soak_minutes: 0.0,
        bins,
        work: crate::repo_root()
            .join(".callgate/drill")
            .join(format!("{}-ci", utc_stamp())),
    };
    let rows = run_plan(&plan)?;
    println!(
        "drills (CI scale, debug binaries; logs in {}):",
        plan.work.display()
    );
    for row in &rows {
        println!(
            "  {:<16} {:<7} {:>4.0} s",
            row.name, row.verdict, row.seconds
        );
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict != "PASS")
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("drills not passed: {}", failed.join(", "));
    }
    Ok(())
}

/// Which drills to run, how large, with which binaries.
#[derive(Debug)]
struct Plan {
    /// Drill names, in order.
    names: Vec<&'static str>,
    /// How large each drill is.
    scale: scenarios::Scale,
    /// Soak: calls at a time.
    soak_calls: usize,
    /// Soak: minutes.
    soak_minutes: f64,
    /// Where `voice-node` and `edge-worker` are (release for the full drills, debug in CI).
    bins: std::path::PathBuf,
    /// Logs and scratch files, one directory per drill.
    work: std::path::PathBuf,
}

/// Runs the plan's drills one after the other, printing each verdict as it comes.
fn run_plan(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &name in &plan.names {
        println!("==> drill {name}");
        let started = Instant::now();
        let outcome = if name == PROVIDER_OUTAGE {
            match models_dir() {
                None => {
                    let row = Row {
                        name: name.to_owned(),
                        verdict: "skipped",
                        seconds: 0.0,
                        detail:
                            "skipped: no offline models to fall back to (run `cargo xtask models`)"
                                .to_owned(),
                    };
                    println!("    {} ({:.0} s): {}", row.verdict, row.seconds, row.detail);
                    rows.push(row);
                    continue;
                }
                Some(models) => {
                    let kit = harness::Kit::new(&plan.bins, plan.work.join(name))?;
                    scenarios::provider_outage(&kit, &models)
                }
            }
        } else {
            let kit = harness::Kit::new(&plan.bins, plan.work.join(name))?;
            match name {
                "sigterm" => scenarios::sigterm(&kit, &plan.scale),
                "sigkill" => scenarios::sigkill(&kit),
                "postgres" => scenarios::postgres(&kit, &plan.scale),
                "flood" => scenarios::flood(&kit, &plan.scale),
                "bad-input" => scenarios::bad_input(&kit, &plan.scale),
                "soak" => scenarios::soak(&kit, plan.soak_calls, plan.soak_minutes),
                _ => bail!("no drill named {name:?}"),
            }
        };
        let (verdict, detail) = match outcome {
            Ok(judged) => (if judged.passed { "PASS" } else { "FAIL" }, judged.detail),
            Err(err) => ("FAIL", format!("error: {err:#}")),
        };
        let row = Row {
            name: name.to_owned(),
            verdict,
            seconds: started.elapsed().as_secs_f64(),
            detail,
        };
        println!("    {} ({:.0} s): {}", row.verdict, row.seconds, row.detail);
        rows.push(row);
    }
    Ok(rows)
}

/// The Markdown table with the machine and the command.
fn render(rows: &[Row], args: &DrillArgs, stamp: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Failure drills, {stamp}\n");
    let _ = writeln!(
        out,
        "Machine: {}. Command: `cargo xtask drill{}{}`. Soak: {} calls for {} min.\n",
        machine(),
        args.only
            .as_ref()
            .map_or(String::new(), |o| format!(" --only {o}")),
        if (args.soak_minutes - 3.0).abs() > f64::EPSILON || args.soak_calls != 100 {
            format!(
                " --soak-minutes {} --soak-calls {}",
                args.soak_minutes, args.soak_calls
            )
        } else {
            String::new()
        },
        args.soak_calls,
        args.soak_minutes
    );
    let _ = writeln!(out, "| drill | result | time | what was measured |");
    let _ = writeln!(out, "|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} s | {} |",
            row.name,
            row.verdict,
            row.seconds,
            row.detail.replace('|', "\\|")
        );
    }
    out
}

/// The offline models, when installed (the same place `cargo xtask models` and the demo use).
fn models_dir() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CALLGATE_MODELS_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => crate::models::user_cache_dir().ok()?.join("models"),
    };
    dir.join("whisper-tiny-en").is_dir().then_some(dir)
}

/// CPU model and core count, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {model}")
}

/// `YYYY-MM-DDTHH-MM-SSZ` from `date -u` (xtask has no date crate).
fn utc_stamp() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H-%M-%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| s.len() >= 10)
        .unwrap_or_else(|| "unknown-date".to_owned())
}
