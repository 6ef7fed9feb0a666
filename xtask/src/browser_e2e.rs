//! The `browser-e2e` test step: the dashboard in Debian's Chromium against a real voice node, edge
//! and Postgres (`dashboard/e2e/browser.mjs`, driven by playwright-core; no browser download).
//!
//! Here: install Chromium when missing, build the node and edge binaries and the dashboard, start
//! a private Postgres. The script seeds with the admin CLI, starts node and edge, places a
//! simulated call and checks the app; it prints `browser-e2e: N passed, M failed` and leaves
//! screenshots in `test-output/browser-e2e/`.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::interrupt;
use crate::local_postgres::LocalPostgres;
use crate::prerequisites::Context;
use crate::run::{cmd, run};

/// Debian's Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

pub fn step(ctx: &mut Context) -> anyhow::Result<()> {
    ensure_chromium()?;
    ctx.ensure_postgres()?;
    // `simulate --say` speaks with espeak-ng + sox.
    ctx.ensure_speech_tools()?;
    let bins = crate::run::build_node_and_edge(false)?;
    let dist = crate::dashboard::build()?;
    let pg = LocalPostgres::ephemeral()?;
    interrupt::stop_on_interrupt(pg.stopper());
    let out = crate::repo_root().join("test-output/browser-e2e");
    let dashboard = crate::repo_root().join("dashboard");
    let result = run(cmd("node", ["e2e/browser.mjs"])
        .current_dir(&dashboard)
        .env("DATABASE_URL", pg.url())
        .env("VOICE_NODE_BIN", path_str(&bins.join("voice-node"))?)
        .env("EDGE_BIN", path_str(&bins.join("edge-worker"))?)
        .env("DASHBOARD_DIR", path_str(&dist)?)
        .env("OUTPUT_DIR", path_str(&out)?)
        .env("CHROMIUM", CHROMIUM));
    drop(pg);
    result
}

/// `apt-get install chromium` when `/usr/bin/chromium` is missing (root on Debian, as CI is).
fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    println!("{CHROMIUM} is missing: installing Debian's chromium");
    run(&mut cmd("apt-get", ["update", "-qq"]))?;
    run(cmd("apt-get", ["install", "-y", "-qq", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !Path::new(CHROMIUM).exists() {
        bail!("apt-get installed chromium but {CHROMIUM} is still missing");
    }
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
