//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/me`, and the login rate limiter.
//!
//! Passwords are checked with Argon2id off the async threads; an unknown e-mail is checked against
//! a dummy hash so it costs the same time (no user enumeration by timing).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::session::{self, ClientIp, Role, Session};
use crate::server::AppState;

/// Attempts per e-mail address within [`LoginLimiter::window`].
pub const ATTEMPTS_PER_EMAIL: u32 = 5;
/// Attempts per client address within [`LoginLimiter::window`].
pub const ATTEMPTS_PER_IP: u32 = 30;
/// The window both limits count in.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(300);

/// Fixed-window counters of login attempts per client address and per e-mail.
///
/// Written by hand rather than with `tower_governor`: that keys on the peer address only, and the
/// per-e-mail limit needs the body. A std `Mutex` is fine: it is never held across an `.await`.
#[derive(Debug)]
pub struct LoginLimiter {
    /// key → (window start, attempts in it).
    counters: Mutex<HashMap<String, (Instant, u32)>>,
    /// Length of a counting window.
    window: Duration,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            counters: Mutex::new(HashMap::new()),
            window: LIMIT_WINDOW,
        }
    }
}

impl LoginLimiter {
    /// Counts one attempt under each key; `Err(seconds)` when any is over its limit.
    pub fn attempt(&self, keys: &[(String, u32)]) -> Result<(), u64> {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() > 100_000 {
            let window = self.window;
            counters.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let mut wait = None;
        for (key, limit) in keys {
            let entry = counters.entry(key.clone()).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
            if entry.1 > *limit {
                let left = self.window.saturating_sub(now.duration_since(entry.0));
                wait = Some(wait.unwrap_or(0).max(left.as_secs() + 1));
            }
        }
        wait.map_or(Ok(()), Err)
    }
}

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// `Me` of API.md.
#[derive(Debug, Serialize)]
pub struct Me {
    id: Uuid,
    email: String,
    display_name: Option<String>,
    role: Role,
    tenant_id: Option<Uuid>,
    tenant_name: Option<String>,
}

impl From<&Session> for Me {
    fn from(s: &Session) -> Self {
        Me {
            id: s.user_id,
            email: s.email.clone(),
            display_name: s.display_name.clone(),
            role: s.role,
            tenant_id: s.tenant_id,
            tenant_name: s.tenant_name.clone(),
        }
    }
}

/// A valid Argon2id hash of nothing anyone knows, verified for unknown e-mails.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        crate::admin::hash_password("callgate-dummy-password-for-timing").unwrap_or_default()
    })
}

fn verify(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[derive(sqlx::FromRow)]
struct Credentials {
    id: Uuid,
    password_hash: String,
}

/// Whether the session cookie gets `Secure`.
pub fn secure_cookies(state: &AppState) -> bool {
    state.config.public_base_url.starts_with("https://")
}

/// `POST /api/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(body) = body?;
    let email = body.email.trim().to_lowercase();
    let keys = [
        (
            format!("ip:{}", ip.map_or("unknown".into(), |ip| ip.to_string())),
            ATTEMPTS_PER_IP,
        ),
        (format!("email:{email}"), ATTEMPTS_PER_EMAIL),
    ];
    if let Err(wait) = state.api.login_limiter.attempt(&keys) {
        tracing::warn!(ip = ?ip, "login rate limited");
        return Err(ApiError::rate_limited(wait));
    }
    let user: Option<Credentials> = sqlx::query_as(
        "SELECT id, password_hash FROM users WHERE lower(email) = $1 AND disabled_at IS NULL",
    )
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || verify(&hash, &password))
        .await
        .map_err(ApiError::internal)?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => return Err(ApiError::invalid_credentials()),
    };
    let (token, hash) = session::new_token()?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(300).collect::<String>());
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, expires_at, user_agent, ip)
         VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5::text::inet)",
    )
    .bind(&hash[..])
    .bind(user.id)
    .bind(session::MAX_AGE.num_seconds() as f64)
    .bind(user_agent)
    .bind(ip.map(|ip| ip.to_string()))
    .execute(&state.pool)
    .await?;
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user.id)
        .execute(&state.pool)
        .await?;
    let mut me = session::lookup(&state.pool, &token)
        .await?
        .ok_or_else(|| ApiError::internal("new session not found"))?;
    me.ip = ip;
    session::audit(
        &state.pool,
        &me,
        me.tenant_id,
        "auth.login",
        Some(format!("user:{}", me.user_id)),
        serde_json::json!({}),
    )
    .await;
    let cookie = session::set_cookie(&token, secure_cookies(&state));
    let mut response = Json(serde_json::json!({ "user": Me::from(&me) })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// `POST /api/auth/logout`: 204 with or without a session.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = session::cookie_token(&headers)
        && let Some(me) = session::lookup(&state.pool, &token).await?
    {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(me.session_id)
            .execute(&state.pool)
            .await?;
        session::audit(
            &state.pool,
            &me,
            me.tenant_id,
            "auth.logout",
            Some(format!("user:{}", me.user_id)),
            serde_json::json!({}),
        )
        .await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie(secure_cookies(&state)))
            .map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// `GET /api/me`.
pub async fn me(session: Session) -> Json<Me> {
    Json(Me::from(&session))
}
