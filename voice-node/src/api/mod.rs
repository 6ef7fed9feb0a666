//! `/api/…`: the dashboard's JSON API (dashboard/API.md is the contract, `types.ts` the same in
//! TypeScript), and the built dashboard itself at `/`.
//!
//! - [`session`]: the `callgate_session` cookie → [`session::Session`] (role, tenant scope);
//!   the audit log.
//! - [`auth`]: login (Argon2id, rate-limited), logout, `me`.
//! - [`calls`]: inbox list, detail, caller actions, contacts.
//! - [`recording`]: a call's recording streamed from Twilio; start / stop on a live call.
//! - [`live`]: `WS /api/calls/live` over Postgres LISTEN/NOTIFY.
//! - [`settings`]: tenant settings, numbers, departments, knowledge base, screening policy and
//!   examples, users.
//! - [`seal`]: provider API keys sealed before they reach Postgres.
//! - [`voice_token`]: the browser dialer's Twilio access token.
//! - [`openapi`]: `GET /api/openapi.json`.
//! - [`dashboard`]: static files of `dashboard/dist` with the single-page-app fallback.
//! - [`error`]: the error envelope.
//!
//! Architecture invariant: every query of tenant data carries the session's tenant scope in SQL;
//! an id of another tenant reads as "not found", never as "forbidden".

pub mod auth;
pub mod calls;
pub mod dashboard;
pub mod error;
pub mod live;
pub mod openapi;
pub mod recording;
pub mod seal;
pub mod session;
pub mod settings;
pub mod voice_token;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, patch, post, put};
use uuid::Uuid;

use crate::server::AppState;
use error::ApiError;

/// State of the API that lives as long as the node (in [`crate::server::NodeState`]).
#[derive(Debug, Default)]
pub struct ApiShared {
    /// Login attempts per IP and per e-mail.
    pub login_limiter: auth::LoginLimiter,
    /// The LISTEN connection and its fan-out to live sockets.
    pub live: live::LiveHub,
}

/// A `{id}` path segment that must be a UUID; anything else is simply not found.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        Uuid::parse_str(&raw)
            .map(IdPath)
            .map_err(|_| ApiError::not_found())
    }
}

/// Every API path with its handlers. [`routes`] mounts them; the OpenAPI test checks that each
/// appears in the document.
pub fn table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/api/auth/login", post(auth::login)),
        ("/api/auth/logout", post(auth::logout)),
        ("/api/me", get(auth::me)),
        ("/api/calls", get(calls::list)),
        ("/api/calls/live", get(live::socket)),
        ("/api/calls/{id}", get(calls::detail).delete(calls::delete)),
        ("/api/calls/{id}/block-caller", post(calls::block_caller)),
        ("/api/calls/{id}/mark-known", post(calls::mark_known)),
        ("/api/calls/{id}/recording", get(recording::media)),
        ("/api/calls/{id}/recording/start", post(recording::start)),
        ("/api/calls/{id}/recording/stop", post(recording::stop)),
        ("/api/contacts", get(calls::contacts)),
        ("/api/contacts/{id}", delete(calls::delete_contact)),
        (
            "/api/tenants",
            get(settings::tenant::list).post(settings::tenant::create),
        ),
        (
            "/api/tenant",
            get(settings::tenant::show).patch(settings::tenant::update),
        ),
        (
            "/api/kb",
            get(settings::kb::list).post(settings::kb::create),
        ),
        (
            "/api/kb/{id}",
            patch(settings::kb::update).delete(settings::kb::delete),
        ),
        (
            "/api/numbers",
            get(settings::numbers::list).post(settings::numbers::create),
        ),
        (
            "/api/numbers/{id}",
            patch(settings::numbers::update).delete(settings::numbers::delete),
        ),
        (
            "/api/departments",
            get(settings::departments::list).post(settings::departments::create),
        ),
        (
            "/api/departments/{id}",
            patch(settings::departments::update).delete(settings::departments::delete),
        ),
        (
            "/api/screening/policies",
            get(settings::screening::list_policies),
        ),
        (
            "/api/screening/policies/{label}",
            put(settings::screening::put_policy).delete(settings::screening::reset_policy),
        ),
        (
            "/api/screening/examples",
            get(settings::screening::list_examples).post(settings::screening::create_example),
        ),
        (
            "/api/screening/examples/{id}",
            delete(settings::screening::delete_example),
        ),
        (
            "/api/users",
            get(settings::users::list).post(settings::users::create),
        ),
        (
            "/api/users/{id}",
            patch(settings::users::update).delete(settings::users::delete),
        ),
        ("/api/providers", get(settings::providers::list)),
        (
            "/api/providers/{kind}",
            put(settings::providers::put).delete(settings::providers::reset),
        ),
        ("/api/voice/token", post(voice_token::issue)),
        ("/api/openapi.json", get(openapi::document)),
    ]
}

/// The `/api/…` routes, with the `Origin` check in front of them.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for (path, handler) in table() {
        router = router.route(path, handler);
    }
    router
        .route("/api/{*rest}", any(unknown_endpoint))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_origin,
        ))
}

async fn unknown_endpoint() -> ApiError {
    ApiError::not_found()
}

/// CSRF guard (API.md "Authentication and sessions"): a state-changing request or a WebSocket
/// upgrade whose `Origin` is present and not `PUBLIC_BASE_URL` is refused with 403 `bad_origin`.
async fn check_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if changes_state || upgrade {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("").trim_end_matches('/'));
        if let Some(origin) = origin
            && !origin.eq_ignore_ascii_case(&state.config.public_base_url)
        {
            tracing::warn!(
                origin,
                path = request.uri().path(),
                "request refused: bad Origin"
            );
            return ApiError::bad_origin().into_response();
        }
    }
    next.run(request).await
}
