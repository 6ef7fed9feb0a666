//! `cargo xtask edge-bundle`: the Worker bundle, built offline (reference/wasm-toolchain.md,
//! Route B): `cargo build --lib --release --target wasm32-unknown-unknown -p edge-worker`,
//! `wasm-bindgen --target module`, the `import source` fix, and esbuild bundling of
//! `edge-worker/worker-js/entry.mjs`, into `edge-worker/dist/{index.js,index_bg.wasm}` (what
//! wrangler.toml's `main` and the workerd tests load).
//!
//! Nothing is downloaded from GitHub: the wasm-bindgen CLI is `cargo install`ed at exactly the
//! version in Cargo.lock into the cache (`$XDG_CACHE_HOME` or `~/.cache`,
//! `callgate/tools/wasm-bindgen-<ver>`), esbuild and workerd come from npm (`npm ci`), and when
//! rustup cannot provide the wasm32 target the Debian `rustc-web` + `-Zbuild-std` route is used
//! (Route C). wasm-opt is not run: Debian's binaryen is too old to parse the output and the npm
//! one is 100 MB; the bundle is well under its size budget without it.
//!
//! Also `cargo xtask bench-edge` (the edge benchmark) and the `edge-e2e` test step.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::prerequisites::{Context, WasmToolchain};
use crate::repo_root;
use crate::run::{cmd, output, run};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

#[derive(Debug, Args)]
pub struct EdgeBundleArgs {}

#[derive(Debug, Args)]
pub struct BenchEdgeArgs {
    /// Signed inbound webhooks per server.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
}

/// The built bundle.
#[derive(Debug)]
pub struct Bundle {
    /// `edge-worker/dist/index.js`: the bundled JS glue (module worker).
    pub js: PathBuf,
    /// `edge-worker/dist/index_bg.wasm`.
    pub wasm: PathBuf,
}

/// `cargo xtask edge-bundle`.
pub fn run_bundle(_: &EdgeBundleArgs) -> anyhow::Result<ExitCode> {
    build(&mut Context::default())?;
    Ok(ExitCode::SUCCESS)
}

/// Builds `edge-worker/dist/` (installing the wasm-bindgen CLI and npm packages if missing).
pub fn build(ctx: &mut Context) -> anyhow::Result<Bundle> {
    let root = repo_root();
    let toolchain = ctx.wasm_toolchain()?;
    let bindgen = ensure_wasm_bindgen(&root)?;
    ensure_npm_packages(&root)?;
    let wasm = cargo_build(&root, &toolchain)?;
    let bundle = package(&root, &bindgen, &wasm)?;
    for file in [&bundle.wasm, &bundle.js] {
        let raw = std::fs::metadata(file)?.len();
        let gz = gzip_size(file)
            .map(|n| format!("{n} B gzip -9"))
            .unwrap_or_else(|| "gzip unavailable".into());
        println!("edge bundle: {} {raw} B ({gz})", file.display());
    }
    Ok(bundle)
}

/// The `edge-e2e` test step: bundle, npm packages, then the workerd end-to-end test.
pub fn e2e_step(ctx: &mut Context) -> anyhow::Result<()> {
    build(ctx)?;
    run(&mut cmd(
        "cargo",
        [
            "test",
            "-p",
            "edge-worker",
            "--test",
            "workerd_e2e",
            "--",
            "--include-ignored",
        ],
    ))
}

/// `cargo xtask bench-edge`: the bundle, the native release binary and the benchmark client.
pub fn run_bench(args: &BenchEdgeArgs) -> anyhow::Result<ExitCode> {
    build(&mut Context::default())?;
    run(&mut cmd(
        "cargo",
        [
            "build",
            "--release",
            "-p",
            "edge-worker",
            "--bin",
            "edge-worker",
            "--example",
            "bench_edge",
        ],
    ))?;
    let target_dir = crate::run::target_dir();
    let bench = target_dir.join("release/examples/bench_edge");
    let native = target_dir.join("release/edge-worker");
    run(Command::new(&bench)
        .current_dir(repo_root())
        .arg("--requests")
        .arg(args.requests.to_string())
        .arg("--native-bin")
        .arg(&native))?;
    Ok(ExitCode::SUCCESS)
}

/// The `wasm-bindgen` version in Cargo.lock: the CLI must match it exactly.
fn locked_wasm_bindgen_version(root: &Path) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "wasm-bindgen""#
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package (is edge-worker in the workspace?)")
}

/// `$XDG_CACHE_HOME/callgate/tools`, or `~/.cache/callgate/tools`.
fn tools_dir() -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(cache.join("callgate").join("tools"))
}

