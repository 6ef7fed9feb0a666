//! Running commands: echo them, stream their output, turn a non-zero exit into an error.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::interrupt;

/// `Command::new(program).args(args)` in the repository root.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(crate::repo_root());
    cmd
}

/// Runs `cmd` with inherited output, printing it first; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = display(cmd);
    // Its own process group: an interrupt handled by us terminates the child's whole tree
    // (cargo and the rustc / test processes under it), not just the direct child.
    cmd.stdin(Stdio::null()).process_group(0);
    let Some(mut child) = interrupt::spawn_tracked(|| {
        println!("$ {shown}");
        cmd.spawn()
    })
    .with_context(|| format!("could not start `{shown}`"))?
    else {
        bail!("interrupted before `{shown}`");
    };
    let status = child.wait();
    interrupt::child_finished();
    let status = status.with_context(|| format!("waiting for `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"))
}

/// Builds the `voice-node` and native `edge-worker` binaries (release or debug) and returns
/// the directory holding them: the demo, the browser e2e, the bench and the drills all run
/// these two as real processes.
pub fn build_node_and_edge(release: bool) -> anyhow::Result<PathBuf> {
    let mut args = vec!["build", "--quiet"];
    if release {
        args.push("--release");
    }
    args.extend(["-p", "voice-node", "-p", "edge-worker", "--bins"]);
    run(&mut cmd("cargo", args))?;
    Ok(target_dir().join(if release { "release" } else { "debug" }))
}

/// Starts `command` as a long-running service (node, edge) in its own process group with stdout
/// and stderr going to `log`, terminated with its group when `cargo xtask` is interrupted.
pub fn spawn_logged(
    name: &str,
    command: &mut Command,
    log: &std::path::Path,
) -> anyhow::Result<std::process::Child> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the {name}"))?;
    interrupt::terminate_on_interrupt(child.id());
    Ok(child)
}

/// Runs `cmd` quietly and returns its stdout; `None` if it could not run or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line as a shell would show it (environment overrides first).
fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}
