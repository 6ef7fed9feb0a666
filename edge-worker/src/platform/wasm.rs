//! Worker platform: `fetch`, `ctx.wait_until` and the JS clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use futures_util::future::{Either, select};
use worker::send::SendFuture;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use super::{FetchError, OutboundMethod, OutboundRequest, OutboundResponse};

/// Unix milliseconds from `Date.now()`. Inside a request Workers advance it only on I/O (a
/// Spectre mitigation), which is precise enough for TTLs of seconds.
pub fn system_now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// The fetch event's context, put in the request's extensions by the entry point so handlers
/// can hand work to `ctx.wait_until`.
#[derive(Debug, Clone)]
pub struct WaitUntil(pub Arc<worker::Context>);

/// HTTP client for node requests: the runtime's `fetch`.
#[derive(Debug, Clone, Default)]
pub struct HttpClient;

impl HttpClient {
    /// The client (stateless: the runtime pools connections).
    pub fn new() -> Self {
        HttpClient
    }

    /// Sends `req` and reads the whole response; aborts it after its timeout.
    pub fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<OutboundResponse, FetchError>> + Send + 'static {
        SendFuture::new(async move {
            let timeout_ms = req.timeout_ms;
            let controller = AbortController::default();
            let signal = controller.signal();
            let fetch = async move {
                let transport = |e: worker::Error| FetchError::Transport(e.to_string());
                let headers = Headers::new();
                for (name, value) in &req.headers {
                    headers.set(name, value).map_err(transport)?;
                }
                let mut init = RequestInit::new();
                init.with_headers(headers);
                match req.method {
                    OutboundMethod::Get => {
                        init.with_method(Method::Get);
                    }
                    OutboundMethod::Post => {
                        init.with_method(Method::Post);
                        let body = worker::js_sys::Uint8Array::from(req.body.as_slice());
                        init.with_body(Some(body.into()));
                    }
                }
                let request = Request::new_with_init(&req.url, &init).map_err(transport)?;
                let mut response = Fetch::Request(request)
                    .send_with_signal(&signal)
                    .await
                    .map_err(transport)?;
                let status = response.status_code();
                let body = response.bytes().await.map_err(transport)?;
                Ok(OutboundResponse { status, body })
            };
            let timer = Delay::from(Duration::from_millis(timeout_ms));
            match select(Box::pin(fetch), Box::pin(timer)).await {
                Either::Left((result, _)) => result,
                Either::Right(((), _)) => {
                    controller.abort();
                    Err(FetchError::Timeout(timeout_ms))
                }
            }
        })
    }
}

/// Runs work after the response: `ctx.wait_until` keeps the isolate alive for it.
#[derive(Debug, Clone, Default)]
pub struct Background {
    /// The fetch event's context; `None` outside a fetch event (then the work runs as a plain
    /// promise, which the runtime may cut short).
    ctx: Option<Arc<worker::Context>>,
}

impl Background {
    pub(super) fn from_parts(parts: &Parts) -> Self {
        Background {
            ctx: parts.extensions.get::<WaitUntil>().map(|w| w.0.clone()),
        }
    }

    /// Hands `work` to the runtime.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        match &self.ctx {
            Some(ctx) => ctx.wait_until(work),
            None => worker::wasm_bindgen_futures::spawn_local(work),
        }
    }
}