/// The wasm-bindgen CLI at Cargo.lock's version, `cargo install`ed into the cache when missing
/// (about 6.5 minutes once; GitHub release binaries are unreachable). No `--locked`: the CLI's
/// lockfile pins a webpki-roots the registry mirror does not have.
fn ensure_wasm_bindgen(root: &Path) -> anyhow::Result<PathBuf> {
    let version = locked_wasm_bindgen_version(root)?;
    let prefix = tools_dir()?.join(format!("wasm-bindgen-{version}"));
    let bin = prefix.join("bin").join("wasm-bindgen");
    let installed = output(Command::new(&bin).arg("--version"))
        .is_some_and(|v| v.trim() == format!("wasm-bindgen {version}"));
    if !installed {
        println!(
            "installing wasm-bindgen-cli {version} into {}",
            prefix.display()
        );
        run(&mut cmd(
            "cargo",
            [
                "install",
                "wasm-bindgen-cli",
                "--version",
                &version,
                "--root",
                &prefix.to_string_lossy(),
            ],
        ))?;
    }
    Ok(bin)
}

/// esbuild, workerd and the twilio package from `package-lock.json` (`npm ci`) when missing.
fn ensure_npm_packages(root: &Path) -> anyhow::Result<()> {
    let have = [
        "node_modules/.bin/esbuild",
        "node_modules/.bin/workerd",
        "node_modules/twilio/package.json",
    ]
    .iter()
    .all(|p| root.join(p).exists());
    if have {
        return Ok(());
    }
    if output(&mut cmd("npm", ["--version"])).is_none() {
        bail!(
            "npm is missing: install Node.js 20 or newer with npm (the edge bundle needs esbuild \
             and workerd from the npm registry)"
        );
    }
    run(&mut cmd("npm", ["ci", "--no-fund", "--no-audit"]))
}

/// `cargo build --lib --release --target wasm32-unknown-unknown -p edge-worker`, in a target dir
/// of its own so the size-oriented profile overrides do not invalidate the main build.
fn cargo_build(root: &Path, toolchain: &WasmToolchain) -> anyhow::Result<PathBuf> {
    let args = [
        "build",
        "--lib",
        "--release",
        "--target",
        WASM_TARGET,
        "-p",
        "edge-worker",
    ];
    let mut build = toolchain.cargo(args);
    let target_dir = match toolchain {
        WasmToolchain::Rustup => root.join("target").join("edge-bundle"),
        WasmToolchain::Debian { .. } => root.join("target-debian").join("edge-bundle"),
    };
    build
        .env("CARGO_TARGET_DIR", &target_dir)
        // What worker-build sets for the cargo build.
        .env("WASM_BINDGEN_USE_JS_SYS", "1")
        // Whole-program optimisation for a small, fast module; panics abort (a Worker
        // isolate is restarted by the runtime anyway).
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    run(&mut build)?;
    Ok(target_dir
        .join(WASM_TARGET)
        .join("release")
        .join("edge_worker.wasm"))
}

/// wasm-bindgen + the `import source` fix + esbuild, into `edge-worker/dist/`.
fn package(root: &Path, bindgen: &Path, wasm: &Path) -> anyhow::Result<Bundle> {
    let crate_dir = root.join("edge-worker");
    let pkg = crate_dir.join("pkg");
    let dist = crate_dir.join("dist");
    for dir in [&pkg, &dist] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
    }
    run(Command::new(bindgen)
        .current_dir(root)
        .arg(wasm)
        .arg("--out-dir")
        .arg(&pkg)
        .args([
            "--out-name",
            "index",
            "--target",
            "module",
            "--no-typescript",
        ]))?;

    // wasm-bindgen emits the source-phase import `import source x from "./index_bg.wasm"`;
    // workerd and wrangler want the plain form, which yields a WebAssembly.Module.
    let glue_path = pkg.join("index.js");
    let glue = std::fs::read_to_string(&glue_path)?;
    let fixed: Vec<String> = glue
        .lines()
        .map(|line| match line.strip_prefix("import source ") {
            Some(rest) => format!("import {rest}"),
            None => line.to_owned(),
        })
        .collect();
    std::fs::write(&glue_path, fixed.join("\n") + "\n")?;

    std::fs::copy(crate_dir.join("worker-js/entry.mjs"), pkg.join("entry.mjs"))?;
    let js = dist.join("index.js");
    run(cmd(
        root.join("node_modules/.bin/esbuild")
            .to_string_lossy()
            .as_ref(),
        [
            pkg.join("entry.mjs").to_string_lossy().as_ref(),
            "--bundle",
            "--format=esm",
            &format!("--outfile={}", js.display()),
            "--external:./index_bg.wasm",
            "--external:cloudflare:*",
            "--log-level=warning",
        ],
    )
    .current_dir(root))?;
    let bundled_wasm = dist.join("index_bg.wasm");
    std::fs::copy(pkg.join("index_bg.wasm"), &bundled_wasm)?;
    Ok(Bundle {
        js,
        wasm: bundled_wasm,
    })
}

/// Bytes of `gzip -9` output, as Cloudflare's size report counts them.
fn gzip_size(path: &Path) -> Option<usize> {
    let out = Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len())
}
