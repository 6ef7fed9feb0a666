//! Receptionist transfer targets: `GET/POST /api/departments`, `PATCH/DELETE
//! /api/departments/{id}`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::check_e164;
use crate::api::IdPath;
use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Session, audit};
use crate::server::AppState;

/// `Department` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Department {
    id: Uuid,
    name: String,
    transfer_to: String,
    description: String,
    keywords: Vec<String>,
    enabled: bool,
    position: i32,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, transfer_to, description, keywords, enabled, position, updated_at";

/// `DepartmentInput` of API.md; every field optional here (PATCH), `name` and `transfer_to`
/// checked for on create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentInput {
    name: Option<String>,
    transfer_to: Option<String>,
    description: Option<String>,
    keywords: Option<Vec<String>>,
    enabled: Option<bool>,
    position: Option<i32>,
}

impl DepartmentInput {
    fn check(&self) -> ApiResult<()> {
        if let Some(name) = &self.name
            && !valid_name(name)
        {
            return Err(ApiError::invalid("name", "must be 1–100 characters"));
        }
        if let Some(to) = &self.transfer_to
            && !shared::routing::is_sip_uri(to)
        {
            check_e164("transfer_to", to).map_err(|_| {
                ApiError::invalid("transfer_to", "must be E.164 or a sip:/sips: URI")
            })?;
        }
        Ok(())
    }
}

/// A department name as stored: 1 to 100 characters once trimmed (the dashboard and
/// `voice-node department add` both check it).
pub fn valid_name(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && name.chars().count() <= 100
}

/// `GET /api/departments`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> ApiResult<Json<serde_json::Value>> {
    let tenant = session.admin_tenant()?;
    let items: Vec<Department> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM departments WHERE tenant_id = $1 ORDER BY position, name"
    )))
    .bind(tenant)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST /api/departments`.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<DepartmentInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    body.check()?;
    let name = body
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let to = body
        .transfer_to
        .as_deref()
        .ok_or_else(|| ApiError::invalid("transfer_to", "is required"))?;
    let row: Department = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO departments (tenant_id, name, transfer_to, description, keywords, enabled, position)
         VALUES ($1, $2, $3, COALESCE($4, ''), COALESCE($5, '{{}}'::text[]), COALESCE($6, true), COALESCE($7, 0))
         RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(name.trim())
    .bind(to)
    .bind(&body.description)
    .bind(&body.keywords)
    .bind(body.enabled)
    .bind(body.position)
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "department.create",
        Some(format!("department:{}", row.id)),
        json!({}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(row)))
}

/// `PATCH /api/departments/{id}`.
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<DepartmentInput>, JsonRejection>,
) -> ApiResult<Json<Department>> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    body.check()?;
    let row: Option<Department> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE departments SET name = COALESCE($3, name), transfer_to = COALESCE($4, transfer_to),
            description = COALESCE($5, description), keywords = COALESCE($6, keywords),
            enabled = COALESCE($7, enabled), position = COALESCE($8, position)
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(tenant)
    .bind(body.name.as_deref().map(str::trim))
    .bind(&body.transfer_to)
    .bind(&body.description)
    .bind(&body.keywords)
    .bind(body.enabled)
    .bind(body.position)
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(ApiError::not_found)?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "department.update",
        Some(format!("department:{id}")),
        json!({}),
    )
    .await;
    Ok(Json(row))
}

/// `DELETE /api/departments/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let tenant = session.admin_tenant()?;
    let done = sqlx::query("DELETE FROM departments WHERE id = $1 AND tenant_id = $2")
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
        "department.delete",
        Some(format!("department:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
