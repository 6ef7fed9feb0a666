//! Knowledge base entries (receptionist FAQ): `GET/POST /api/kb`, `PATCH/DELETE /api/kb/{id}`.
//! An edit of the text clears the embedding, so the embedding job redoes it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::api::IdPath;
use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Session, audit};
use crate::server::AppState;

/// `KbEntry` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct KbEntry {
    id: Uuid,
    question: String,
    answer: String,
    enabled: bool,
    embedded: bool,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, question, answer, enabled, embedding IS NOT NULL AS embedded, updated_at";

/// Query of `GET /api/kb`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbQuery {
    q: Option<String>,
    #[allow(dead_code)] // read by the session extractor
    tenant_id: Option<String>,
}

/// `GET /api/kb`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<KbQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let tenant = session.admin_tenant()?;
    let q = query
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let items: Vec<KbEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM kb_entries WHERE tenant_id = $1
            AND ($2::text IS NULL OR strpos(lower(question || ' ' || answer), lower($2)) > 0)
          ORDER BY updated_at DESC, id"
    )))
    .bind(tenant)
    .bind(q)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST /api/kb`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbCreate {
    question: String,
    answer: String,
    enabled: Option<bool>,
}

fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(ApiError::invalid(field, "is too long"));
    }
    Ok(())
}

/// `POST /api/kb`.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<KbCreate>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<KbEntry>)> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    check_text("question", &body.question, 1000)?;
    check_text("answer", &body.answer, 4000)?;
    let entry: KbEntry = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO kb_entries (tenant_id, question, answer, enabled) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(body.question.trim())
    .bind(body.answer.trim())
    .bind(body.enabled.unwrap_or(true))
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "kb.create",
        Some(format!("kb:{}", entry.id)),
        json!({}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Body of `PATCH /api/kb/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbPatch {
    question: Option<String>,
    answer: Option<String>,
    enabled: Option<bool>,
}

/// `PATCH /api/kb/{id}`.
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<KbPatch>, JsonRejection>,
) -> ApiResult<Json<KbEntry>> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    if let Some(q) = &body.question {
        check_text("question", q, 1000)?;
    }
    if let Some(a) = &body.answer {
        check_text("answer", a, 4000)?;
    }
    let text_changed = body.question.is_some() || body.answer.is_some();
    let entry: Option<KbEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE kb_entries SET
            question = COALESCE($3, question),
            answer = COALESCE($4, answer),
            enabled = COALESCE($5, enabled),
            embedding = CASE WHEN $6 THEN NULL ELSE embedding END,
            embedding_model = CASE WHEN $6 THEN NULL ELSE embedding_model END
          WHERE id = $1 AND tenant_id = $2
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(tenant)
    .bind(body.question.as_deref().map(str::trim))
    .bind(body.answer.as_deref().map(str::trim))
    .bind(body.enabled)
    .bind(text_changed)
    .fetch_optional(&state.pool)
    .await?;
    let entry = entry.ok_or_else(ApiError::not_found)?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "kb.update",
        Some(format!("kb:{id}")),
        json!({}),
    )
    .await;
    Ok(Json(entry))
}

/// `DELETE /api/kb/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let tenant = session.admin_tenant()?;
    let done = sqlx::query("DELETE FROM kb_entries WHERE id = $1 AND tenant_id = $2")
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
        "kb.delete",
        Some(format!("kb:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
