//! Ctrl-C / SIGTERM: stop what we started instead of orphaning it.
//!
//! `pg_ctl start` daemonizes the server, so it outlives us unless stopped; and each child command
//! runs in its own process group (see [`crate::run`]), so a signal reaches only this process. The
//! handler therefore marks the run interrupted (no further child starts), sends SIGTERM to the
//! running child's whole group (cargo, rustc, test binaries), stops every registered cluster and
//! exits with 130.

use std::process::{Child, Command};
use std::sync::Mutex;

use crate::local_postgres::ClusterStopper;

/// Clusters to stop on interrupt.
static CLUSTERS: Mutex<Vec<ClusterStopper>> = Mutex::new(Vec::new());

/// Process groups of long-running services (`cargo xtask demo`'s node and edge) to terminate on
/// interrupt; SIGTERM lets the node drain its calls.
static SERVICES: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The running child and whether we were interrupted, under one lock so a child is either
/// started before the handler looks (and is killed) or not started at all.
static CHILD: Mutex<ChildSlot> = Mutex::new(ChildSlot {
    interrupted: false,
    group: None,
});

struct ChildSlot {
    /// Set by the handler; no child starts after it.
    interrupted: bool,
    /// Process group id of the running child (its pid: it leads its own group).
    group: Option<u32>,
}

/// Installs the handler (once, at start-up).
pub fn install() {
    let result = ctrlc::set_handler(|| {
        eprintln!("\nxtask: interrupted; stopping what was started");
        {
            let mut slot = CHILD.lock().unwrap_or_else(|e| e.into_inner());
            slot.interrupted = true;
            if let Some(group) = slot.group {
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &format!("-{group}")])
                    .status();
            }
        }
        for group in SERVICES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            terminate_group(*group);
        }
        let clusters = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
        for cluster in clusters.iter() {
            if let Err(err) = cluster.stop() {
                eprintln!("xtask: could not stop Postgres: {err}");
            }
        }
        std::process::exit(130);
    });
    if let Err(err) = result {
        eprintln!(
            "xtask: warning: no Ctrl-C handler ({err}); an interrupt may leave Postgres running"
        );
    }
}

/// Stops `cluster` if we are interrupted. Stopping it normally later is still fine (idempotent).
pub fn stop_on_interrupt(cluster: ClusterStopper) {
    CLUSTERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(cluster);
}

/// Terminates `group` (a service started in its own process group) if we are interrupted.
pub fn terminate_on_interrupt(group: u32) {
    SERVICES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(group);
}

/// SIGTERM to a whole process group.
pub fn terminate_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{group}")])
        .status();
}

/// Starts a child through `spawn` unless interrupted, and records it so an interrupt terminates
/// its process group. `spawn` must put the child in a new process group.
pub fn spawn_tracked(
    spawn: impl FnOnce() -> std::io::Result<Child>,
) -> anyhow::Result<Option<Child>> {
    let mut slot = CHILD.lock().unwrap_or_else(|e| e.into_inner());
    if slot.interrupted {
        return Ok(None);
    }
    let child = spawn()?;
    slot.group = Some(child.id());
    Ok(Some(child))
}

/// Forgets the child once it has been waited for.
pub fn child_finished() {
    CHILD.lock().unwrap_or_else(|e| e.into_inner()).group = None;
}
