//! A call's recording: `GET /api/calls/{id}/recording` streams the media from Twilio with the
//! node's credentials (the browser never sees Twilio's URL or needs its account), honouring
//! `Range`; `POST …/recording/start` and `…/stop` control recording of a live call over
//! Twilio's REST API.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::IdPath;
use super::calls;
use super::error::{ApiError, ApiResult};
use super::session::{Session, audit};
use crate::server::AppState;
use crate::twilio_rest::{TwilioClient, TwilioError};

/// The node's Twilio client; `None` when the node has no account.
fn twilio(state: &AppState) -> Option<TwilioClient> {
    TwilioClient::from_config(&state.config)
}

fn unavailable() -> ApiError {
    let mut err = ApiError::bad_request("");
    err.status = StatusCode::SERVICE_UNAVAILABLE;
    err.code = "unavailable";
    err.message = "recordings need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN on the node".into();
    err
}

fn twilio_failed(why: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %why, "Twilio recording request failed");
    let mut err = ApiError::bad_request("");
    err.status = StatusCode::BAD_GATEWAY;
    err.code = "unavailable";
    err.message = "Twilio did not answer the recording request".into();
    err
}

/// `GET /api/calls/{id}/recording`.
pub async fn media(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let call = calls::summary(&state.pool, session.scope()?, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sid: Option<String> = sqlx::query_scalar(
        "SELECT recording_sid FROM recordings
          WHERE call_id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND status = 'completed'
          ORDER BY created_at DESC LIMIT 1",
    )
    .bind(id)
    .bind(call.tenant_id())
    .fetch_optional(&state.pool)
    .await?;
    let sid = sid.ok_or_else(ApiError::not_found)?;
    let client = twilio(&state).ok_or_else(unavailable)?;
    let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok());
    let upstream = match client.fetch_recording_media(&sid, range).await {
        Ok(upstream) => upstream,
        Err(TwilioError::Api { status: 404, .. }) => return Err(ApiError::not_found()),
        Err(err) => return Err(twilio_failed(err)),
    };
    let status = upstream.status();
    let mut response = Response::builder()
        .status(status.as_u16())
        .header(header::CONTENT_TYPE, "audio/mpeg")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=3600");
    for name in [header::CONTENT_LENGTH, header::CONTENT_RANGE] {
        if let Some(value) = upstream.headers().get(&name) {
            response = response.header(name, value.clone());
        }
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(ApiError::internal)
}

/// The recording JSON of the call detail.
fn recording_json(call: Uuid, duration_s: Option<i32>, status: &str) -> Value {
    json!({ "recording": {
        "url": format!("/api/calls/{call}/recording"),
        "duration_s": duration_s,
        "status": status,
    }})
}

/// `POST /api/calls/{id}/recording/start`: live calls only.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<Json<Value>> {
    let call = calls::summary(&state.pool, session.scope()?, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !call.is_live() {
        return Err(ApiError::conflict("the call has ended"));
    }
    let client = twilio(&state).ok_or_else(unavailable)?;
    let sid = client
        .start_call_recording(call.call_sid())
        .await
        .map_err(twilio_failed)?;
    if sid.is_empty() {
        return Err(twilio_failed("no sid in Twilio's answer"));
    }
    let sid = sid.as_str();
    sqlx::query(
        "INSERT INTO recordings (recording_sid, tenant_id, call_id, status) VALUES ($1, $2, $3, 'in_progress')
         ON CONFLICT (recording_sid) DO UPDATE SET status = 'in_progress'",
    )
    .bind(sid)
    .bind(call.tenant_id())
    .bind(id)
    .execute(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(call.tenant_id()),
        "call.recording_start",
        Some(format!("call:{id}")),
        json!({ "recording_sid": sid }),
    )
    .await;
    Ok(Json(recording_json(id, None, "in_progress")))
}

/// `POST /api/calls/{id}/recording/stop`.
pub async fn stop(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<Json<Value>> {
    let call = calls::summary(&state.pool, session.scope()?, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sid: Option<String> = sqlx::query_scalar(
        "SELECT recording_sid FROM recordings
          WHERE call_id = $1 AND tenant_id = $2 AND status IN ('in_progress', 'paused')
          ORDER BY created_at DESC LIMIT 1",
    )
    .bind(id)
    .bind(call.tenant_id())
    .fetch_optional(&state.pool)
    .await?;
    let sid = sid.ok_or_else(|| ApiError::conflict("nothing is being recorded"))?;
    let client = twilio(&state).ok_or_else(unavailable)?;
    client
        .stop_call_recording(call.call_sid(), &sid)
        .await
        .map_err(twilio_failed)?;
    // Twilio's recording callback later moves it on to `completed` with its duration.
    sqlx::query("UPDATE recordings SET status = 'stopped' WHERE recording_sid = $1 AND status <> 'completed'")
        .bind(&sid)
        .execute(&state.pool)
        .await?;
    audit(
        &state.pool,
        &session,
        Some(call.tenant_id()),
        "call.recording_stop",
        Some(format!("call:{id}")),
        json!({ "recording_sid": sid }),
    )
    .await;
    Ok(Json(recording_json(id, None, "stopped")))
}

/// The job kind that deletes a recording at Twilio when the immediate attempt could not.
pub const DELETE_JOB: &str = "recording.delete";

/// Deletes a recording's media at Twilio and marks the row deleted; when Twilio is not
/// configured or does not answer, queues a [`DELETE_JOB`] job instead (the row stays until then).
pub async fn delete_at_twilio(state: &AppState, tenant: Uuid, recording_sid: &str) {
    // A 404 counts as deleted: Twilio no longer has it, which is what was asked.
    let deleted = match twilio(state) {
        Some(client) => client.delete_recording(recording_sid).await.is_ok(),
        None => false,
    };
    let result = if deleted {
        sqlx::query("UPDATE recordings SET deleted_at = now(), url = NULL WHERE recording_sid = $1")
            .bind(recording_sid)
            .execute(&state.pool)
            .await
    } else {
        sqlx::query(
            "INSERT INTO jobs (tenant_id, kind, payload, idempotency_key)
             VALUES ($1, $2, jsonb_build_object('recording_sid', $3::text), $2 || ':' || $3)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(tenant)
        .bind(DELETE_JOB)
        .bind(recording_sid)
        .execute(&state.pool)
        .await
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, recording_sid, "recording deletion not recorded");
    }
}
