//! Test fixtures shared by the in-process and workerd tests: a fake voice node (routing
//! snapshot + `/internal/events`, both HMAC-checked), a standard snapshot, Twilio-signed
//! requests and a small TwiML reader.

#![allow(dead_code)]

pub mod workerd;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use edge_worker::platform::Clock;
use shared::domain::CallMode;
use shared::form::Form;
use shared::forwarded::ForwardedEvent;
use shared::routing::{NodeInfo, NumberRoute, RoutingSnapshot, TenantPolicy};
use shared::stream_token::signed_body::DEFAULT_MAX_SKEW_S;
use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_body};

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
pub const SECRET: &[u8] = b"edge-shared-secret-0123456789abcdef";
pub const BASE: &str = "https://edge.example.com";
/// 2027-01-15T08:00:00Z, in ms.
pub const NOW_MS: u64 = 1_800_000_000_000;
pub const NOW_S: u64 = NOW_MS / 1000;

pub const TENANT_A: &str = "6f1c2a4e-8b7d-4c1e-9a3f-2d5e7b9c1a01";
pub const TENANT_B: &str = "0b8e6d2c-3f4a-4b5c-8d9e-1f2a3b4c5d02";
pub const SCREENING_NUMBER: &str = "+14155550100";
pub const RECEPTIONIST_NUMBER: &str = "+14155550111";
pub const FORWARD_NUMBER: &str = "+14155550122";
pub const FORWARD_NO_AI_NUMBER: &str = "+14155550133";
pub const SCREENING_NO_AI_NUMBER: &str = "+14155550144";
pub const OWNER: &str = "+14155550199";
pub const CALLER: &str = "+12125550123";
pub const BLOCKED_CALLER: &str = "+18005550111";
pub const ALLOWED_CALLER: &str = "+14155550123";
pub const UNKNOWN_NUMBER: &str = "+19995550000";
pub const CALL_SID: &str = "CA45397943c1c7a49f7b7713c230107a39";
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

fn number(e164: &str, tenant: &str, mode: CallMode, owner: Option<&str>) -> NumberRoute {
    NumberRoute {
        e164: e164.into(),
        tenant_id: tenant.into(),
        mode,
        owner_phone: owner.map(Into::into),
        region: None,
        ai_enabled: true,
        text_back: false,
        voicemail: true,
    }
}

/// A node served by the fake node at `base` (its public URL is `base/n/ID`, so the fake node
/// can tell which node an event was sent to).
pub fn node(base: &str, id: &str, region: &str, lat: f64, lon: f64) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        region: region.into(),
        lat,
        lon,
        public_url: format!("{base}/n/{id}"),
        active_calls: 1,
        capacity: 50,
        draining: false,
        last_heartbeat: NOW_S,
    }
}

/// Numbers of every mode, a tenant policy, and nodes in iad, ord, lhr and syd.
pub fn standard_snapshot(base: &str, generated_at: u64) -> RoutingSnapshot {
    let mut forward_no_ai = number(
        FORWARD_NO_AI_NUMBER,
        TENANT_B,
        CallMode::Forward,
        Some(OWNER),
    );
    forward_no_ai.ai_enabled = false;
    let mut forward = number(FORWARD_NUMBER, TENANT_B, CallMode::Forward, Some(OWNER));
    forward.text_back = true;
    let mut screening_no_ai = number(
        SCREENING_NO_AI_NUMBER,
        TENANT_A,
        CallMode::Screening,
        Some(OWNER),
    );
    screening_no_ai.ai_enabled = false;
    RoutingSnapshot {
        generated_at,
        numbers: vec![
            number(SCREENING_NUMBER, TENANT_A, CallMode::Screening, Some(OWNER)),
            number(RECEPTIONIST_NUMBER, TENANT_A, CallMode::Receptionist, None),
            forward,
            forward_no_ai,
            screening_no_ai,
        ],
        tenants: vec![TenantPolicy {
            tenant_id: TENANT_A.into(),
            blocked_callers: vec![BLOCKED_CALLER.into()],
            allowed_callers: vec![ALLOWED_CALLER.into()],
        }],
        nodes: vec![
            node(base, "iad-1", "iad", 38.94, -77.45),
            node(base, "ord-1", "ord", 41.98, -87.90),
            node(base, "lhr-1", "lhr", 51.47, -0.45),
            node(base, "syd-1", "syd", -33.95, 151.18),
        ],
    }
}

