//! What `cargo xtask test` needs from the machine, installed when missing: Postgres server
//! binaries (Debian's `postgresql`), the `wasm32-unknown-unknown` target (rustup, else Debian's
//! `rustc-web` route), rustfmt and clippy.
//!
//! A fresh CI machine is "Debian 12 with the Rust toolchain"; anything else comes from its package
//! registries through the ordinary clients, and only when it is actually missing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::local_postgres::PgBinaries;
use crate::run::{cmd, output, run};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// How the wasm32 build gets its standard library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmToolchain {
    /// rustup's toolchain with its `wasm32-unknown-unknown` rust-std: plain `cargo build --target`.
    Rustup,
    /// Debian's `rustc-web`/`cargo-web` (in `bin_dir`), std built from source with `-Zbuild-std`;
    /// the fallback when rustup cannot download the target (reference/wasm-toolchain.md §4).
    Debian { bin_dir: PathBuf },
}

impl WasmToolchain {
    /// `cargo ARGS` set up for this toolchain, building for wasm32. With Debian's toolchain, std
    /// is built from rust-web-src and linked by lld-22 (reference/wasm-toolchain.md §4); callers
    /// give it a target dir of its own so rustup's artifacts are not invalidated.
    pub fn cargo<const N: usize>(&self, args: [&str; N]) -> Command {
        match self {
            WasmToolchain::Rustup => cmd("cargo", args),
            WasmToolchain::Debian { bin_dir } => {
                let mut build = cmd(bin_dir.join("cargo").to_string_lossy().as_ref(), args);
                build
                    .arg("-Zbuild-std=std,panic_abort")
                    .env(
                        "PATH",
                        format!("{}:/usr/bin:/bin", bin_dir.to_string_lossy()),
                    )
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld-22")
                    .env_remove("RUSTC")
                    .env_remove("RUSTDOC")
                    .env_remove("RUSTUP_TOOLCHAIN");
                build
            }
        }
    }
}

/// What earlier steps found out, so later steps do not ask (or install) twice.
#[derive(Debug, Default)]
pub struct Context {
    /// Set once `apt-get update` ran in this process.
    apt_updated: bool,
    /// Set once Postgres server binaries are known to be there.
    postgres: Option<PgBinaries>,
    /// Set once the wasm32 toolchain is settled.
    wasm: Option<WasmToolchain>,
}

impl Context {
    /// Postgres server binaries, installing `postgresql` with apt if there are none.
    pub fn ensure_postgres(&mut self) -> anyhow::Result<PgBinaries> {
        if let Some(found) = &self.postgres {
            return Ok(found.clone());
        }
        let found = match PgBinaries::find() {
            Ok(found) => found,
            Err(missing) => {
                println!("{missing}");
                self.apt_install(&["postgresql"])?;
                PgBinaries::find()
                    .context("still no Postgres server binaries after apt-get install")?
            }
        };
        self.postgres = Some(found.clone());
        Ok(found)
    }

    /// Programs from Debian packages the tests run as subprocesses: espeak-ng and sox (the light
    /// offline voice: greetings and the simulator's caller speech). Installed with apt if missing.
    pub fn ensure_speech_tools(&mut self) -> anyhow::Result<()> {
        let missing: Vec<&str> = [("espeak-ng", "espeak-ng"), ("sox", "sox")]
            .into_iter()
            .filter(|(program, _)| !has_program(program))
            .map(|(_, package)| package)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        println!("missing {}; installing with apt", missing.join(", "));
        self.apt_install(&missing)?;
        if let Some((program, _)) = [("espeak-ng", ()), ("sox", ())]
            .into_iter()
            .find(|(program, _)| !has_program(program))
        {
            anyhow::bail!("still no `{program}` after apt-get install");
        }
        Ok(())
    }

