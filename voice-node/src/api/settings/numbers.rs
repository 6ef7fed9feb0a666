//! Phone numbers and their modes: `GET/POST /api/numbers`, `PATCH/DELETE /api/numbers/{id}`.
//! Only a superadmin adds or releases numbers (they are bought at Twilio); a tenant's admin
//! changes mode, owner phone, name and region. Changes reach the edge with the next snapshot.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Patch, check_e164, check_mode};
use crate::api::IdPath;
use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Session, audit};
use crate::server::AppState;

/// `PhoneNumber` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PhoneNumber {
    id: Uuid,
    e164: String,
    friendly_name: Option<String>,
    mode: String,
    owner_phone: Option<String>,
    region: Option<String>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, e164, friendly_name, mode, owner_phone, region, updated_at";

/// `GET /api/numbers`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> ApiResult<Json<serde_json::Value>> {
    let tenant = session.admin_tenant()?;
    let items: Vec<PhoneNumber> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM phone_numbers WHERE tenant_id = $1 ORDER BY e164"
    )))
    .bind(tenant)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST /api/numbers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberCreate {
    e164: String,
    mode: Option<String>,
    owner_phone: Option<String>,
    friendly_name: Option<String>,
}

/// `POST /api/numbers` (superadmin).
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<NumberCreate>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<PhoneNumber>)> {
    session.require_superadmin()?;
    let tenant = session.tenant()?;
    let Json(body) = body?;
    let e164 = check_e164("e164", &body.e164)?;
    let mode = body.mode.unwrap_or_else(|| "screening".into());
    check_mode(&mode)?;
    let owner = body
        .owner_phone
        .as_deref()
        .map(|o| check_e164("owner_phone", o))
        .transpose()?;
    if mode == "forward" && owner.is_none() {
        return Err(ApiError::invalid(
            "owner_phone",
            "is required in forward mode",
        ));
    }
    let row: PhoneNumber = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO phone_numbers (tenant_id, e164, mode, owner_phone, friendly_name)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(&e164)
    .bind(&mode)
    .bind(owner)
    .bind(body.friendly_name)
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "number.create",
        Some(format!("number:{}", row.id)),
        json!({ "mode": mode }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Body of `PATCH /api/numbers/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    mode: Option<String>,
    #[serde(default)]
    owner_phone: Patch<String>,
    #[serde(default)]
    friendly_name: Patch<String>,
    #[serde(default)]
    region: Patch<String>,
}

/// `PATCH /api/numbers/{id}`.
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<NumberPatch>, JsonRejection>,
) -> ApiResult<Json<PhoneNumber>> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    if let Some(mode) = &body.mode {
        check_mode(mode)?;
    }
    if let Patch::Set(owner) = &body.owner_phone {
        check_e164("owner_phone", owner)?;
    }
    let mut tx = state.pool.begin().await?;
    let current: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT mode, owner_phone FROM phone_numbers WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let (mode, owner) = current.ok_or_else(ApiError::not_found)?;
    let mode = body.mode.clone().unwrap_or(mode);
    let owner = body.owner_phone.clone().apply(owner);
    if mode == "forward" && owner.is_none() {
        return Err(ApiError::invalid(
            "owner_phone",
            "is required in forward mode",
        ));
    }
    let row: PhoneNumber = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE phone_numbers SET mode = $2, owner_phone = $3,
            friendly_name = CASE WHEN $4 THEN $5 ELSE friendly_name END,
            region = CASE WHEN $6 THEN $7 ELSE region END
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&mode)
    .bind(owner)
    .bind(!body.friendly_name.is_missing())
    .bind(body.friendly_name.value())
    .bind(!body.region.is_missing())
    .bind(body.region.value())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "number.update",
        Some(format!("number:{id}")),
        json!({ "mode": mode }),
    )
    .await;
    Ok(Json(row))
}

/// `DELETE /api/numbers/{id}` (superadmin): calls keep their history.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    session.require_superadmin()?;
    let tenant = session.tenant()?;
    let done = sqlx::query("DELETE FROM phone_numbers WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .execute(&state.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "number.delete",
        Some(format!("number:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
