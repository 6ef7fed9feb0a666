//! `cargo xtask test`: the steps CI runs, in order, each with a header and its time.
//!
//! Every step runs even when an earlier one failed, so one run shows every problem; the exit
//! status is non-zero if any failed. To add a step (edge WASM end-to-end, browser tests, …) append
//! a [`Step`] to [`STEPS`]; a step that needs a tool asks [`Context`] for it, so it also works when
//! run alone (`cargo xtask test wasm`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use crate::interrupt;
use crate::local_postgres::LocalPostgres;
use crate::prerequisites::{self, Context, WasmToolchain};
use crate::run::{cmd, run as run_cmd};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Run only these steps (default: all, in order). See --list.
    #[arg(value_name = "STEP")]
    steps: Vec<String>,
    /// List the steps and exit.
    #[arg(long)]
    list: bool,
}

/// One check CI runs.
pub struct Step {
    /// Short name, also used to select it on the command line.
    pub name: &'static str,
    /// One line for the header and `--list`.
    pub about: &'static str,
    /// The work; an error fails the step (and the run), not the remaining steps.
    pub run: fn(&mut Context) -> anyhow::Result<()>,
}

/// Every step, in the order CI runs them: cheap checks first.
pub const STEPS: &[Step] = &[
    Step {
        name: "prerequisites",
        about: "Postgres server binaries, the wasm32 target, rustfmt and clippy (installed if missing)",
        run: prerequisites::step,
    },
    Step {
        name: "fmt",
        about: "cargo fmt --all --check",
        run: fmt,
    },
    Step {
        name: "clippy",
        about: "cargo clippy --workspace --all-targets -- -D warnings",
        run: clippy,
    },
    Step {
        name: "wasm",
        about: "cargo build -p shared --target wasm32-unknown-unknown (the edge's protocol code)",
        run: wasm,
    },
    Step {
        name: "tests",
        about: "cargo test --workspace (all targets, then doc tests) against a private Postgres",
        run: tests,
    },
    Step {
        name: "edge-e2e",
        about: "the edge's WASM bundle in workerd, webhooks signed by Twilio's npm library (builds the bundle, npm ci)",
        run: crate::edge_bundle::e2e_step,
    },
    Step {
        name: "dashboard",
        about: "dashboard/: npm ci when needed, tsc type check, Vitest component tests, vite build",
        run: crate::dashboard::step,
    },
    Step {
        name: "browser-e2e",
        about: "the dashboard in Debian's Chromium (playwright-core) against a real node, edge and Postgres; screenshots in test-output/",
        run: crate::browser_e2e::step,
    },
    Step {
        name: "drills",
        about: "failure drills at CI scale (SIGTERM, SIGKILL + reaper, Postgres restart, flood, bad input) against the debug node and edge",
        run: crate::drill::ci_step,
    },
];

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for step in STEPS {
            println!("{:<14} {}", step.name, step.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let selected = select(&args.steps)?;
    let mut ctx = Context::default();
    let started = Instant::now();
    let mut results = Vec::new();
    for (i, step) in selected.iter().enumerate() {
        println!(
            "\n==> [{}/{}] {}: {}",
            i + 1,
            selected.len(),
            step.name,
            step.about
        );
        let t0 = Instant::now();
        let outcome = (step.run)(&mut ctx);
        let took = t0.elapsed();
        match &outcome {
            Ok(()) => println!("<== {}: ok ({})", step.name, secs(took)),
            Err(err) => println!("<== {}: FAILED ({}): {err:#}", step.name, secs(took)),
        }
        results.push((step.name, took, outcome));
    }

    println!("\nxtask test summary ({} total):", secs(started.elapsed()));
    for (name, took, outcome) in &results {
        let verdict = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("FAILED: {}", first_line(&format!("{err:#}"))),
        };
        println!("  {name:<14} {:>8}  {verdict}", secs(*took));
    }
    let failed = results.iter().filter(|(_, _, o)| o.is_err()).count();
    let passed = results.len() - failed;
    // Alone on the last line: CI reads it.
    println!("xtask: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn select(names: &[String]) -> anyhow::Result<Vec<&'static Step>> {
    if names.is_empty() {
        return Ok(STEPS.iter().collect());
    }
    let mut selected = Vec::new();
    for name in names {
        match STEPS.iter().find(|s| s.name == name) {
            Some(step) => selected.push(step),
            None => {
                let known: Vec<_> = STEPS.iter().map(|s| s.name).collect();
                bail!("unknown step `{name}`; steps are: {}", known.join(", "));
            }
        }
    }
    // Keep CI's order whatever the order on the command line.
    selected.sort_by_key(|s| STEPS.iter().position(|t| t.name == s.name));
    selected.dedup_by_key(|s| s.name);
    Ok(selected)
}

fn fmt(_: &mut Context) -> anyhow::Result<()> {
    run_cmd(&mut cmd("cargo", ["fmt", "--all", "--check"]))
}

fn clippy(_: &mut Context) -> anyhow::Result<()> {
    run_cmd(&mut cmd(
        "cargo",
        [
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))
}

fn wasm(ctx: &mut Context) -> anyhow::Result<()> {
    let args = [
        "build",
        "-p",
        "shared",
        "--target",
        "wasm32-unknown-unknown",
    ];
    let toolchain = ctx.wasm_toolchain()?;
    let mut build = toolchain.cargo(args);
    if let WasmToolchain::Debian { .. } = toolchain {
        build.env("CARGO_TARGET_DIR", crate::repo_root().join("target-debian"));
    }
    run_cmd(&mut build)
}

fn tests(ctx: &mut Context) -> anyhow::Result<()> {
    // `#[sqlx::test]` creates one database per test on the server DATABASE_URL names.
    let (url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            println!("using DATABASE_URL from the environment");
            (url, None)
        }
        _ => {
            ctx.ensure_postgres()?;
            let t0 = Instant::now();
            let cluster = LocalPostgres::ephemeral()?;
            interrupt::stop_on_interrupt(cluster.stopper());
            println!(
                "started a private Postgres in {} at {} (data: {}; stopped and removed afterwards)",
                secs(t0.elapsed()),
                cluster.url(),
                cluster.data_dir().display()
            );
            (cluster.url(), Some(cluster))
        }
    };
    // The AI tests load real models: fetched once into the user cache, reused by later runs.
    let models = std::env::var("CALLGATE_MODELS_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .map_or_else(
            || crate::models::user_cache_dir().map(|d| d.join("models")),
            Ok,
        )?;
    crate::models::ensure_models(&models)?;
    let all_targets = run_cmd(
        cmd(
            "cargo",
            ["test", "--workspace", "--all-targets", "--no-fail-fast"],
        )
        .env("DATABASE_URL", &url)
        .env("CALLGATE_MODELS_DIR", &models),
    );
    // `--all-targets` leaves out doc tests; they need their own run.
    let doc = run_cmd(
        cmd("cargo", ["test", "--workspace", "--doc", "--no-fail-fast"]).env("DATABASE_URL", &url),
    );
    // `_cluster` drops here (stop + delete) whatever happened above.
    match (all_targets, doc) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(a), Err(b)) => bail!("{a:#}; {b:#}"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
