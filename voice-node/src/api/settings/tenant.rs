//! The tenant itself: `GET/POST /api/tenants`, `GET/PATCH /api/tenant` (timezone, business
//! hours, AI switch, SMS text-back template, retention).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::error::{ApiError, ApiResult};
use crate::api::session::{Role, Session, audit};
use crate::server::AppState;

/// `TenantSettings` of API.md.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TenantSettings {
    id: Uuid,
    name: String,
    timezone: String,
    business_hours: Value,
    ai_enabled: bool,
    text_back_template: String,
    retention_days: i32,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, timezone, business_hours, ai_enabled, text_back_template, retention_days, updated_at";

#[derive(Debug, Serialize, sqlx::FromRow)]
struct TenantRef {
    id: Uuid,
    name: String,
}

/// `GET /api/tenants`: all for a superadmin, the own one for everyone else.
pub async fn list(State(state): State<AppState>, session: Session) -> ApiResult<Json<Value>> {
    let own = match session.role {
        Role::Superadmin => None,
        _ => Some(session.tenant_id.ok_or_else(ApiError::unauthorized)?),
    };
    let items: Vec<TenantRef> = sqlx::query_as(
        "SELECT id, name FROM tenants WHERE ($1::uuid IS NULL OR id = $1) ORDER BY name, id",
    )
    .bind(own)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST /api/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    name: String,
    timezone: Option<String>,
}

/// `POST /api/tenants` (superadmin).
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<TenantCreate>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<TenantSettings>)> {
    session.require_superadmin()?;
    let Json(body) = body?;
    check_name(&body.name)?;
    let timezone = body.timezone.unwrap_or_else(|| "UTC".into());
    check_timezone(&state, &timezone).await?;
    let tenant: TenantSettings = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenants (name, timezone) VALUES ($1, $2) RETURNING {COLUMNS}"
    )))
    .bind(body.name.trim())
    .bind(&timezone)
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        &session,
        Some(tenant.id),
        "tenant.create",
        Some(format!("tenant:{}", tenant.id)),
        json!({}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// `GET /api/tenant`.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
) -> ApiResult<Json<TenantSettings>> {
    let tenant = session.admin_tenant()?;
    let row: Option<TenantSettings> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1"
    )))
    .bind(tenant)
    .fetch_optional(&state.pool)
    .await?;
    row.map(Json).ok_or_else(ApiError::not_found)
}

/// Body of `PATCH /api/tenant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    name: Option<String>,
    timezone: Option<String>,
    business_hours: Option<Value>,
    ai_enabled: Option<bool>,
    text_back_template: Option<String>,
    retention_days: Option<i32>,
}

/// `PATCH /api/tenant`.
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    body: Result<Json<TenantPatch>, JsonRejection>,
) -> ApiResult<Json<TenantSettings>> {
    let tenant = session.admin_tenant()?;
    let Json(body) = body?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    if let Some(tz) = &body.timezone {
        check_timezone(&state, tz).await?;
    }
    if let Some(hours) = &body.business_hours {
        check_business_hours(hours).map_err(|why| ApiError::invalid("business_hours", &why))?;
    }
    if let Some(template) = &body.text_back_template {
        let len = template.chars().count();
        if !(1..=480).contains(&len) {
            return Err(ApiError::invalid(
                "text_back_template",
                "must be 1–480 characters",
            ));
        }
    }
    if let Some(days) = body.retention_days
        && !(1..=3650).contains(&days)
    {
        return Err(ApiError::invalid("retention_days", "must be 1–3650"));
    }
    let row: Option<TenantSettings> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tenants SET
            name = COALESCE($2, name),
            timezone = COALESCE($3, timezone),
            business_hours = COALESCE($4, business_hours),
            ai_enabled = COALESCE($5, ai_enabled),
            text_back_template = COALESCE($6, text_back_template),
            retention_days = COALESCE($7, retention_days)
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(body.name.as_deref().map(str::trim))
    .bind(&body.timezone)
    .bind(&body.business_hours)
    .bind(body.ai_enabled)
    .bind(&body.text_back_template)
    .bind(body.retention_days)
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(ApiError::not_found)?;
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "tenant.update",
        Some(format!("tenant:{tenant}")),
        json!({ "fields": changed_fields(&body) }),
    )
    .await;
    Ok(Json(row))
}

fn changed_fields(body: &TenantPatch) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let pairs: [(&'static str, bool); 6] = [
        ("name", body.name.is_some()),
        ("timezone", body.timezone.is_some()),
        ("business_hours", body.business_hours.is_some()),
        ("ai_enabled", body.ai_enabled.is_some()),
        ("text_back_template", body.text_back_template.is_some()),
        ("retention_days", body.retention_days.is_some()),
    ];
    for (name, set) in pairs {
        if set {
            fields.push(name);
        }
    }
    fields
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1–200 characters"));
    }
    Ok(())
}

/// IANA zone names as Postgres knows them (the zone the node reads business hours in).
async fn check_timezone(state: &AppState, tz: &str) -> ApiResult<()> {
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
            .bind(tz)
            .fetch_one(&state.pool)
            .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::invalid("timezone", "is not an IANA time zone"))
    }
}

/// Minutes since midnight of `HH:MM` (`24:00` allowed as a close).
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `BusinessHours` of API.md: day → `[open, close]` ranges, `open < close`, no overlaps.
pub fn check_business_hours(hours: &Value) -> Result<(), String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let days = hours.as_object().ok_or("must be an object")?;
    for (day, ranges) in days {
        if !DAYS.contains(&day.as_str()) {
            return Err(format!("unknown day {day:?}"));
        }
        let ranges = ranges.as_array().ok_or(format!("{day}: must be a list"))?;
        let mut parsed = Vec::new();
        for range in ranges {
            let pair = range
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or(format!("{day}: each range is [open, close]"))?;
            let open = pair[0].as_str().and_then(minutes);
            let close = pair[1].as_str().and_then(minutes);
            match (open, close) {
                (Some(o), Some(c)) if o < c && o < 24 * 60 => parsed.push((o, c)),
                _ => return Err(format!("{day}: ranges are \"HH:MM\" with open < close")),
            }
        }
        parsed.sort_unstable();
        if parsed.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(format!("{day}: ranges overlap"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_hours_accept_ranges_and_refuse_overlaps_and_bad_times() {
        assert!(check_business_hours(&json!({})).is_ok());
        assert!(
            check_business_hours(&json!({"mon": [["09:00", "12:00"], ["13:00", "24:00"]]})).is_ok()
        );
        assert!(
            check_business_hours(&json!({"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}))
                .is_err()
        );
        assert!(check_business_hours(&json!({"mon": [["12:00", "09:00"]]})).is_err());
        assert!(check_business_hours(&json!({"mon": [["9:00", "12:00"]]})).is_err());
        assert!(check_business_hours(&json!({"fun": []})).is_err());
        assert!(check_business_hours(&json!([])).is_err());
    }
}
