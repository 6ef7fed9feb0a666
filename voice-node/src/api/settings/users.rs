//! A tenant's users: `GET/POST /api/users`, `PATCH/DELETE /api/users/{id}`.
//!
//! Admins manage admins and members of their own tenant; only a superadmin makes a superadmin.
//! The tenant's last enabled admin cannot be removed, disabled or demoted (409). Disabling a user
//! or changing their password ends their sessions.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::Patch;
use crate::api::IdPath;
use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Role, Session, audit};
use crate::server::AppState;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// `User` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct User {
    id: Uuid,
    email: String,
    display_name: Option<String>,
    role: String,
    disabled: bool,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, email, display_name, role, disabled_at IS NOT NULL AS disabled, last_login_at, created_at";

fn check_role(session: &Session, role: &str) -> ApiResult<()> {
    match Role::parse(role) {
        None => Err(ApiError::invalid(
            "role",
            "must be admin, member or superadmin",
        )),
        Some(Role::Superadmin) if session.role != Role::Superadmin => Err(ApiError::forbidden()),
        Some(_) => Ok(()),
    }
}

async fn hash(password: String) -> ApiResult<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            "must be at least 12 characters",
        ));
    }
    tokio::task::spawn_blocking(move || crate::admin::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// `GET /api/users`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> ApiResult<Json<serde_json::Value>> {
    let tenant = session.admin_tenant()?;
    let items: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY lower(email)"
    )))
    .bind(tenant)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST /api/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    email: String,
    password: String,
    role: String,
    display_name: Option<String>,
}

/// `POST /api/users`.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<UserCreate>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<User>)> {
    session.require_admin()?;
    let Json(body) = body?;
    check_role(&session, &body.role)?;
    // A superadmin belongs to no tenant; everyone else to the one in scope.
    let tenant = if body.role == "superadmin" {
        None
    } else {
        Some(session.tenant()?)
    };
    let email = body.email.trim().to_owned();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::invalid("email", "is not an e-mail address"));
    }
    let password_hash = hash(body.password).await?;
    let row: User = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (tenant_id, email, password_hash, role, display_name)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(&email)
    .bind(password_hash)
    .bind(&body.role)
    .bind(&body.display_name)
    .fetch_one(&state.pool)
    .await
    .map_err(|err| match ApiError::from(err) {
        e if e.code == "conflict" => ApiError::conflict("that e-mail is taken"),
        e => e,
    })?;
    audit(
        &state.pool,
        &session,
        tenant,
        "user.create",
        Some(format!("user:{}", row.id)),
        json!({ "role": body.role }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Body of `PATCH /api/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    role: Option<String>,
    #[serde(default)]
    display_name: Patch<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// The target user, locked, if it is in the tenant: (role).
async fn target(tx: &mut Transaction<'_, Postgres>, tenant: Uuid, id: Uuid) -> ApiResult<String> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    role.ok_or_else(ApiError::not_found)
}

/// 409 when `id` is the tenant's last enabled admin.
async fn refuse_last_admin(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<()> {
    // Lock the tenant's admins so two concurrent demotions cannot both pass.
    let others: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = $1 AND role = 'admin' AND disabled_at IS NULL
            AND id <> $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    if others.is_empty() {
        Err(ApiError::conflict(
            "the tenant's last admin cannot be removed, disabled or demoted",
        ))
    } else {
        Ok(())
    }
}

/// `PATCH /api/users/{id}`.
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<UserPatch>, JsonRejection>,
) -> ApiResult<Json<User>> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    if let Some(role) = &body.role {
        check_role(&session, role)?;
        if role == "superadmin" {
            // Superadmins have no tenant; make one with POST instead.
            return Err(ApiError::invalid(
                "role",
                "a tenant's user cannot become superadmin",
            ));
        }
    }
    let password_hash = match body.password.clone() {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let current_role = target(&mut tx, tenant, id).await?;
    let demoted = current_role == "admin" && body.role.as_deref().is_some_and(|r| r != "admin");
    let disabled = body.disabled == Some(true);
    if current_role == "admin" && (demoted || disabled) {
        refuse_last_admin(&mut tx, tenant, id).await?;
    }
    let row: User = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET role = COALESCE($2, role),
            display_name = CASE WHEN $3 THEN $4 ELSE display_name END,
            disabled_at = CASE WHEN $5::bool IS NULL THEN disabled_at
                               WHEN $5 THEN COALESCE(disabled_at, now()) ELSE NULL END,
            password_hash = COALESCE($6, password_hash)
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&body.role)
    .bind(!body.display_name.is_missing())
    .bind(body.display_name.value())
    .bind(body.disabled)
    .bind(password_hash.as_ref())
    .fetch_one(&mut *tx)
    .await?;
    if disabled || password_hash.is_some() {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let mut changed = Vec::new();
    if body.role.is_some() {
        changed.push("role");
    }
    if !body.display_name.is_missing() {
        changed.push("display_name");
    }
    if body.disabled.is_some() {
        changed.push("disabled");
    }
    if body.password.is_some() {
        changed.push("password");
    }
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "user.update",
        Some(format!("user:{id}")),
        json!({ "fields": changed }),
    )
    .await;
    Ok(Json(row))
}

/// `DELETE /api/users/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let tenant = session.admin_tenant()?;
    let mut tx = state.pool.begin().await?;
    let role = target(&mut tx, tenant, id).await?;
    if role == "admin" {
        refuse_last_admin(&mut tx, tenant, id).await?;
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "user.delete",
        Some(format!("user:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
