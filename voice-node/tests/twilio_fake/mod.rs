//! A fake Twilio REST API on 127.0.0.1:0: checks Basic auth, records every request, answers like
//! Twilio (201 + JSON with a `sid` for Messages.json, 200 for call updates, Twilio's error JSON on
//! bad input) and can be told to fail the next N requests. Each request keeps the tokio instant it
//! arrived at and the status it got, so paused-clock tests can check when retries happened.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use shared::form::Form;
use tokio::sync::Mutex;
use voice_node::simulate::call_control::{CallRedirect, basic_auth_matches, twilio_error};

pub const ACCOUNT_SID: &str = "ACfake0000000000000000000000000000";
/// The same token the test node checks Media Streams with (`node_support::AUTH_TOKEN`).
pub const AUTH_TOKEN: &str = "test-twilio-auth-token";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `Messages` or `Calls/CA…`.
    pub resource: String,
    /// The form fields (last value wins).
    pub form: BTreeMap<String, String>,
    /// When it arrived, on tokio's clock: under a paused clock, the virtual time of the request
    /// (`flow_timers` checks retries against it).
    pub at: tokio::time::Instant,
    /// The HTTP status the fake answered.
    pub status: u16,
}

/// How to fail.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// 503 with Twilio's error JSON (retryable).
    Unavailable,
    /// 500 with Twilio's error JSON (retryable).
    ServerError,
    /// 400 with error 21211 (invalid 'To'): permanent.
    InvalidTo,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    fail_next: AtomicU32,
    failure: Mutex<Option<Failure>>,
    next_sid: AtomicU32,
    delay_ms: AtomicU32,
}

/// The running fake.
#[derive(Clone)]
pub struct TwilioFake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl TwilioFake {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages),
            )
            .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(calls))
            .route(
                "/2010-04-01/Accounts/{account}/Recordings/{recording}",
                axum::routing::delete(delete_recording),
            )
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TwilioFake { addr, inner }
    }

    /// `TWILIO_API_BASE` for the client.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The client the node would build.
    pub fn client(&self) -> voice_node::twilio_rest::TwilioClient {
        voice_node::twilio_rest::TwilioClient::new(&self.base(), ACCOUNT_SID, AUTH_TOKEN)
    }

    /// Fails the next `n` requests with `failure`.
    pub async fn fail_next(&self, n: u32, failure: Failure) {
        *self.inner.failure.lock().await = Some(failure);
        self.inner.fail_next.store(n, Ordering::SeqCst);
    }

    /// Answers every later request only after `ms` milliseconds (a slow Twilio).
    pub fn delay(&self, ms: u32) {
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Everything accepted or refused so far.
    pub async fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().await.clone()
    }

    /// The SMS bodies sent to `to` (accepted or not).
    pub async fn sms_to(&self, to: &str) -> Vec<Recorded> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| {
                r.resource == "Messages" && r.form.get("To").map(String::as_str) == Some(to)
            })
            .collect()
    }
}

/// An SMS Twilio received for `to`, as the edge forwards it to a node (`MessageSid` `sid`, the
/// edge's timestamp `received_at`).
pub fn inbound_sms(
    sid: &str,
    from: &str,
    to: &str,
    body: &str,
    received_at: u64,
) -> shared::forwarded::ForwardedEvent {
    shared::forwarded::ForwardedEvent::new(
        shared::forwarded::EventKind::Sms,
        format!("tok-{sid}"),
        received_at,
        &Form::from_pairs([
            ("MessageSid", sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", from),
            ("To", to),
            ("Body", body),
        ]),
    )
}

fn authorized(headers: &HeaderMap, account: &str) -> bool {
    account == ACCOUNT_SID && basic_auth_matches(headers, ACCOUNT_SID, AUTH_TOKEN)
}

fn parse_form(body: &Bytes) -> BTreeMap<String, String> {
    shared::form::Form::parse(body)
        .map(|f| f.into_pairs().into_iter().collect())
        .unwrap_or_default()
}

/// Common checks: auth, then a scheduled failure. `Some(response)` ends the request.
async fn gate(inner: &Inner, headers: &HeaderMap, account: &str) -> Option<Response> {
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(delay))).await;
    }
    if !authorized(headers, account) {
        return Some(twilio_error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate",
        ));
    }
    let left = inner.fail_next.load(Ordering::SeqCst);
    if left > 0 {
        inner.fail_next.store(left - 1, Ordering::SeqCst);
        return Some(match *inner.failure.lock().await {
            Some(Failure::InvalidTo) => twilio_error(
                StatusCode::BAD_REQUEST,
                21211,
                "The 'To' number is not a valid phone number.",
            ),
            Some(Failure::ServerError) => twilio_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error",
            ),
            _ => twilio_error(
                StatusCode::SERVICE_UNAVAILABLE,
                20503,
                "Service unavailable",
            ),
        });
    }
    None
}

async fn messages(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let index = record(&inner, "Messages".into(), form.clone()).await;
    let response = messages_answer(&inner, &account, &headers, &form).await;
    answered(&inner, index, response.status()).await;
    response
}

async fn messages_answer(
    inner: &Inner,
    account: &str,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Response {
    if let Some(refused) = gate(inner, headers, account).await {
        return refused;
    }
    for required in ["To", "From", "Body"] {
        if form.get(required).is_none_or(|v| v.is_empty()) {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21602,
                &format!("A '{required}' parameter is required."),
            );
        }
    }
    let n = inner.next_sid.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "sid": format!("SMfake{n:026}"),
            "status": "queued",
            "to": form["To"],
            "from": form["From"],
            "body": form["Body"],
            "account_sid": ACCOUNT_SID,
        })),
    )
        .into_response()
}

async fn calls(
    State(inner): State<Arc<Inner>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let sid = call.trim_end_matches(".json").to_owned();
    let index = record(&inner, format!("Calls/{sid}"), form.clone()).await;
    let response = calls_answer(&inner, &account, &headers, &form, sid).await;
    answered(&inner, index, response.status()).await;
    response
}

async fn calls_answer(
    inner: &Inner,
    account: &str,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
    sid: String,
) -> Response {
    if let Some(refused) = gate(inner, headers, account).await {
        return refused;
    }
    // What the simulator would run in the call's place, or nothing.
    if CallRedirect::from_form(&Form::from_pairs(form)).is_none() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Either Url, Twiml or Status is required",
        );
    }
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"sid": sid, "status": form.get("Status").cloned().unwrap_or_else(|| "in-progress".into())})),
    )
        .into_response()
}

async fn delete_recording(
    State(inner): State<Arc<Inner>>,
    Path((account, recording)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let sid = recording.trim_end_matches(".json").to_owned();
    let index = record(&inner, format!("DELETE Recordings/{sid}"), BTreeMap::new()).await;
    let response = match gate(&inner, &headers, &account).await {
        Some(refused) => refused,
        None => StatusCode::NO_CONTENT.into_response(),
    };
    answered(&inner, index, response.status()).await;
    response
}

/// Records a request as it arrives (so a slow answer is already visible); its status is filled
/// in by [`answered`].
async fn record(inner: &Inner, resource: String, form: BTreeMap<String, String>) -> usize {
    let mut requests = inner.requests.lock().await;
    requests.push(Recorded {
        resource,
        form,
        at: tokio::time::Instant::now(),
        status: 0,
    });
    requests.len() - 1
}

async fn answered(inner: &Inner, index: usize, status: StatusCode) {
    if let Some(request) = inner.requests.lock().await.get_mut(index) {
        request.status = status.as_u16();
    }
}
