//! `WS /media` and `WS /media/{node_id}`: the checks made before a Media Stream is upgraded.
//!
//! In order:
//! 1. A stream for another node is answered `fly-replay: instance=ID` without upgrading, so
//!    Fly's proxy replays the upgrade to the node the edge chose (edge_fly.md §2.3).
//! 2. A draining node refuses new streams (503) so they are not cut by its exit.
//! 3. `X-Twilio-Signature` must sign the `wss://` URL built from `PUBLIC_BASE_URL` and the
//!    request path (twilio.md §1.5); otherwise 403.
//! 4. A node already holding `NODE_CAPACITY` streams refuses the next one (503, counted in
//!    `callgate_streams_refused_capacity_total`). The edge spills over on the load in the
//!    heartbeat, which is seconds old; this check is what actually keeps the node under the
//!    load it was benchmarked to carry. Twilio then runs `<Connect action>` (stream-fallback).
//!
//! A source whose handshakes keep failing the signature check is answered 429 with
//! `Retry-After` before any of this ([`HandshakeLimiter`]); Twilio's own handshakes are signed,
//! so they never drain its budget.
//!
//! Then the socket is upgraded and one task runs the call ([`crate::media::session`]); it holds
//! a [`crate::drain::SessionGuard`] so the drain knows when the last call ended.

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use shared::failure_limit::{FailureBudget, FailureLimiter};
use tokio::time::Instant;

use super::AppState;
use crate::media::{session, socket};

/// Header Twilio signs the upgrade with.
const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Failed handshakes per client address: a source that keeps sending unsigned upgrades is
/// refused (429) before the signature is computed. A std mutex: held for a hash lookup, never
/// across an await.
#[derive(Debug)]
pub struct HandshakeLimiter {
    /// The per-source failure buckets.
    buckets: Mutex<FailureLimiter>,
    /// Time zero for the buckets' milliseconds (tokio's clock, so paused-clock tests work).
    epoch: Instant,
}

impl Default for HandshakeLimiter {
    fn default() -> Self {
        HandshakeLimiter {
            buckets: Mutex::new(FailureLimiter::new(FailureBudget::default())),
            epoch: Instant::now(),
        }
    }
}

impl HandshakeLimiter {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `Some(retry_after_s)` when `source` is over its failure budget.
    fn limited(&self, source: SocketAddr) -> Option<u64> {
        let now = self.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .check(source.ip(), now)
            .err()
            .map(|l| l.retry_after_s)
    }

    /// Counts a failed handshake against `source`.
    fn failed(&self, source: SocketAddr) {
        let now = self.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.record_failure(source.ip(), now);
    }
}

/// The client's address, when the server recorded it (the node's accept loop always does).
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// `GET /media`.
pub async fn media(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    accept(state, peer, None, &uri, &headers, upgrade)
}

/// `GET /media/{node_id}`.
pub async fn media_for_node(
    State(state): State<AppState>,
    peer: Peer,
    Path(node_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    accept(state, peer, Some(&node_id), &uri, &headers, upgrade)
}

fn accept(
    state: AppState,
    peer: Option<SocketAddr>,
    node_id: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let refuse = |status: StatusCode, message: &'static str| {
        state.metrics.streams_refused.inc();
        (status, message).into_response()
    };
    if let Some(retry_after) = peer.and_then(|p| state.handshake_limiter.limited(p)) {
        state.metrics.streams_refused.inc();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed handshakes from this address; retry after {retry_after} s\n"),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if let Some(target) = node_id
        && target != state.config.node_id
    {
        state.metrics.streams_refused.inc();
        let Ok(replay) = HeaderValue::from_str(&format!("instance={target}")) else {
            return (StatusCode::BAD_REQUEST, "invalid node id\n").into_response();
        };
        tracing::info!(node = %state.config.node_id, target, "stream for another node: fly-replay");
        let mut response = (
            StatusCode::CONFLICT,
            format!("this stream belongs to node {target}; replaying there\n"),
        )
            .into_response();
        response.headers_mut().insert("fly-replay", replay);
        return response;
    }
    if state.drain.is_draining() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "node is draining\n");
    }
    let signed_url = state.config.signed_ws_url(uri.path());
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(err) =
        shared::signature::validate_url(&state.config.twilio_auth_token, &signed_url, signature)
    {
        tracing::warn!(path = uri.path(), error = %err, "media handshake refused: bad X-Twilio-Signature");
        if let Some(peer) = peer {
            state.handshake_limiter.failed(peer);
        }
        return refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature\n");
    }
    // Taken before the capacity check and the upgrade, so concurrent upgrades cannot all see
    // room for one more; a drain that begins now still waits for this call.
    let guard = state.sessions.guard();
    let capacity = state.config.capacity as usize;
    if state.sessions.live() > capacity {
        drop(guard);
        state.metrics.streams_refused_capacity.inc();
        tracing::warn!(node = %state.config.node_id, capacity, "media stream refused: node at capacity");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "node at capacity (NODE_CAPACITY streams open)\n",
        );
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(status) => return refuse(status, "expected a WebSocket upgrade\n"),
    };
    let (response, upgraded) = match upgrade.upgrade() {
        Ok(pair) => pair,
        Err(err) => {
            tracing::warn!(error = %err, "WebSocket upgrade failed");
            return refuse(StatusCode::BAD_REQUEST, "WebSocket upgrade failed\n");
        }
    };
    tokio::spawn(async move {
        let _guard = guard;
        let ws = match upgraded.await {
            Ok(ws) => ws,
            Err(err) => {
                tracing::debug!(error = %err, "client left during the upgrade");
                return;
            }
        };
        state.metrics.streams_accepted.inc();
        let (events, sink) = socket::split(ws, std::sync::Arc::clone(&state.metrics));
        let summary = session::run(events, sink, std::sync::Arc::clone(&state.session_ctx)).await;
        tracing::debug!(?summary, "media session over");
    });
    response.map(Body::new)
}