/// What the fake node saw and how it should behave.
#[derive(Default)]
pub struct FakeNodeState {
    /// Served at `/internal/routing-snapshot`; `None` answers 503.
    pub snapshot: Mutex<Option<RoutingSnapshot>>,
    /// Snapshot pulls that passed the HMAC check.
    pub snapshot_pulls: Mutex<usize>,
    /// Requests refused for a bad HMAC (snapshot or events).
    pub bad_signatures: Mutex<usize>,
    /// Events accepted: (node id from the path, envelope).
    pub events: Mutex<Vec<(String, ForwardedEvent)>>,
    /// Node ids whose `/internal/events` answers 500.
    pub failing: Mutex<HashSet<String>>,
    /// Node id → how many more events it answers 500 to (then it accepts them).
    pub failing_next: Mutex<HashMap<String, usize>>,
    /// Node id of every signed `/internal/events` request, accepted or not, in order.
    pub tries: Mutex<Vec<String>>,
    /// Call reports served at `/n/{id}/internal/calls/{sid}`: (node id, call sid) → outcome.
    pub outcomes: Mutex<HashMap<(String, String), String>>,
    /// Clock the HMAC timestamps are checked against.
    pub clock: Clock,
}

/// A fake voice node on 127.0.0.1:0 (all snapshot nodes point at it).
pub struct FakeNode {
    pub addr: SocketAddr,
    pub state: Arc<FakeNodeState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    pub async fn start(clock: Clock) -> FakeNode {
        let state = Arc::new(FakeNodeState {
            clock,
            ..FakeNodeState::default()
        });
        let router = Router::new()
            .route("/internal/routing-snapshot", get(serve_snapshot))
            .route("/n/{id}/internal/events", post(accept_event))
            .route("/n/{id}/internal/calls/{sid}", get(call_report))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeNode { addr, state, task }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_snapshot(&self, snapshot: Option<RoutingSnapshot>) {
        *self.state.snapshot.lock().unwrap() = snapshot;
    }

    pub fn pulls(&self) -> usize {
        *self.state.snapshot_pulls.lock().unwrap()
    }

    pub fn events(&self) -> Vec<(String, ForwardedEvent)> {
        self.state.events.lock().unwrap().clone()
    }

    pub fn fail(&self, node_id: &str) {
        self.state.failing.lock().unwrap().insert(node_id.into());
    }

    /// Makes node `node_id` answer 500 to its next `n` events, then accept again.
    pub fn fail_next(&self, node_id: &str, n: usize) {
        self.state
            .failing_next
            .lock()
            .unwrap()
            .insert(node_id.into(), n);
    }

    /// The node id of every signed event request so far, accepted or refused.
    pub fn tries(&self) -> Vec<String> {
        self.state.tries.lock().unwrap().clone()
    }

    /// Makes node `node_id` report that it ended `call_sid` with `outcome`.
    pub fn finish_call(&self, node_id: &str, call_sid: &str, outcome: &str) {
        self.state
            .outcomes
            .lock()
            .unwrap()
            .insert((node_id.into(), call_sid.into()), outcome.into());
    }

    /// Stops serving: later connections are refused.
    pub fn kill(&self) {
        self.task.abort();
    }

    /// Waits (up to 3 s) until `n` events arrived.
    pub async fn wait_for_events(&self, n: usize) -> Vec<(String, ForwardedEvent)> {
        for _ in 0..300 {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} events, got {:?}", self.events());
    }

    /// Waits (up to 3 s) until `n` snapshot pulls happened.
    pub async fn wait_for_pulls(&self, n: usize) {
        for _ in 0..300 {
            if self.pulls() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} snapshot pulls, got {}", self.pulls());
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn signed_ok(state: &FakeNodeState, headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let ok = verify_body(
        SECRET,
        &h(TIMESTAMP_HEADER),
        &h(SIGNATURE_HEADER),
        body,
        state.clock.now_s(),
        DEFAULT_MAX_SKEW_S,
    )
    .is_ok();
    if !ok {
        *state.bad_signatures.lock().unwrap() += 1;
    }
    ok
}

async fn serve_snapshot(
    State(state): State<Arc<FakeNodeState>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if !signed_ok(&state, &headers, b"") {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    *state.snapshot_pulls.lock().unwrap() += 1;
    match state.snapshot.lock().unwrap().as_ref() {
        Some(snapshot) => (StatusCode::OK, snapshot.to_json()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no snapshot".into()),
    }
}

async fn call_report(
    State(state): State<Arc<FakeNodeState>>,
    Path((id, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if !signed_ok(&state, &headers, b"") {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    match state.outcomes.lock().unwrap().get(&(id, sid.clone())) {
        Some(outcome) => (
            StatusCode::OK,
            format!(r#"{{"call_sid":"{sid}","outcome":"{outcome}","transcript":[]}}"#),
        ),
        None => (StatusCode::NOT_FOUND, "unknown call".into()),
    }
}

async fn accept_event(
    State(state): State<Arc<FakeNodeState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !signed_ok(&state, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    state.tries.lock().unwrap().push(id.clone());
    if state.failing.lock().unwrap().contains(&id) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(left) = state.failing_next.lock().unwrap().get_mut(&id)
        && *left > 0
    {
        *left -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let event = ForwardedEvent::from_json(std::str::from_utf8(&body).unwrap()).unwrap();
    state.events.lock().unwrap().push((id, event));
    StatusCode::NO_CONTENT
}

/// The form fields of an incoming call from `from` to `to`.
pub fn voice_params(to: &str, from: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", CALL_SID),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("FromCity", "NEW YORK"),
        ("To", to),
        ("ToCity", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Replaces (or adds) a field.
pub fn with(mut params: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != key);
    params.push((key.into(), value.into()));
    params
}

/// Removes a field.
pub fn without(mut params: Vec<(String, String)>, key: &str) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != key);
    params
}

/// A POST to `path_and_query` with `params` as the form body, signed the way Twilio signs it
/// (over BASE + path + query).
pub fn signed(path_and_query: &str, params: &[(String, String)]) -> Request<Body> {
    signed_with(path_and_query, params, AUTH_TOKEN, &[])
}

/// Like [`signed`], with another auth token and extra headers.
pub fn signed_with(
    path_and_query: &str,
    params: &[(String, String)],
    token: &str,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let url = format!("{BASE}{path_and_query}");
    let signature = shared::signature::compute(token, &url, params);
    let body = Form::from_pairs(params.iter().cloned()).to_urlencoded();
    let mut builder = Request::post(path_and_query)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::from(body)).unwrap()
}

/// A parsed TwiML document with the few lookups the tests need.
pub struct TwimlDoc {
    pub xml: String,
}

/// One element: name, attributes, text, children (recursively).
#[derive(Debug, Clone)]
pub struct El {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first descendant (or self) named `name`.
    pub fn find(&self, name: &str) -> Option<&El> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    pub fn child_names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }

    /// `<Parameter name value>` children as pairs.
    pub fn parameters(&self) -> Vec<(String, String)> {
        self.children
            .iter()
            .filter(|c| c.name == "Parameter")
            .map(|c| {
                (
                    c.attr("name").unwrap_or("").to_owned(),
                    c.attr("value").unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    pub fn parameter(&self, name: &str) -> Option<String> {
        self.parameters()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

fn convert(node: roxmltree::Node<'_, '_>) -> El {
    El {
        name: node.tag_name().name().to_owned(),
        attrs: node
            .attributes()
            .map(|a| (a.name().to_owned(), a.value().to_owned()))
            .collect(),
        text: node
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect(),
        children: node
            .children()
            .filter(|c| c.is_element())
            .map(convert)
            .collect(),
    }
}

/// Parses TwiML, checking the declaration and `<Response>` root Twilio requires.
pub fn parse_twiml(xml: &str) -> El {
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#),
        "TwiML must start with the XML declaration: {xml}"
    );
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad XML {e}: {xml}"));
    let root = convert(doc.root_element());
    assert_eq!(root.name, "Response", "{xml}");
    root
}

/// Splits `url` into (path-without-base, decoded query pairs).
pub fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let rest = url.strip_prefix(BASE).unwrap_or(url);
    match rest.split_once('?') {
        Some((path, query)) => (
            path.to_owned(),
            Form::parse(query.as_bytes()).unwrap().into_pairs(),
        ),
        None => (rest.to_owned(), Vec::new()),
    }
}
