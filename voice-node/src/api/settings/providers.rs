//! AI pipeline providers per tenant: `GET /api/providers`, `PUT/DELETE /api/providers/{kind}`.
//! Keys are write-only: sealed ([`crate::api::seal`]) before they reach Postgres, never returned,
//! only `has_api_key`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Patch;
use crate::api::error::{ApiError, ApiResult};
use crate::api::seal::SealKey;
use crate::api::session::{Session, audit};
use crate::server::AppState;

const KINDS: [&str; 3] = ["stt", "tts", "llm"];

/// Provider names per kind (API.md "Providers").
fn providers_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "stt" => &["offline", "deepgram", "openai"],
        "tts" => &["offline", "elevenlabs", "openai", "deepgram"],
        "llm" => &["offline", "openai"],
        _ => &[],
    }
}

/// `ProviderSetting` of API.md.
#[derive(Debug, Serialize)]
pub struct ProviderSetting {
    kind: String,
    provider: String,
    base_url: Option<String>,
    model: Option<String>,
    settings: Value,
    has_api_key: bool,
    is_default: bool,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    kind: String,
    provider: String,
    base_url: Option<String>,
    model: Option<String>,
    settings: Value,
    has_api_key: bool,
    updated_at: DateTime<Utc>,
}

fn default_setting(kind: &str) -> ProviderSetting {
    ProviderSetting {
        kind: kind.to_owned(),
        provider: "offline".into(),
        base_url: None,
        model: None,
        settings: json!({}),
        has_api_key: false,
        is_default: true,
        updated_at: None,
    }
}

async fn settings(state: &AppState, tenant: Uuid) -> ApiResult<Vec<ProviderSetting>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT kind, provider, base_url, model, settings, api_key_encrypted IS NOT NULL AS has_api_key,
                updated_at
           FROM tenant_provider_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&state.pool)
    .await?;
    Ok(KINDS
        .iter()
        .map(|kind| match rows.iter().find(|r| r.kind == *kind) {
            Some(r) => ProviderSetting {
                kind: r.kind.clone(),
                provider: r.provider.clone(),
                base_url: r.base_url.clone(),
                model: r.model.clone(),
                settings: r.settings.clone(),
                has_api_key: r.has_api_key,
                is_default: false,
                updated_at: Some(r.updated_at),
            },
            None => default_setting(kind),
        })
        .collect())
}

async fn one(state: &AppState, tenant: Uuid, kind: &str) -> ApiResult<ProviderSetting> {
    settings(state, tenant)
        .await?
        .into_iter()
        .find(|s| s.kind == kind)
        .ok_or_else(ApiError::not_found)
}

fn check_kind(kind: &str) -> ApiResult<()> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// `GET /api/providers`.
pub async fn list(State(state): State<AppState>, session: Session) -> ApiResult<Json<Value>> {
    let tenant = session.admin_tenant()?;
    Ok(Json(json!({ "items": settings(&state, tenant).await? })))
}

/// `ProviderInput` of API.md.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    provider: String,
    #[serde(default)]
    base_url: Patch<String>,
    #[serde(default)]
    model: Patch<String>,
    settings: Option<Value>,
    /// Omitted: keep the stored key; null: erase it.
    #[serde(default)]
    api_key: Patch<String>,
}

/// `PUT /api/providers/{kind}`.
pub async fn put(
    State(state): State<AppState>,
    session: Session,
    Path(kind): Path<String>,
    body: Result<Json<ProviderInput>, JsonRejection>,
) -> ApiResult<Json<ProviderSetting>> {
    let tenant = session.admin_tenant()?;
    check_kind(&kind)?;
    let Json(body) = body?;
    if !providers_of(&kind).contains(&body.provider.as_str()) {
        return Err(ApiError::invalid(
            "provider",
            &format!("must be one of {}", providers_of(&kind).join(", ")),
        ));
    }
    if let Patch::Set(url) = &body.base_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::invalid("base_url", "must be an http(s) URL"));
    }
    let settings = body.settings.clone().unwrap_or_else(|| json!({}));
    if !settings.is_object() {
        return Err(ApiError::invalid("settings", "must be an object"));
    }
    let seal = SealKey::from_config(
        state.config.seal_key_hex.as_deref(),
        &state.config.edge_shared_secret,
    );
    let sealed = match &body.api_key {
        Patch::Set(key) if !key.is_empty() => {
            Some(seal.seal(tenant, &kind, key).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    let key_action = match &body.api_key {
        Patch::Missing => "keep",
        Patch::Null => "erase",
        Patch::Set(k) if k.is_empty() => "erase",
        Patch::Set(_) => "set",
    };
    sqlx::query(
        "INSERT INTO tenant_provider_settings (tenant_id, kind, provider, base_url, model, settings, api_key_encrypted)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, kind) DO UPDATE SET
            provider = EXCLUDED.provider, base_url = EXCLUDED.base_url, model = EXCLUDED.model,
            settings = EXCLUDED.settings,
            api_key_encrypted = CASE $8 WHEN 'keep' THEN tenant_provider_settings.api_key_encrypted
                                        ELSE EXCLUDED.api_key_encrypted END",
    )
    .bind(tenant)
    .bind(&kind)
    .bind(&body.provider)
    .bind(body.base_url.value())
    .bind(body.model.value())
    .bind(&settings)
    .bind(sealed)
    .bind(key_action)
    .execute(&state.pool)
    .await?;
    // The key itself is never logged; only what happened to it.
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "provider.update",
        Some(format!("provider:{kind}")),
        json!({ "provider": body.provider, "api_key": key_action }),
    )
    .await;
    Ok(Json(one(&state, tenant, &kind).await?))
}

/// `DELETE /api/providers/{kind}`: back to offline, the stored key erased.
pub async fn reset(
    State(state): State<AppState>,
    session: Session,
    Path(kind): Path<String>,
) -> ApiResult<Json<ProviderSetting>> {
    let tenant = session.admin_tenant()?;
    check_kind(&kind)?;
    sqlx::query("DELETE FROM tenant_provider_settings WHERE tenant_id = $1 AND kind = $2")
        .bind(tenant)
        .bind(&kind)
        .execute(&state.pool)
        .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "provider.reset",
        Some(format!("provider:{kind}")),
        json!({}),
    )
    .await;
    Ok(Json(default_setting(&kind)))
}
