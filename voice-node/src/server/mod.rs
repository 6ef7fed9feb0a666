//! `voice-node serve`: the HTTP + WebSocket server, its routes, and its life from start to
//! drained exit.
//!
//! Routes (contract.md):
//! - `GET /healthz`: the process is up.
//! - `GET /readyz`: 503 while draining or when Postgres does not answer; Fly routes on it.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//! - `WS /media`, `WS /media/{node_id}`: Twilio Media Streams ([`media_route`]).
//! - `/internal/…`: the edge's signed API ([`crate::internal_api`]).
//! - `/api/…` and `/`: the dashboard's JSON API and the built app ([`crate::api`]).

pub mod error;
/// The accept loop with header/body deadlines and the body cap (shared with the native edge).
pub use http_limits;
pub mod media_route;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Utc;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::agent::AgentFactory;
use crate::config::Config;
use crate::drain::{Drain, SessionTracker};
use crate::media::player::Pacing;
use crate::media::session::SessionContext;
use crate::metrics::Metrics;
use crate::registry::{self, SnapshotCache};
use crate::store::{QueueLimits, WriteQueue};

/// Everything the routes share.
pub type AppState = Arc<NodeState>;

/// The node's shared state.
#[derive(Debug)]
pub struct NodeState {
    /// Configuration from the environment.
    pub config: Arc<Config>,
    /// The shared Postgres (reads, callbacks, heartbeat; call writes go through `store`).
    pub pool: PgPool,
    /// The write queue calls use.
    pub store: WriteQueue,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Serving / draining / closing.
    pub drain: Drain,
    /// Live WebSocket sessions, for the drain.
    pub sessions: SessionTracker,
    /// The cached routing snapshot.
    pub snapshot: SnapshotCache,
    /// Handed to every media session.
    pub session_ctx: Arc<SessionContext>,
    /// When this node started (its registry row's `started_at`).
    pub started_at: chrono::DateTime<Utc>,
    /// The dashboard API's login limiter and live fan-out ([`crate::api`]).
    pub api: crate::api::ApiShared,
    /// Clients whose Media Stream handshakes keep failing the signature check.
    pub handshake_limiter: media_route::HandshakeLimiter,
}

impl NodeState {
    /// State for `config` on `pool`, with a fresh write queue (its writer task starts now) and
    /// `agents` choosing each call's agent.
    pub fn new(config: Config, pool: PgPool, agents: Arc<dyn AgentFactory>) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let (store, _writer) =
            WriteQueue::start(pool.clone(), QueueLimits::default(), Arc::clone(&metrics));
        Self::assemble(config, pool, store, metrics, agents, Pacing::default())
    }

    /// State from parts (tests choose the queue, metrics and pacing).
    pub fn assemble(
        config: Config,
        pool: PgPool,
        store: WriteQueue,
        metrics: Arc<Metrics>,
        agents: Arc<dyn AgentFactory>,
        pacing: Pacing,
    ) -> AppState {
        let drain = Drain::new();
        let session_ctx = Arc::new(SessionContext {
            node_id: config.node_id.clone(),
            region: config.region.clone(),
            edge_shared_secret: config.edge_shared_secret.clone(),
            agents,
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            drain: drain.subscribe(),
            pacing,
            twilio: crate::twilio_rest::TwilioClient::from_config(&config),
            webhook_base_url: config.public_webhook_base_url.clone(),
            turn_seqs: crate::media::turn_seq::TurnSeqs::new(Some(pool.clone())),
        });
        Arc::new(NodeState {
            snapshot: SnapshotCache::new(pool.clone(), config.heartbeat_interval),
            config: Arc::new(config),
            pool,
            store,
            metrics,
            drain,
            sessions: SessionTracker::new(),
            session_ctx,
            started_at: Utc::now(),
            api: crate::api::ApiShared::default(),
            handshake_limiter: media_route::HandshakeLimiter::default(),
        })
    }
}

