//! `WS /media` and `WS /media/{node_id}`: the checks made before a Media Stream is upgraded.
//!
//! In order:
//! 1. A stream for another node is answered `fly-replay: instance=ID` without upgrading, so
//!    Fly's proxy replays the upgrade to the node the edge chose (edge_fly.md §2.3).
//! 2. A draining node refuses new streams (503) so they are not cut by its exit.
//! 3. `X-Twilio-Signature` must sign the `wss://` URL built from `PUBLIC_BASE_URL` and the
//!    request path (twilio.md §1.5); otherwise 403.
//!
//! Then the socket is upgraded and one task runs the call ([`crate::media::session`]); it holds
//! a [`crate::drain::SessionGuard`] so the drain knows when the last call ended.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;

use super::AppState;
use crate::media::{session, socket};

/// Header Twilio signs the upgrade with.
const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// `GET /media`.
pub async fn media(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    accept(state, None, &uri, &headers, upgrade)
}

/// `GET /media/{node_id}`.
pub async fn media_for_node(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    accept(state, Some(&node_id), &uri, &headers, upgrade)
}

fn accept(
    state: AppState,
    node_id: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let refuse = |status: StatusCode, message: &'static str| {
        state.metrics.streams_refused.inc();
        (status, message).into_response()
    };
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
        return refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature\n");
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
    // Taken before the task starts, so a drain that begins now still waits for this call.
    let guard = state.sessions.guard();
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
