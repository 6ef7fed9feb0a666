//! The dashboard (`dashboard/`, Vite + React + TypeScript): npm packages, type check, Vitest
//! component tests, and the production build the voice node serves at `/`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::prerequisites::Context;
use crate::run::{cmd, output, run};

/// The `dashboard` test step: `npm ci` when needed, `tsc -b`, `vitest run`, `vite build`.
pub fn step(_: &mut Context) -> anyhow::Result<()> {
    let dir = dashboard_dir()?;
    ensure_packages(&dir)?;
    run(cmd("npm", ["run", "typecheck"]).current_dir(&dir))?;
    run(cmd("npm", ["test"]).current_dir(&dir))?;
    build_in(&dir)
}

/// Builds `dashboard/dist/` (installing npm packages when needed) for the demo's node to serve.
pub fn build() -> anyhow::Result<PathBuf> {
    let dir = dashboard_dir()?;
    ensure_packages(&dir)?;
    build_in(&dir)?;
    Ok(dir.join("dist"))
}

fn build_in(dir: &Path) -> anyhow::Result<()> {
    run(cmd("npm", ["run", "build"]).current_dir(dir))
}

fn dashboard_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    Ok(root.join("dashboard"))
}

/// `npm ci` unless `node_modules` already matches `package-lock.json`: npm records the installed
/// tree in `node_modules/.package-lock.json`, written after the lock file it was installed from.
fn ensure_packages(dir: &Path) -> anyhow::Result<()> {
    if is_newer(
        &dir.join("node_modules/.package-lock.json"),
        &dir.join("package-lock.json"),
    ) {
        return Ok(());
    }
    if output(&mut cmd("npm", ["--version"])).is_none() {
        bail!(
            "npm is missing: install Node.js 20.19 or newer with npm (the dashboard is built with Vite)"
        );
    }
    run(cmd("npm", ["ci", "--no-fund", "--no-audit"]).current_dir(dir))
}

fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    match (modified(a), modified(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}
