//! Native platform: tokio and reqwest, for `cargo run -p edge-worker` and the tests.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::request::Parts;

use super::{FetchError, OutboundMethod, OutboundRequest, OutboundResponse};

/// Unix milliseconds from the system clock (0 if the clock is before 1970).
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// HTTP client for node requests. One per [`crate::AppState`]: reqwest's connection pool is
/// tied to the tokio runtime that created it, and each test has its own runtime.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// Pooled rustls client.
    client: reqwest::Client,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with no default timeout (each request sets its own).
    pub fn new() -> Self {
        HttpClient {
            client: reqwest::Client::new(),
        }
    }

    /// Sends `req` and reads the whole response.
    pub fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<OutboundResponse, FetchError>> + Send + 'static {
        let client = self.client.clone();
        async move {
            let timeout = Duration::from_millis(req.timeout_ms);
            let mut builder = match req.method {
                OutboundMethod::Get => client.get(&req.url),
                OutboundMethod::Post => client.post(&req.url).body(req.body),
            };
            for (name, value) in &req.headers {
                builder = builder.header(*name, value);
            }
            let classify = |e: reqwest::Error| {
                if e.is_timeout() {
                    FetchError::Timeout(req.timeout_ms)
                } else {
                    FetchError::Transport(error_chain(&e))
                }
            };
            let response = builder.timeout(timeout).send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(classify)?.to_vec();
            Ok(OutboundResponse { status, body })
        }
    }
}

/// reqwest's top-level message is "error sending request"; the cause says what happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Runs work after the response has been sent (background snapshot refresh, the dial-result
/// event) on the tokio runtime serving the request.
#[derive(Debug, Clone, Default)]
pub struct Background;

impl Background {
    pub(super) fn from_parts(_: &Parts) -> Self {
        Background
    }

    /// Spawns `work`; dropped with a log line if there is no runtime (never in the server).
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(work);
            }
            Err(_) => tracing::error!("no tokio runtime: background work dropped"),
        }
    }
}
