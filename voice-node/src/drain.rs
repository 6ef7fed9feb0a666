//! Draining: how a node leaves without cutting calls.
//!
//! On SIGTERM (what Fly sends on deploy and stop) or Ctrl-C:
//! 1. [`Drain::start`]: `/readyz` answers 503 (Fly's proxy stops routing to us), the heartbeat
//!    says `draining` (the edge stops choosing us), and new `/media` upgrades get 503.
//! 2. Live calls run to their natural end, for up to the grace period (`DRAIN_GRACE_SECS`,
//!    default fly.toml's `kill_timeout`), watched through [`SessionTracker`].
//! 3. If the grace period runs out, [`Drain::close_remaining`] tells every session to close its
//!    socket (they watch [`Drain::subscribe`]; without that signal a WebSocket handler would keep
//!    the drain waiting forever).
//! 4. The server stops, the write queue is flushed (bounded wait), the node row is marked, and
//!    the process exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    /// Taking calls.
    Serving,
    /// Finishing live calls, refusing new ones.
    Draining,
    /// The grace period is over: live sessions must close now.
    Closing,
}

/// The node's drain state, shared by the server, the sessions and the heartbeat.
#[derive(Debug, Clone)]
pub struct Drain {
    /// The state; sessions and the server hold receivers.
    state: Arc<watch::Sender<DrainState>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    /// A serving node.
    pub fn new() -> Self {
        Drain {
            state: Arc::new(watch::channel(DrainState::Serving).0),
        }
    }

    /// Step 1: stop taking calls.
    pub fn start(&self) {
        self.state.send_if_modified(|s| {
            if *s == DrainState::Serving {
                *s = DrainState::Draining;
                true
            } else {
                false
            }
        });
    }

    /// Step 3: close what is still live.
    pub fn close_remaining(&self) {
        self.state.send_replace(DrainState::Closing);
    }

    /// The current state.
    pub fn state(&self) -> DrainState {
        *self.state.borrow()
    }

    /// Whether the node refuses new calls.
    pub fn is_draining(&self) -> bool {
        self.state() != DrainState::Serving
    }

    /// A receiver to watch for [`DrainState::Closing`].
    pub fn subscribe(&self) -> watch::Receiver<DrainState> {
        self.state.subscribe()
    }
}

/// Resolves once `rx` says [`DrainState::Closing`] (never if the sender is dropped first).
pub async fn closing(rx: &mut watch::Receiver<DrainState>) {
    if rx.wait_for(|s| *s == DrainState::Closing).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Counts live WebSocket sessions so the drain knows when the last one ended.
#[derive(Debug, Clone, Default)]
pub struct SessionTracker {
    /// Shared counter and wake-up.
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    /// Live sessions.
    live: AtomicUsize,
    /// Notified whenever a session ends.
    ended: Notify,
}

/// Held by a session for its lifetime.
#[derive(Debug)]
pub struct SessionGuard {
    /// The tracker to tell on drop.
    inner: Arc<TrackerInner>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.inner.live.fetch_sub(1, Ordering::AcqRel);
        self.inner.ended.notify_waiters();
    }
}

impl SessionTracker {
    /// A tracker with no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a session until the guard is dropped.
    pub fn guard(&self) -> SessionGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        SessionGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Live sessions.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Waits until no session is live, at most `timeout`; returns whether that happened.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let ended = self.inner.ended.notified();
            if self.live() == 0 {
                return true;
            }
            // Re-check now and then in case a notification raced the registration above.
            let wake = (Instant::now() + Duration::from_millis(250)).min(deadline);
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                return self.live() == 0;
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received: draining"),
        _ = term => tracing::info!("SIGTERM received: draining"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tracker_waits_for_the_last_session() {
        let tracker = SessionTracker::new();
        let guard = tracker.guard();
        assert!(!tracker.wait_idle(Duration::from_secs(1)).await);
        let t = tracker.clone();
        let waiter = tokio::spawn(async move { t.wait_idle(Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(guard);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn sessions_see_closing_and_states_only_move_forward() {
        let drain = Drain::new();
        let mut rx = drain.subscribe();
        drain.start();
        assert!(drain.is_draining());
        drain.close_remaining();
        drain.start();
        assert_eq!(drain.state(), DrainState::Closing);
        closing(&mut rx).await;
    }
}