/// The node's routes, ready to serve (tests call it in-process or on port 0).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/media", get(media_route::media))
        .route("/media/{node_id}", get(media_route::media_for_node))
        .merge(crate::internal_api::routes())
        .merge(crate::api::routes(&state))
        .merge(crate::api::dashboard::router(&state.config.dashboard_dir))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.drain.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.draining.store(
        state.drain.is_draining(),
        std::sync::atomic::Ordering::Relaxed,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `voice-node serve`: reads the environment, opens (or starts) Postgres, applies migrations,
/// serves until SIGTERM/Ctrl-C, drains, and exits 0.
pub async fn serve() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    if config.twilio_auth_token.is_empty() {
        tracing::warn!(
            "TWILIO_AUTH_TOKEN is not set: every Media Stream handshake will be refused (403)"
        );
    }
    // Kept alive until the function returns: dropping it stops the private cluster.
    let mut local_postgres = None;
    let url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            let dir = config.data_dir.join("postgres");
            tracing::info!(data_dir = %dir.display(), "DATABASE_URL is not set: starting a private Postgres cluster");
            let pg = tokio::task::spawn_blocking(move || {
                crate::local_postgres::LocalPostgres::persistent(dir)
            })
            .await
            .context("starting the private Postgres cluster")??;
            let url = pg.url();
            local_postgres = Some(pg);
            url
        }
    };
    let pool = crate::db::connect(&url)
        .await
        .context("connecting to Postgres")?;
    crate::db::migrate(&pool)
        .await
        .context("applying migrations")?;

    // The offline AI agent when its models are installed; the greeting recorder otherwise.
    let agents = crate::ai::agent::agent_factory(Some(pool.clone())).await;
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding LISTEN_ADDR {}", config.listen_addr))?;
    tracing::info!(
        addr = %config.listen_addr,
        public_url = %config.public_base_url,
        node = %config.node_id,
        region = %config.region,
        "voice node listening"
    );
    let state = NodeState::new(config, pool, agents);
    run_until_drained(listener, state, crate::drain::shutdown_signal()).await?;
    drop(local_postgres);
    Ok(ExitCode::SUCCESS)
}

/// How long the write queue may take to flush after the last call.
const FINAL_FLUSH: Duration = Duration::from_secs(15);

/// How long sessions get to close once told to (after the grace period).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How long job workers get to finish their current job on drain.
const JOB_STOP_WAIT: Duration = Duration::from_secs(10);

/// Serves on `listener` (with the heartbeat) until `signal` resolves, then drains (see
/// [`crate::drain`]) and returns.
pub async fn run_until_drained(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let heartbeat = registry::spawn_heartbeat(
        state.pool.clone(),
        Arc::clone(&state.config),
        Arc::clone(&state.metrics),
        state.drain.clone(),
        state.started_at,
    );
    // Every node sweeps for dead nodes' calls and jobs; an advisory lock keeps it to one at a time.
    let reaper = crate::reaper::spawn(
        state.pool.clone(),
        crate::reaper::ReaperConfig::for_node(
            &state.config.node_id,
            state.config.heartbeat_interval,
        ),
    );
    // The job queue (text-backs, SMS, retention): every node works it.
    let jobs = crate::jobs::worker::start_for_node(&state.pool, &state.config).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = http_limits::HttpLimits::default();
    let router = http_limits::with_body_limits(app(Arc::clone(&state)), limits);
    let server = tokio::spawn(async move {
        // Header and body deadlines against slow clients; each request carries the client's
        // address (the dashboard API rate-limits logins and audits changes by it).
        http_limits::serve(listener, router, limits, async {
            let _ = stop_rx.await;
        })
        .await;
        Ok::<(), std::io::Error>(())
    });

    signal.await;
    state.drain.start();
    state
        .metrics
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let grace = state.config.drain_grace;
    tracing::info!(
        live_calls = state.sessions.live(),
        grace_s = grace.as_secs(),
        "draining: refusing new streams, waiting for live calls"
    );
    if !state.sessions.wait_idle(grace).await {
        tracing::warn!(
            live_calls = state.sessions.live(),
            "drain grace period over: closing the remaining calls"
        );
        state.drain.close_remaining();
        if !state.sessions.wait_idle(CLOSE_WAIT).await {
            tracing::warn!(
                live_calls = state.sessions.live(),
                "sessions did not close in time"
            );
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "server error while stopping"),
        Ok(Err(err)) => tracing::warn!(error = %err, "server task failed"),
        Err(_) => tracing::warn!("server did not stop within 5 s"),
    }
    heartbeat.abort();
    reaper.abort();
    if let Some(jobs) = jobs {
        // A job still running then is picked up by another node when its lease expires.
        jobs.stop(JOB_STOP_WAIT).await;
    }
    if !state.store.flush(FINAL_FLUSH).await {
        tracing::error!(
            queued = state.store.depth(),
            "write queue not flushed before exit: these writes are lost"
        );
    }
    let row = registry::node_row(
        &state.config,
        &state.metrics,
        &state.drain,
        state.started_at,
    );
    if let Err(err) = registry::heartbeat(&state.pool, &row).await {
        tracing::warn!(error = %err, "could not mark the node row as drained");
    }
    tracing::info!("drained; exiting");
    Ok(())
}
