//! `POST /api/voice/token`: a Twilio Voice SDK access token for the browser dialer.
//!
//! The identity `cg_<tenant hex>_<user hex>` lets the edge's `/telephony/outbound` find the
//! tenant (Twilio allows only `[A-Za-z0-9_]` in identities).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use shared::access_token::{AccessToken, DEFAULT_TTL_SECS, VoiceGrant};

use super::error::{ApiError, ApiResult};
use super::session::Session;
use crate::server::AppState;

/// `POST /api/voice/token`.
pub async fn issue(State(state): State<AppState>, session: Session) -> ApiResult<Json<Value>> {
    let tenant = session.tenant()?;
    let config = &state.config;
    let (Some(account), Some(key_sid), Some(key_secret), Some(app_sid)) = (
        config.twilio_account_sid.as_deref(),
        config.twilio_api_key_sid.as_deref(),
        config.twilio_api_key_secret.as_deref(),
        config.twiml_app_sid.as_deref(),
    ) else {
        return Err(ApiError::voice_not_configured());
    };
    let identity = format!("cg_{}_{}", tenant.as_simple(), session.user_id.as_simple());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token = AccessToken::new(account, key_sid, key_secret, identity.clone())
        .issued_at(true)
        .voice_grant(
            VoiceGrant::new()
                .incoming_allow(true)
                .outgoing_application(app_sid),
        )
        .encode(now);
    let caller_ids: Vec<String> =
        sqlx::query_scalar("SELECT e164 FROM phone_numbers WHERE tenant_id = $1 ORDER BY e164")
            .bind(tenant)
            .fetch_all(&state.pool)
            .await?;
    let expires_at = Utc
        .timestamp_opt((now + u64::from(DEFAULT_TTL_SECS)) as i64, 0)
        .single()
        .ok_or_else(|| ApiError::internal("clock out of range"))?;
    Ok(Json(json!({
        "token": token,
        "identity": identity,
        "expires_at": expires_at,
        "caller_ids": caller_ids,
    })))
}
