//! The routing snapshot, as the edge sees it: pulled from a node, cached in the isolate,
//! refreshed in the background, and never lost once had.
//!
//! Policy (stale-while-revalidate):
//! - **fresh** (younger than `SNAPSHOT_TTL_MS`, 15 s): served as is;
//! - **stale**: served as is, and one background refresh is started (`ctx.wait_until` in the
//!   Worker) unless one is running or the last attempt was under [`RETRY_BACKOFF_MS`] ago;
//! - **never had one** (a cold isolate): the first request pulls it inline, because without it
//!   every call would be refused; if that fails, the `FALLBACK_NODES`/`FALLBACK_NUMBERS`
//!   snapshot is served, and further inline attempts wait for the backoff so a dead control
//!   plane does not add a timeout to every call.
//!
//! A failed refresh keeps the last good copy however old: yesterday's node list beats none.
//! Node staleness is judged against the snapshot's own `generated_at`, not the edge's clock, so
//! an old copy still routes to the nodes that were alive when it was made.
//!
//! The cache lives in [`crate::AppState`], which the Worker entry keeps for the isolate's
//! life, so "cached in the isolate" and "cached per test" are the same code. The lock is never
//! held across an await.

use std::sync::{Arc, Mutex, MutexGuard};

use shared::forwarded::ROUTING_SNAPSHOT_PATH;
use shared::routing::RoutingSnapshot;
use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body};

use crate::AppState;
use crate::platform::{Background, FetchError, OutboundMethod, OutboundRequest};

/// Minimum time between two pull attempts after a failure (or while one runs).
pub const RETRY_BACKOFF_MS: u64 = 5_000;

/// Why a pull failed. Logged, never shown to Twilio: the edge keeps serving what it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The control node did not answer.
    #[error("control node unreachable: {0}")]
    Unreachable(#[from] FetchError),
    /// It answered with a non-2xx status (401: the shared secrets differ).
    #[error("control node answered HTTP {0}")]
    Status(u16),
    /// It answered 2xx with something that is not a snapshot.
    #[error("{0}")]
    Malformed(String),
}

/// Where the snapshot a handler got came from, for logs and `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Pulled less than a TTL ago.
    Fresh,
    /// Older than the TTL (a refresh is under way or backing off).
    Stale {
        /// Time since it was pulled.
        age_ms: u64,
    },
    /// No snapshot was ever pulled: built from `FALLBACK_NODES`/`FALLBACK_NUMBERS`.
    Fallback,
}

/// A snapshot and its provenance.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    /// The routing data to use for this request.
    pub snapshot: Arc<RoutingSnapshot>,
    /// Where it came from.
    pub source: SnapshotSource,
}

/// The isolate's copy of the snapshot.
#[derive(Debug)]
pub struct SnapshotCache {
    /// Mutable cache state; std `Mutex` because it is only held for a few field reads.
    state: Mutex<CacheState>,
    /// Served while no snapshot has ever been pulled.
    fallback: Arc<RoutingSnapshot>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The last good snapshot and when it was pulled (edge clock, ms).
    good: Option<(Arc<RoutingSnapshot>, u64)>,
    /// A pull is under way (inline or in the background): do not start another.
    refreshing: bool,
    /// When the last pull started, for the backoff.
    last_attempt_ms: Option<u64>,
}

/// What [`SnapshotCache::current`] decided under the lock.
enum Plan {
    Serve(SnapshotView),
    ServeAndRefresh(SnapshotView),
    PullInline,
}

