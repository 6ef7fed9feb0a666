//! The Worker entry point: `#[event(fetch)]` hands each request to the same [`crate::app`]
//! Router the native server runs.
//!
//! The Router and its [`crate::AppState`] (configuration and the snapshot cache) are built on
//! the isolate's first request and kept for its life, so the snapshot cache spans requests.
//! Workers run one thread per isolate, hence a `thread_local`.

use std::cell::RefCell;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use shared::routing::GeoPoint;
use tower_service::Service;
use worker::{Context, Env, event};

use crate::config::Config;
use crate::platform::{RequestLocation, WaitUntil};
use crate::{AppState, app};

thread_local! {
    /// The isolate's Router, built from the first request's `env`.
    static ROUTER: RefCell<Option<Router>> = const { RefCell::new(None) };
}

/// Webhook bodies are a few KB: read and written whole. workers-rs's `http` conversion streams
/// both bodies through `ReadableStream`s, one JS promise per chunk; buffering them measured
/// about 3x less time per request in workerd (see README, "Edge benchmark").
#[event(fetch)]
async fn fetch(
    mut req: worker::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::Response> {
    let mut router = match router(&env) {
        Ok(router) => router,
        Err(err) => {
            // Shown to whoever calls (Twilio logs it as 11200); names the variable, no values.
            worker::console_error!("edge-worker misconfigured: {err}");
            return to_worker(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("misconfigured: {err}\n"),
                )
                    .into_response(),
            )
            .await;
        }
    };
    let location = req
        .cf()
        .and_then(|cf| cf.coordinates())
        .map(|(lat, lon)| RequestLocation(GeoPoint::new(f64::from(lat), f64::from(lon))));
    let body = req.bytes().await.unwrap_or_default();
    let mut builder = Request::builder()
        .method(req.inner().method().as_str())
        .uri(req.inner().url());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let mut request = match builder.body(Body::from(body)) {
        Ok(request) => request,
        Err(err) => {
            return to_worker((StatusCode::BAD_REQUEST, err.to_string()).into_response()).await;
        }
    };
    if let Some(location) = location {
        request.extensions_mut().insert(location);
    }
    if let Some(client) = crate::rate_limit::ClientAddr::from_cloudflare(request.headers()) {
        request.extensions_mut().insert(client);
    }
    request.extensions_mut().insert(WaitUntil(Arc::new(ctx)));
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    to_worker(response).await
}

/// An axum response as a Workers `Response` with a buffered body (none for 204).
async fn to_worker(response: Response<Body>) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = worker::Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
    let response = if bytes.is_empty() {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(bytes.to_vec())?
    };
    Ok(response
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}

/// The isolate's Router, building it (and installing logging) on first use.
fn router(env: &Env) -> Result<Router, crate::config::ConfigError> {
    if let Some(router) = ROUTER.with(|r| r.borrow().clone()) {
        return Ok(router);
    }
    install_logging();
    let config = Config::from_lookup(|name| binding(env, name))?;
    let router = app(AppState::new(config));
    ROUTER.with(|r| *r.borrow_mut() = Some(router.clone()));
    Ok(router)
}

/// A `[vars]` entry or secret as text; a structured `[vars]` value (a TOML array for
/// `FALLBACK_NODES`) as its JSON.
fn binding(env: &Env, name: &str) -> Option<String> {
    env.var(name).map(|v| v.to_string()).ok().or_else(|| {
        env.object_var::<serde_json::Value>(name)
            .ok()
            .map(|v| v.to_string())
    })
}

/// `tracing` events to the Workers console (Workers Logs / `wrangler tail`), one line each, at
/// info and above. No timestamps: the runtime adds them, and `SystemTime` panics on wasm32.
fn install_logging() {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(ConsoleWriter::default)
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Buffers one formatted event and writes it to `console.log` when dropped.
#[derive(Default)]
struct ConsoleWriter(Vec<u8>);

impl std::io::Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let line = line.trim_end();
        if !line.is_empty() {
            worker::console_log!("{line}");
        }
    }
}
