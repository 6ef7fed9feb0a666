//! The signed-in user of a request: the `callgate_session` cookie looked up by its SHA-256, the
//! user's role and tenant, and the tenant scope every query is filtered by.
//!
//! Sessions expire after [`IDLE_TIMEOUT`] without a request and [`MAX_AGE`] after login; each
//! request refreshes `last_seen_at`. A superadmin (no tenant) picks one with `?tenant_id=`; an
//! admin or member naming another tenant gets 404 (API.md "Roles and tenant scope").

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::ApiError;
use crate::server::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "callgate_session";
/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: chrono::Duration = chrono::Duration::hours(12);
/// A session ends this long after login whatever happens.
pub const MAX_AGE: chrono::Duration = chrono::Duration::days(30);

/// A role of `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every tenant.
    Superadmin,
    /// One tenant's settings, users and calls.
    Admin,
    /// One tenant's calls and the dialer.
    Member,
}

impl Role {
    /// Parses the schema's spelling.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "superadmin" => Some(Role::Superadmin),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// The schema's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// The user behind a request, and the tenant it asked for.
#[derive(Debug, Clone)]
pub struct Session {
    /// `sessions.id`: logout deletes it.
    pub session_id: Uuid,
    /// `users.id`: audit rows name it.
    pub user_id: Uuid,
    /// Login name, for `GET /api/me`.
    pub email: String,
    /// Shown in the app's header.
    pub display_name: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// The user's own tenant (None only for a superadmin).
    pub tenant_id: Option<Uuid>,
    /// Its name, for `GET /api/me`.
    pub tenant_name: Option<String>,
    /// `?tenant_id=` of the request, if any.
    pub requested_tenant: Option<Uuid>,
    /// The client's address (audit rows); None when the server was not given it.
    pub ip: Option<IpAddr>,
}

impl Session {
    /// The tenant this request covers: `None` means "every tenant" (a superadmin without
    /// `tenant_id`). An admin or member naming another tenant: 404.
    pub fn scope(&self) -> Result<Option<Uuid>, ApiError> {
        match (self.role, self.requested_tenant) {
            (Role::Superadmin, requested) => Ok(requested),
            (_, Some(requested)) if Some(requested) != self.tenant_id => Err(ApiError::not_found()),
            _ => self.tenant_id.map(Some).ok_or_else(ApiError::unauthorized),
        }
    }

    /// The one tenant a tenant-scoped endpoint works on (`400 tenant_required` for a
    /// superadmin without `tenant_id`).
    pub fn tenant(&self) -> Result<Uuid, ApiError> {
        self.scope()?.ok_or_else(ApiError::tenant_required)
    }

    /// The tenant of a settings endpoint, for admins and superadmins only (members: 403).
    pub fn admin_tenant(&self) -> Result<Uuid, ApiError> {
        self.require_admin()?;
        self.tenant()
    }

    /// 403 unless admin or superadmin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Superadmin | Role::Admin => Ok(()),
            Role::Member => Err(ApiError::forbidden()),
        }
    }

    /// 403 unless superadmin.
    pub fn require_superadmin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Superadmin => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }
}

/// A fresh session token: 32 bytes from the OS, base64url (no padding) in the cookie.
pub fn new_token() -> Result<(String, [u8; 32]), ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(ApiError::internal)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// What `sessions.token_hash` stores for a cookie value.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `callgate_session` value of the request's `Cookie` headers.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for a new session (`Secure` when the node is served over https).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let max_age = MAX_AGE.num_seconds();
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that clears the cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// The client's address when the server was started with connect info.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The `tenant_id` query parameter; a malformed one is a 400.
fn requested_tenant(parts: &Parts) -> Result<Option<Uuid>, ApiError> {
    let Some(query) = parts.uri.query() else {
        return Ok(None);
    };
    // The only parameter read here is a UUID, which needs no percent-decoding.
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "tenant_id")
        .map(|(_, value)| value);
    match value {
        None | Some("") => Ok(None),
        Some(value) => Uuid::parse_str(value)
            .map(Some)
            .map_err(|_| ApiError::bad_request("tenant_id must be a UUID")),
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: Uuid,
    user_id: Uuid,
    email: String,
    display_name: Option<String>,
    role: String,
    tenant_id: Option<Uuid>,
    tenant_name: Option<String>,
}

/// Looks a cookie token up and refreshes the session; `None` if it is unknown, expired, idle too
/// long, or its user is disabled.
pub async fn lookup(pool: &sqlx::PgPool, token: &str) -> Result<Option<Session>, ApiError> {
    let hash = token_hash(token);
    let idle_limit: DateTime<Utc> = Utc::now() - IDLE_TIMEOUT;
    let row: Option<SessionRow> = sqlx::query_as(
        "UPDATE sessions s SET last_seen_at = now()
           FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id
          WHERE s.token_hash = $1 AND u.id = s.user_id
            AND s.expires_at > now() AND s.last_seen_at > $2
            AND u.disabled_at IS NULL
      RETURNING s.id AS session_id, u.id AS user_id, u.email, u.display_name, u.role,
                u.tenant_id, t.name AS tenant_name",
    )
    .bind(&hash[..])
    .bind(idle_limit)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|row| {
        Some(Session {
            session_id: row.session_id,
            user_id: row.user_id,
            email: row.email,
            display_name: row.display_name,
            role: Role::parse(&row.role)?,
            tenant_id: row.tenant_id,
            tenant_name: row.tenant_name,
            requested_tenant: None,
            ip: None,
        })
    }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = cookie_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let mut session = lookup(&state.pool, &token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        session.requested_tenant = requested_tenant(parts)?;
        session.ip = client_ip(parts);
        Ok(session)
    }
}

/// Writes one `audit_log` row for a change (user, tenant, action, target, ip). A failure is logged
/// and does not undo the change: the change already happened.
pub async fn audit(
    pool: &sqlx::PgPool,
    session: &Session,
    tenant_id: Option<Uuid>,
    action: &str,
    target: Option<String>,
    details: serde_json::Value,
) {
    let result = sqlx::query(
        "INSERT INTO audit_log (tenant_id, user_id, action, target, details, ip)
         VALUES ($1, $2, $3, $4, $5, $6::text::inet)",
    )
    .bind(tenant_id)
    .bind(session.user_id)
    .bind(action)
    .bind(target)
    .bind(details)
    .bind(session.ip.map(|ip| ip.to_string()))
    .execute(pool)
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, action, "could not write the audit log");
    }
}

/// The client's address, when the server runs with connect info (None in `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}