    /// The toolchain that builds for wasm32: rustup's target if installed or installable within
    /// two minutes, else Debian's rustc-web route. `XTASK_WASM_TOOLCHAIN=debian` forces the latter
    /// (to exercise the fallback).
    pub fn wasm_toolchain(&mut self) -> anyhow::Result<WasmToolchain> {
        if let Some(found) = &self.wasm {
            return Ok(found.clone());
        }
        let forced_debian = std::env::var("XTASK_WASM_TOOLCHAIN").is_ok_and(|v| v == "debian");
        // `||` short-circuits: the download is only tried when the target is missing.
        let found = if !forced_debian && (rustup_has_wasm_target() || rustup_add_wasm_target()) {
            WasmToolchain::Rustup
        } else {
            if !forced_debian {
                println!(
                    "rustup could not provide {WASM_TARGET}; falling back to Debian's rustc-web"
                );
            }
            self.debian_wasm_toolchain()?
        };
        self.wasm = Some(found.clone());
        Ok(found)
    }

    fn debian_wasm_toolchain(&mut self) -> anyhow::Result<WasmToolchain> {
        if debian_web_bin_dir().is_none() || !has_program("wasm-ld-22") {
            self.apt_install(&["rustc-web", "cargo-web", "rust-web-src", "lld-22"])?;
        }
        let bin_dir = debian_web_bin_dir()
            .context("cargo-web is installed but `dpkg -L cargo-web` lists no bin/cargo")?;
        Ok(WasmToolchain::Debian { bin_dir })
    }

    /// `apt-get install -y` (after one `apt-get update` per run). Needs root.
    fn apt_install(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        if !is_root() {
            bail!(
                "missing system packages; install them with: \
                 sudo apt-get update && sudo apt-get install -y {}",
                packages.join(" ")
            );
        }
        if !self.apt_updated {
            run(cmd("apt-get", ["update"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
            self.apt_updated = true;
        }
        run(cmd("apt-get", ["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    }
}

/// The `prerequisites` step: settle everything up front and say what was found.
pub fn step(ctx: &mut Context) -> anyhow::Result<()> {
    let pg = ctx.ensure_postgres()?;
    let version = output(&mut cmd(
        pg.initdb.to_string_lossy().as_ref(),
        ["--version"],
    ))
    .unwrap_or_default();
    println!(
        "postgres: {} ({})",
        pg.initdb.parent().unwrap_or(&pg.initdb).display(),
        version.trim()
    );

    ctx.ensure_speech_tools()?;
    println!("speech: espeak-ng and sox");

    match ctx.wasm_toolchain()? {
        WasmToolchain::Rustup => println!("wasm32: rustup target {WASM_TARGET}"),
        WasmToolchain::Debian { bin_dir } => {
            println!(
                "wasm32: Debian rustc-web in {} with -Zbuild-std",
                bin_dir.display()
            )
        }
    }

    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        if output(&mut cmd("cargo", [tool, "--version"])).is_none() {
            println!("cargo {tool} is missing; adding the {component} component");
            run(&mut cmd(
                "timeout",
                ["120", "rustup", "component", "add", component],
            ))?;
        }
    }
    Ok(())
}

fn rustup_has_wasm_target() -> bool {
    output(&mut cmd("rustup", ["target", "list", "--installed"]))
        .is_some_and(|list| list.lines().any(|l| l.trim() == WASM_TARGET))
}

/// `rustup target add` may hang where the toolchain server is unreachable: bounded by `timeout`.
fn rustup_add_wasm_target() -> bool {
    if output(&mut cmd("rustup", ["--version"])).is_none() {
        return false;
    }
    run(&mut cmd(
        "timeout",
        ["120", "rustup", "target", "add", WASM_TARGET],
    ))
    .is_ok()
}

/// The directory where Debian's cargo-web put `cargo` (and rustc-web put `rustc`).
fn debian_web_bin_dir() -> Option<PathBuf> {
    let files = output(&mut cmd("dpkg", ["-L", "cargo-web"]))?;
    files
        .lines()
        .map(PathBuf::from)
        .find(|p| p.ends_with("bin/cargo") && p.is_file())
        .and_then(|p| p.parent().map(PathBuf::from))
        .filter(|dir| dir.join("rustc").is_file())
}

fn has_program(name: &str) -> bool {
    output(&mut cmd("sh", ["-c", &format!("command -v {name}")])).is_some()
}

fn is_root() -> bool {
    output(&mut cmd("id", ["-u"])).is_some_and(|uid| uid.trim() == "0")
}
