//! Running commands: echo them, stream their output, turn a non-zero exit into an error.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
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
