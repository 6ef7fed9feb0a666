//! Screening policy per label and labelled examples: `/api/screening/policies[/{label}]`,
//! `/api/screening/examples[/{id}]`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::api::IdPath;
use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Session, audit};
use crate::server::AppState;

const LABELS: [&str; 4] = ["legit", "marketing", "spam", "unknown"];

/// The node's default action for a label (no row): what the call flow does
/// ([`crate::ai::flow::screening::default_action`]), so the dashboard shows what calls get.
pub fn default_action(label: &str) -> &'static str {
    let label = label
        .parse()
        .unwrap_or(shared::domain::ScreeningLabel::Unknown);
    crate::ai::flow::screening::default_action(label).as_str()
}

/// `ScreeningPolicy` of API.md.
#[derive(Debug, Serialize)]
pub struct ScreeningPolicy {
    label: String,
    action: String,
    min_confidence: f32,
    is_default: bool,
}

fn check_label(label: &str) -> ApiResult<()> {
    if LABELS.contains(&label) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn policies(state: &AppState, tenant: Uuid) -> ApiResult<Vec<ScreeningPolicy>> {
    let rows: Vec<(String, String, f32)> = sqlx::query_as(
        "SELECT label, action, min_confidence FROM screening_policies WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&state.pool)
    .await?;
    Ok(LABELS
        .iter()
        .map(|label| match rows.iter().find(|r| r.0 == *label) {
            Some((label, action, min)) => ScreeningPolicy {
                label: label.clone(),
                action: action.clone(),
                min_confidence: *min,
                is_default: false,
            },
            None => ScreeningPolicy {
                label: (*label).to_owned(),
                action: default_action(label).to_owned(),
                min_confidence: 0.0,
                is_default: true,
            },
        })
        .collect())
}

async fn policy(state: &AppState, tenant: Uuid, label: &str) -> ApiResult<ScreeningPolicy> {
    policies(state, tenant)
        .await?
        .into_iter()
        .find(|p| p.label == label)
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/screening/policies`.
pub async fn list_policies(
    State(state): State<AppState>,
    session: Session,
) -> ApiResult<Json<serde_json::Value>> {
    let tenant = session.admin_tenant()?;
    Ok(Json(json!({ "items": policies(&state, tenant).await? })))
}

/// Body of `PUT /api/screening/policies/{label}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    action: String,
    min_confidence: f32,
}

/// `PUT /api/screening/policies/{label}`.
pub async fn put_policy(
    State(state): State<AppState>,
    session: Session,
    Path(label): Path<String>,
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> ApiResult<Json<ScreeningPolicy>> {
    let tenant = session.admin_tenant()?;
    check_label(&label)?;
    let Json(body) = body?;
    if !["transfer", "take_message", "end_call"].contains(&body.action.as_str()) {
        return Err(ApiError::invalid(
            "action",
            "must be transfer, take_message or end_call",
        ));
    }
    if !(0.0..=1.0).contains(&body.min_confidence) {
        return Err(ApiError::invalid(
            "min_confidence",
            "must be between 0 and 1",
        ));
    }
    sqlx::query(
        "INSERT INTO screening_policies (tenant_id, label, action, min_confidence) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, label) DO UPDATE SET action = EXCLUDED.action, min_confidence = EXCLUDED.min_confidence",
    )
    .bind(tenant)
    .bind(&label)
    .bind(&body.action)
    .bind(body.min_confidence)
    .execute(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "screening_policy.update",
        Some(format!("policy:{label}")),
        json!({ "action": body.action, "min_confidence": body.min_confidence }),
    )
    .await;
    Ok(Json(policy(&state, tenant, &label).await?))
}

/// `DELETE /api/screening/policies/{label}`: back to the default.
pub async fn reset_policy(
    State(state): State<AppState>,
    session: Session,
    Path(label): Path<String>,
) -> ApiResult<Json<ScreeningPolicy>> {
    let tenant = session.admin_tenant()?;
    check_label(&label)?;
    sqlx::query("DELETE FROM screening_policies WHERE tenant_id = $1 AND label = $2")
        .bind(tenant)
        .bind(&label)
        .execute(&state.pool)
        .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "screening_policy.reset",
        Some(format!("policy:{label}")),
        json!({}),
    )
    .await;
    Ok(Json(policy(&state, tenant, &label).await?))
}

/// `ScreeningExample` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ScreeningExample {
    id: Uuid,
    text: String,
    label: String,
    intent: String,
    builtin: bool,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, text, label, intent, tenant_id IS NULL AS builtin, created_at";

/// Query of `GET /api/screening/examples`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleQuery {
    label: Option<String>,
    #[allow(dead_code)] // read by the session extractor
    tenant_id: Option<String>,
}

/// `GET /api/screening/examples`: built-ins and the tenant's own.
pub async fn list_examples(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<ExampleQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let tenant = session.admin_tenant()?;
    let Query(query) = query?;
    let label = query.label.filter(|l| !l.is_empty());
    if let Some(label) = &label
        && !LABELS.contains(&label.as_str())
    {
        return Err(ApiError::bad_request("unknown label"));
    }
    let items: Vec<ScreeningExample> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM screening_examples
          WHERE (tenant_id IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR label = $2)
          ORDER BY tenant_id NULLS FIRST, created_at DESC, id"
    )))
    .bind(tenant)
    .bind(label)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST /api/screening/examples`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleInput {
    text: String,
    label: String,
    intent: Option<String>,
}

/// `POST /api/screening/examples`.
pub async fn create_example(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<ExampleInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ScreeningExample>)> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    if body.text.trim().is_empty() || body.text.chars().count() > 1000 {
        return Err(ApiError::invalid("text", "must be 1–1000 characters"));
    }
    if !LABELS.contains(&body.label.as_str()) {
        return Err(ApiError::invalid(
            "label",
            "must be legit, marketing, spam or unknown",
        ));
    }
    let row: ScreeningExample = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO screening_examples (tenant_id, text, label, intent) VALUES ($1, $2, $3, COALESCE($4, ''))
         RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(body.text.trim())
    .bind(&body.label)
    .bind(&body.intent)
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "screening_example.create",
        Some(format!("example:{}", row.id)),
        json!({ "label": body.label }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(row)))
}

/// `DELETE /api/screening/examples/{id}`: the tenant's own only (a built-in is 403).
pub async fn delete_example(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let tenant = session.admin_tenant()?;
    let owner: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT tenant_id FROM screening_examples WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    match owner {
        Some(None) => return Err(ApiError::forbidden()),
        Some(Some(owner)) if owner == tenant => {}
        _ => return Err(ApiError::not_found()),
    }
    sqlx::query("DELETE FROM screening_examples WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .execute(&state.pool)
        .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "screening_example.delete",
        Some(format!("example:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