impl SnapshotCache {
    /// An empty cache whose fallback is `fallback`.
    pub fn new(fallback: RoutingSnapshot) -> Self {
        SnapshotCache {
            state: Mutex::new(CacheState::default()),
            fallback: Arc::new(fallback),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding this lock cannot leave the state half-written (every update is
        // a plain field store), so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The snapshot to route this request with; see the module docs for the policy.
    pub async fn current(state: &AppState, background: &Background) -> SnapshotView {
        let cache = &state.snapshots;
        let now = state.clock.now_ms();
        let plan = {
            let mut s = cache.lock();
            let may_start = !s.refreshing
                && s.last_attempt_ms
                    .is_none_or(|at| now.saturating_sub(at) >= RETRY_BACKOFF_MS);
            match &s.good {
                Some((snapshot, at)) => {
                    let age_ms = now.saturating_sub(*at);
                    let snapshot = snapshot.clone();
                    if age_ms < state.config.snapshot_ttl_ms {
                        Plan::Serve(SnapshotView {
                            snapshot,
                            source: SnapshotSource::Fresh,
                        })
                    } else {
                        let view = SnapshotView {
                            snapshot,
                            source: SnapshotSource::Stale { age_ms },
                        };
                        if may_start {
                            s.refreshing = true;
                            s.last_attempt_ms = Some(now);
                            Plan::ServeAndRefresh(view)
                        } else {
                            Plan::Serve(view)
                        }
                    }
                }
                None if may_start => {
                    s.refreshing = true;
                    s.last_attempt_ms = Some(now);
                    Plan::PullInline
                }
                None => Plan::Serve(cache.fallback_view()),
            }
        };
        match plan {
            Plan::Serve(view) => view,
            Plan::ServeAndRefresh(view) => {
                let state = state.clone();
                background.spawn(async move {
                    let guard = RefreshGuard(state.clone());
                    let result = pull(&state).await;
                    state.snapshots.record(result, state.clock.now_ms());
                    drop(guard);
                });
                view
            }
            Plan::PullInline => {
                let guard = RefreshGuard(state.clone());
                let result = pull(state).await;
                let pulled = result.is_ok();
                cache.record(result, state.clock.now_ms());
                drop(guard);
                match cache.lock().good.as_ref() {
                    Some((snapshot, _)) if pulled => SnapshotView {
                        snapshot: snapshot.clone(),
                        source: SnapshotSource::Fresh,
                    },
                    _ => cache.fallback_view(),
                }
            }
        }
    }

    fn fallback_view(&self) -> SnapshotView {
        SnapshotView {
            snapshot: self.fallback.clone(),
            source: SnapshotSource::Fallback,
        }
    }

    /// Stores a pull's outcome: a newer snapshot replaces the old one; an error is logged and
    /// the old one kept.
    pub fn record(&self, result: Result<RoutingSnapshot, SnapshotError>, now_ms: u64) {
        match result {
            Ok(snapshot) => {
                let mut s = self.lock();
                let keep_old =
                    matches!(&s.good, Some((old, _)) if old.generated_at > snapshot.generated_at);
                tracing::debug!(
                    generated_at = snapshot.generated_at,
                    nodes = snapshot.nodes.len(),
                    numbers = snapshot.numbers.len(),
                    "routing snapshot pulled"
                );
                if keep_old {
                    // An older copy (another control node behind the same URL, lagging):
                    // ours is still the newest known, and it was just confirmed reachable.
                    if let Some((_, at)) = &mut s.good {
                        *at = now_ms;
                    }
                } else {
                    s.good = Some((Arc::new(snapshot), now_ms));
                }
            }
            Err(err) => {
                let s = self.lock();
                match &s.good {
                    Some((old, at)) => tracing::warn!(
                        error = %err,
                        kept_age_s = now_ms.saturating_sub(*at) / 1000,
                        kept_generated_at = old.generated_at,
                        "routing snapshot refresh failed; keeping the last good copy"
                    ),
                    None => tracing::warn!(
                        error = %err,
                        "routing snapshot pull failed and there is no copy yet; using FALLBACK_NODES"
                    ),
                }
            }
        }
    }

    /// Age of the cached snapshot in ms, `None` if there is none (for `/healthz`).
    pub fn age_ms(&self, now_ms: u64) -> Option<u64> {
        self.lock()
            .good
            .as_ref()
            .map(|(_, at)| now_ms.saturating_sub(*at))
    }
}

/// Clears `refreshing` however the pull ends, even if its future is dropped mid-way (a
/// client hanging up on an inline pull), so the cache never stops refreshing.
struct RefreshGuard(AppState);

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.0.snapshots.lock().refreshing = false;
    }
}

/// One pull: `GET CONTROL_URL/internal/routing-snapshot`, HMAC over the empty body.
pub async fn pull(state: &AppState) -> Result<RoutingSnapshot, SnapshotError> {
    let config = &state.config;
    let ts = state.clock.now_s();
    let request = OutboundRequest {
        method: OutboundMethod::Get,
        url: format!("{}{ROUTING_SNAPSHOT_PATH}", config.control_url),
        headers: vec![
            (TIMESTAMP_HEADER, ts.to_string()),
            (
                SIGNATURE_HEADER,
                sign_body(&config.edge_shared_secret, ts, b""),
            ),
            ("accept", "application/json".to_owned()),
        ],
        body: Vec::new(),
        timeout_ms: config.node_timeout_ms,
    };
    let response = state.http.send(request).await?;
    if !(200..300).contains(&response.status) {
        return Err(SnapshotError::Status(response.status));
    }
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| SnapshotError::Malformed("routing snapshot is not UTF-8".into()))?;
    RoutingSnapshot::from_json(text).map_err(|e| SnapshotError::Malformed(e.to_string()))
}
