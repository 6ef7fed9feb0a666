//! callgate's edge: the Twilio webhooks, answered at every Cloudflare PoP.
//!
//! One axum [`Router`] ([`app`]) serves the same handlers two ways: compiled to
//! `wasm32-unknown-unknown` behind `#[event(fetch)]` (the Worker, see `worker_entry`), and
//! natively on tokio (`cargo run -p edge-worker`, the tests). Components:
//!
//! - [`config`]: configuration from environment variables or Worker bindings.
//! - [`verify`]: the [`verify::TwilioWebhook`] extractor: `X-Twilio-Signature` over
//!   `PUBLIC_WEBHOOK_BASE_URL` + path + raw query, raw form body; 403 / 400 before any handler.
//! - [`snapshot`]: the routing snapshot pulled from a node, cached in the isolate
//!   (stale-while-revalidate, last good copy kept, `FALLBACK_NODES` when never pulled).
//! - [`nodes`]: which nodes a call or event may go to, best first.
//! - [`answers`]: the TwiML documents (stream, dial, voicemail, reject, not in service).
//! - [`routes`]: the handlers, one module per group of routes.
//! - [`rate_limit`]: per-source budgets of unsigned requests (429 + `Retry-After`).
//! - [`forward`]: signed delivery of callbacks to a node's `/internal/events`.
//! - [`platform`]: what differs between Worker and native (HTTP client, background work,
//!   clock, request location).
//!
//! Architecture invariant: the edge holds no state a restart could lose except the snapshot
//! cache, and never talks to Postgres; everything it decides comes from the signed request and
//! the snapshot.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use shared::routing::RoutingSnapshot;

pub mod answers;
pub mod call_state;
pub mod config;
pub mod error;
pub mod forward;
#[cfg(not(target_arch = "wasm32"))]
pub mod native_server;
pub mod nodes;
pub mod platform;
pub mod rate_limit;
pub mod redact;
pub mod routes;
pub mod snapshot;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod worker_entry;

use answers::paths;
use config::Config;
use platform::{Clock, HttpClient};
use snapshot::SnapshotCache;

/// Everything a handler needs; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct AppState(Arc<StateInner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct StateInner {
    /// Configuration, read once.
    pub config: Config,
    /// Wall clock (manual in tests).
    pub clock: Clock,
    /// Client for node requests.
    pub http: HttpClient,
    /// The isolate's routing snapshot.
    pub snapshots: SnapshotCache,
    /// Per-source budgets of refused (unsigned) webhooks.
    pub limiter: rate_limit::SourceLimiter,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// State on the system clock.
    pub fn new(config: Config) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// State on a given clock (tests pass [`Clock::manual`]).
    pub fn with_clock(config: Config, clock: Clock) -> Self {
        let fallback = RoutingSnapshot {
            generated_at: 0,
            numbers: config.fallback_numbers.clone(),
            tenants: Vec::new(),
            nodes: config.fallback_nodes.clone(),
        };
        AppState(Arc::new(StateInner {
            config,
            clock,
            http: HttpClient::new(),
            snapshots: SnapshotCache::new(fallback),
            limiter: rate_limit::SourceLimiter::default(),
        }))
    }
}

/// The edge's routes (see ../shared/contract.md, "Edge worker").
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::INBOUND, post(routes::inbound::inbound))
        .route(
            paths::STREAM_FALLBACK,
            post(routes::inbound::stream_fallback),
        )
        .route(paths::DIAL_RESULT, post(routes::dial_result::dial_result))
        .route(
            paths::VOICEMAIL_DONE,
            post(routes::dial_result::voicemail_done),
        )
        .route(paths::STATUS, post(routes::callbacks::call_status))
        .route(paths::STREAM_STATUS, post(routes::callbacks::stream_status))
        .route(paths::RECORDING, post(routes::callbacks::recording))
        .route(paths::SMS_INBOUND, post(routes::callbacks::sms_inbound))
        .route(paths::SMS_STATUS, post(routes::callbacks::sms_status))
        .route(paths::OUTBOUND, post(routes::outbound::outbound))
        .with_state(state)
}

/// `GET /healthz`: unsigned liveness, with how old the cached snapshot is (no secrets, no
/// numbers).
async fn healthz(State(state): State<AppState>) -> String {
    match state.snapshots.age_ms(state.clock.now_ms()) {
        Some(age) => format!("ok snapshot_age_ms={age}\n"),
        None => "ok snapshot=none\n".to_owned(),
    }
}
