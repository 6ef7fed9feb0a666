//! `/internal/…`: the edge's API on a node, every request signed with `EDGE_SHARED_SECRET`
//! (`X-Callgate-Timestamp` + `X-Callgate-Signature` over the body; a GET signs an empty body).
//!
//! - `POST /internal/events`: a forwarded Twilio callback ([`shared::forwarded::ForwardedEvent`]),
//!   applied once per idempotency key ([`crate::store::callbacks`]). 200 `applied`/`duplicate`,
//!   202 `ignored` (nothing to attach it to), 400 malformed, 401 bad signature, 503 database down
//!   (the edge offers it to another node; Twilio retries).
//! - `GET /internal/calls/{call_sid}`: the call as `voice-node simulate` prints it.
//! - `GET /internal/routing-snapshot`: numbers, caller lists and live nodes for the edge.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use shared::forwarded::{EVENTS_PATH, ForwardedEvent, ROUTING_SNAPSHOT_PATH};
use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_body};

use crate::server::AppState;
use crate::server::error::ApiError;
use crate::store::call_report;
use crate::store::callbacks::{self, Applied, CallbackError};

/// How long `/internal/calls/{sid}` waits for the call's queued writes before reading.
const REPORT_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The internal routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(EVENTS_PATH, post(events))
        .route("/internal/calls/{call_sid}", get(call))
        .route(ROUTING_SNAPSHOT_PATH, get(routing_snapshot))
}

/// Checks the edge's signature over `body`.
fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    signed_body::verify_body(
        &state.config.edge_shared_secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        body,
        now,
        signed_body::DEFAULT_MAX_SKEW_S,
    )
    .map_err(|err| {
        tracing::warn!(error = %err, "internal request refused");
        ApiError::Unauthorized(err.to_string())
    })
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let event = ForwardedEvent::from_json(text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let applied = callbacks::apply(&state.pool, &event)
        .await
        .map_err(|err| match err {
            CallbackError::Malformed { .. } => ApiError::BadRequest(err.to_string()),
            CallbackError::Database(db) => ApiError::Unavailable(db),
        })?;
    tracing::info!(kind = %event.kind, key = %event.idempotency_key, result = ?applied, "forwarded event");
    Ok(match applied {
        Applied::Applied => (StatusCode::OK, Json(json!({ "result": "applied" }))).into_response(),
        Applied::Duplicate => {
            (StatusCode::OK, Json(json!({ "result": "duplicate" }))).into_response()
        }
        Applied::Ignored(reason) => (
            StatusCode::ACCEPTED,
            Json(json!({ "result": "ignored", "reason": reason })),
        )
            .into_response(),
    })
}

async fn call(
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&state, &headers, b"")?;
    // The call's last writes may still be queued (it may have ended a moment ago).
    state.store.flush(REPORT_FLUSH_WAIT).await;
    let report = call_report::load(&state.pool, &call_sid)
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(report).into_response())
}

async fn routing_snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&state, &headers, b"")?;
    let json = state.snapshot.json().await.map_err(ApiError::Unavailable)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response())
}
