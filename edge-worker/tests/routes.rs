//! In-process tests of every edge route (`tower::ServiceExt::oneshot` on the Router), against a
//! fake voice node serving the routing snapshot and accepting forwarded events.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use edge_worker::config::Config;
use edge_worker::platform::{Clock, RequestLocation};
use edge_worker::{AppState, app};
use shared::domain::CallMode;
use shared::forwarded::EventKind;
use shared::routing::GeoPoint;
use shared::stream_token;
use std::collections::HashSet;
use tower::ServiceExt;

struct Edge {
    router: Router,
    node: FakeNode,
    clock: Clock,
}

fn config(control_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        (
            "EDGE_SHARED_SECRET".into(),
            String::from_utf8(SECRET.to_vec()).unwrap(),
        ),
        ("PUBLIC_WEBHOOK_BASE_URL".into(), BASE.into()),
        ("CONTROL_URL".into(), control_url.into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .unwrap()
}

/// An edge whose control node serves the standard snapshot.
async fn edge() -> Edge {
    edge_with(|base| Some(standard_snapshot(base, NOW_S)), &[]).await
}

async fn edge_with(
    snapshot: impl FnOnce(&str) -> Option<shared::routing::RoutingSnapshot>,
    extra: &[(&str, &str)],
) -> Edge {
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    node.set_snapshot(snapshot(&node.base()));
    let state = AppState::with_clock(config(&node.base(), extra), clock.clone());
    Edge {
        router: app(state),
        node,
        clock,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn twiml(&self) -> El {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        let content_type = self.headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/xml"), "{content_type}");
        parse_twiml(&self.body)
    }
}

impl Edge {
    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn call(&self, to: &str, from: &str, headers: &[(&str, &str)]) -> El {
        self.send(signed_with(
            "/telephony/inbound",
            &voice_params(to, from),
            AUTH_TOKEN,
            headers,
        ))
        .await
        .twiml()
    }
}

/// Checks a `<Connect><Stream>` answer and returns (node id, attempt, tried) from it.
fn assert_stream(doc: &El, mode: CallMode, node_base: &str) -> (String, String, String) {
    assert_eq!(doc.child_names(), ["Connect"], "{doc:?}");
    let connect = doc.find("Connect").unwrap();
    let (path, query) = split_url(connect.attr("action").unwrap());
    assert_eq!(path, "/telephony/stream-fallback");
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(q("mode"), mode.as_str());
    let stream = connect.find("Stream").unwrap();
    let token = stream.parameter("token").unwrap();
    // Expiry is checked where the clock is known; here only signature and claims.
    let claims = stream_token::verify(&token, SECRET, 0, None).unwrap();
    assert_eq!(claims.call_sid, CALL_SID);
    assert_eq!(claims.mode, mode);
    let node_id = claims.node_id.clone();
    let ws_base = node_base.replacen("http://", "ws://", 1);
    assert_eq!(
        stream.attr("url").unwrap(),
        format!("{ws_base}/n/{node_id}/media/{node_id}")
    );
    assert_eq!(
        stream.attr("statusCallback").unwrap(),
        format!("{BASE}/telephony/stream-status?node={node_id}")
    );
    assert_eq!(stream.parameter("tenant").unwrap(), claims.tenant_id);
    assert_eq!(stream.parameter("mode").unwrap(), mode.as_str());
    (node_id, q("attempt"), q("tried"))
}

fn assert_dial(doc: &El, owner: &str, caller_id: Option<&str>) -> String {
    let dial = doc
        .find("Dial")
        .unwrap_or_else(|| panic!("no Dial in {doc:?}"));
    assert_eq!(dial.attr("timeout"), Some("20"));
    assert_eq!(dial.attr("callerId"), caller_id);
    assert_eq!(dial.find("Number").unwrap().text, owner);
    dial.attr("action").unwrap().to_owned()
}

fn assert_voicemail(doc: &El) {
    assert_eq!(doc.child_names(), ["Say", "Record"], "{doc:?}");
    let record = doc.find("Record").unwrap();
    assert_eq!(
        record.attr("action").unwrap(),
        format!("{BASE}/telephony/voicemail-done")
    );
    assert!(
        record
            .attr("recordingStatusCallback")
            .unwrap()
            .starts_with(&format!("{BASE}/telephony/recording"))
    );
}

// ----------------------------------------------------------------------------------------------
// Signatures and malformed input
// ----------------------------------------------------------------------------------------------

const SIGNED_ROUTES: &[&str] = &[
    "/telephony/inbound",
    "/telephony/status",
    "/telephony/dial-result",
    "/telephony/stream-fallback",
    "/telephony/stream-status",
    "/telephony/recording",
    "/telephony/voicemail-done",
    "/telephony/outbound",
    "/sms/inbound",
    "/sms/status",
];

#[tokio::test]
async fn every_twilio_route_rejects_missing_tampered_and_foreign_signatures() {
    let edge = edge().await;
    let params = voice_params(SCREENING_NUMBER, CALLER);
    for route in SIGNED_ROUTES {
        // Missing.
        let mut req = signed(route, &params);
        req.headers_mut().remove("x-twilio-signature");
        let reply = edge.send(req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");
        assert!(reply.body.contains("missing"), "{route}: {}", reply.body);

        // Tampered: signed for one caller, sent with another.
        let good = signed(route, &params);
        let sig = good.headers()["x-twilio-signature"].clone();
        let body = shared::form::Form::from_pairs(with(params.clone(), "From", ALLOWED_CALLER))
            .to_urlencoded();
        let req = Request::post(*route)
            .header("x-twilio-signature", sig)
            .body(Body::from(body))
            .unwrap();
        let reply = edge.send(req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");
        assert!(reply.body.contains("invalid"), "{route}: {}", reply.body);

        // Another account's token.
        let reply = edge
            .send(signed_with(route, &params, "someone-elses-token", &[]))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");

        // Garbage header.
        let mut req = signed(route, &params);
        req.headers_mut()
            .insert("x-twilio-signature", "not base64!".parse().unwrap());
        assert_eq!(
            edge.send(req).await.status,
            StatusCode::FORBIDDEN,
            "{route}"
        );
    }
}

#[tokio::test]
async fn signature_covers_the_public_url_and_query_not_the_local_one() {
    let edge = edge().await;
    let params = voice_params(SCREENING_NUMBER, CALLER);
    // Signed over the URL the runtime sees locally: refused.
    let sig = shared::signature::compute(
        AUTH_TOKEN,
        "http://127.0.0.1:8787/telephony/inbound",
        &params,
    );
    let body = shared::form::Form::from_pairs(params.clone()).to_urlencoded();
    let req = Request::post("/telephony/inbound")
        .header("x-twilio-signature", sig)
        .body(Body::from(body))
        .unwrap();
    assert_eq!(edge.send(req).await.status, StatusCode::FORBIDDEN);

    // A query string is part of what is signed: moving it breaks the signature.
    let mut req = signed("/telephony/inbound?x=1", &params);
    *req.uri_mut() = "/telephony/inbound?x=2".parse().unwrap();
    assert_eq!(edge.send(req).await.status, StatusCode::FORBIDDEN);

    // And the correctly signed request with a query passes.
    let reply = edge.send(signed("/telephony/inbound?x=1", &params)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn malformed_body_is_400() {
    let edge = edge().await;
    for route in SIGNED_ROUTES {
        let req = Request::post(*route)
            .header("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            .body(Body::from("CallSid=%zz&To=%2B1"))
            .unwrap();
        let reply = edge.send(req).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{route}: {}",
            reply.body
        );
        assert!(reply.body.contains("malformed"), "{}", reply.body);
    }
}

#[tokio::test]
async fn missing_required_field_is_400_naming_it() {
    let edge = edge().await;
    for (route, field) in [
        ("/telephony/inbound", "CallSid"),
        ("/telephony/dial-result", "DialCallStatus"),
        ("/telephony/status", "CallStatus"),
        ("/telephony/stream-status", "StreamSid"),
        ("/telephony/recording", "RecordingSid"),
        ("/sms/inbound", "MessageSid"),
        ("/telephony/outbound", "ApplicationSid"),
    ] {
        let params = without(voice_params(SCREENING_NUMBER, CALLER), field);
        let params = if route == "/telephony/outbound" {
            with(params, "From", "client:alice")
        } else {
            params
        };
        let reply = edge.send(signed(route, &params)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{route}: {}",
            reply.body
        );
        assert!(reply.body.contains(field), "{route}: {}", reply.body);
    }
}

#[tokio::test]
async fn healthz_is_unsigned_and_reports_the_snapshot() {
    let edge = edge().await;
    let reply = edge
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok snapshot=none\n");
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    let reply = edge
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.body, "ok snapshot_age_ms=0\n");
}

// ----------------------------------------------------------------------------------------------
// /telephony/inbound
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn screening_call_streams_to_the_nearest_node_with_a_valid_token() {
    let edge = edge().await;
    let doc = edge
        .call(SCREENING_NUMBER, CALLER, &[("x-home-region", "us1")])
        .await;
    let (node, attempt, tried) = assert_stream(&doc, CallMode::Screening, &edge.node.base());
    assert_eq!(node, "iad-1");
    assert_eq!((attempt.as_str(), tried.as_str()), ("1", "iad-1"));
    let token = doc.find("Stream").unwrap().parameter("token").unwrap();
    let claims = stream_token::verify(&token, SECRET, NOW_S, Some("iad-1")).unwrap();
    assert_eq!(claims.tenant_id, TENANT_A);
    assert!(claims.expires_at > NOW_S + 60 && claims.expires_at <= NOW_S + 300);
    // The token is short-lived and bound to its node.
    assert!(stream_token::verify(&token, SECRET, NOW_S + 600, None).is_err());
    assert!(stream_token::verify(&token, SECRET, NOW_S, Some("lhr-1")).is_err());
    assert!(stream_token::verify(&token, b"another key", NOW_S, None).is_err());
}

#[tokio::test]
async fn receptionist_call_streams_in_receptionist_mode() {
    let edge = edge().await;
    let doc = edge
        .call(RECEPTIONIST_NUMBER, CALLER, &[("x-home-region", "ie1")])
        .await;
    let (node, _, _) = assert_stream(&doc, CallMode::Receptionist, &edge.node.base());
    assert_eq!(node, "lhr-1");
}

#[tokio::test]
async fn forward_call_rings_the_owner_showing_the_caller() {
    let edge = edge().await;
    let doc = edge.call(FORWARD_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Dial"]);
    let action = assert_dial(&doc, OWNER, Some(CALLER));
    assert_eq!(action, format!("{BASE}/telephony/dial-result"));
    assert_eq!(doc.find("Dial").unwrap().attr("method"), Some("POST"));
}

#[tokio::test]
async fn withheld_caller_id_is_not_passed_as_caller_id() {
    let edge = edge().await;
    let doc = edge.call(FORWARD_NUMBER, "anonymous", &[]).await;
    assert_dial(&doc, OWNER, None);
}

#[tokio::test]
async fn allow_listed_caller_of_a_screening_number_rings_the_owner() {
    let edge = edge().await;
    let doc = edge.call(SCREENING_NUMBER, ALLOWED_CALLER, &[]).await;
    assert_dial(&doc, OWNER, Some(ALLOWED_CALLER));
}

#[tokio::test]
async fn blocked_caller_is_rejected() {
    let edge = edge().await;
    let doc = edge.call(SCREENING_NUMBER, "+1 (800) 555-0111", &[]).await;
    assert_eq!(doc.child_names(), ["Reject"]);
    assert_eq!(doc.find("Reject").unwrap().attr("reason"), Some("rejected"));
}

#[tokio::test]
async fn unknown_number_is_told_politely_it_is_not_in_service() {
    let edge = edge().await;
    let doc = edge.call(UNKNOWN_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Say", "Hangup"]);
    assert!(doc.find("Say").unwrap().text.contains("not in service"));
}

#[tokio::test]
async fn number_lookup_falls_back_to_forwarded_from_then_called() {
    let edge = edge().await;
    let params = with(
        voice_params(UNKNOWN_NUMBER, CALLER),
        "ForwardedFrom",
        FORWARD_NUMBER,
    );
    let doc = edge
        .send(signed("/telephony/inbound", &params))
        .await
        .twiml();
    assert_dial(&doc, OWNER, Some(CALLER));

    let params = with(
        voice_params(UNKNOWN_NUMBER, CALLER),
        "Called",
        RECEPTIONIST_NUMBER,
    );
    let doc = edge
        .send(signed("/telephony/inbound", &params))
        .await
        .twiml();
    assert_stream(&doc, CallMode::Receptionist, &edge.node.base());
}

#[tokio::test]
async fn screening_number_with_ai_off_rings_the_owner() {
    let edge = edge().await;
    let doc = edge.call(SCREENING_NO_AI_NUMBER, CALLER, &[]).await;
    assert_dial(&doc, OWNER, Some(CALLER));
}

#[tokio::test]
async fn no_available_node_falls_back_to_owner_then_voicemail() {
    let edge = edge_with(
        |base| {
            let mut s = standard_snapshot(base, NOW_S);
            for n in &mut s.nodes {
                n.draining = true;
            }
            Some(s)
        },
        &[],
    )
    .await;
    // Screening with an owner: the owner's phone, marked last resort.
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    let action = assert_dial(&doc, OWNER, Some(CALLER));
    assert_eq!(
        action,
        format!("{BASE}/telephony/dial-result?last_resort=1")
    );
    // Receptionist without an owner: voicemail.
    let doc = edge.call(RECEPTIONIST_NUMBER, CALLER, &[]).await;
    assert_voicemail(&doc);
}

// ----------------------------------------------------------------------------------------------
// Nearest node
// ----------------------------------------------------------------------------------------------

/// Nodes in four regions; the nearest to us1 (iad) is draining, the next is full.
fn crowded_snapshot(base: &str) -> shared::routing::RoutingSnapshot {
    let mut s = standard_snapshot(base, NOW_S);
    let mut draining = node(base, "iad-1", "iad", 38.94, -77.45);
    draining.draining = true;
    let mut full = node(base, "ewr-1", "ewr", 40.69, -74.17);
    full.active_calls = 50;
    let mut dead = node(base, "iad-2", "iad", 38.95, -77.46);
    dead.last_heartbeat = NOW_S - 600;
    s.nodes = vec![
        draining,
        full,
        dead,
        node(base, "ord-1", "ord", 41.98, -87.90),
        node(base, "lhr-1", "lhr", 51.47, -0.45),
        node(base, "syd-1", "syd", -33.95, 151.18),
    ];
    s
}

#[tokio::test]
async fn nearest_node_skips_draining_full_and_silent_nodes() {
    let edge = edge_with(|base| Some(crowded_snapshot(base)), &[]).await;
    let base = edge.node.base();
    let node_for = |doc: &El| assert_stream(doc, CallMode::Screening, &base).0;

    let doc = edge
        .call(SCREENING_NUMBER, CALLER, &[("x-home-region", "us1")])
        .await;
    assert_eq!(node_for(&doc), "ord-1");
    let doc = edge
        .call(SCREENING_NUMBER, CALLER, &[("x-home-region", "au1")])
        .await;
    assert_eq!(node_for(&doc), "syd-1");

    // No X-Home-Region: the request's cf location decides.
    let mut req = signed(
        "/telephony/inbound",
        &voice_params(SCREENING_NUMBER, CALLER),
    );
    req.extensions_mut()
        .insert(RequestLocation(GeoPoint::new(48.85, 2.35))); // Paris
    let doc = edge.send(req).await.twiml();
    assert_eq!(node_for(&doc), "lhr-1");

    // X-Home-Region wins over cf.
    let mut req = signed_with(
        "/telephony/inbound",
        &voice_params(SCREENING_NUMBER, CALLER),
        AUTH_TOKEN,
        &[("x-home-region", "au1")],
    );
    req.extensions_mut()
        .insert(RequestLocation(GeoPoint::new(48.85, 2.35)));
    assert_eq!(node_for(&edge.send(req).await.twiml()), "syd-1");
}

// ----------------------------------------------------------------------------------------------
// /telephony/stream-fallback
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn stream_the_node_ended_on_purpose_is_hung_up_not_rerouted() {
    let edge = edge().await;
    let params = with(
        voice_params(SCREENING_NUMBER, CALLER),
        "CallStatus",
        "in-progress",
    );
    let home = [("x-home-region", "us1")];
    let first = edge.call(SCREENING_NUMBER, CALLER, &home).await;
    let action = first
        .find("Connect")
        .unwrap()
        .attr("action")
        .unwrap()
        .to_owned();
    let call_sid = params
        .iter()
        .find(|(k, _)| k == "CallSid")
        .map(|(_, v)| v.clone())
        .unwrap();
    let stream = first.find("Stream").unwrap();
    assert_eq!(stream.parameter("from").as_deref(), Some(CALLER));
    assert_eq!(stream.parameter("to").as_deref(), Some(SCREENING_NUMBER));
    edge.node.finish_call("iad-1", &call_sid, "message_taken");
    let doc = edge
        .send(signed_with(
            action.strip_prefix(BASE).unwrap(),
            &params,
            AUTH_TOKEN,
            &home,
        ))
        .await
        .twiml();
    assert_eq!(doc.child_names(), vec!["Hangup"]);
}

#[tokio::test]
async fn failed_stream_moves_to_the_next_node_then_to_the_owner() {
    let edge = edge().await;
    let params = with(
        voice_params(SCREENING_NUMBER, CALLER),
        "CallStatus",
        "in-progress",
    );
    let home = [("x-home-region", "us1")];

    let first = edge.call(SCREENING_NUMBER, CALLER, &home).await;
    let action = first
        .find("Connect")
        .unwrap()
        .attr("action")
        .unwrap()
        .to_owned();
    let path = action.strip_prefix(BASE).unwrap();
    let doc = edge
        .send(signed_with(path, &params, AUTH_TOKEN, &home))
        .await
        .twiml();
    let (node, attempt, tried) = assert_stream(&doc, CallMode::Screening, &edge.node.base());
    assert_eq!(
        (node.as_str(), attempt.as_str(), tried.as_str()),
        ("ord-1", "2", "iad-1,ord-1")
    );

    let action = doc
        .find("Connect")
        .unwrap()
        .attr("action")
        .unwrap()
        .to_owned();
    let doc = edge
        .send(signed_with(
            action.strip_prefix(BASE).unwrap(),
            &params,
            AUTH_TOKEN,
            &home,
        ))
        .await
        .twiml();
    let (node, attempt, _) = assert_stream(&doc, CallMode::Screening, &edge.node.base());
    assert_eq!((node.as_str(), attempt.as_str()), ("lhr-1", "3"));

    // Third failure: stop trying nodes, ring the owner.
    let action = doc
        .find("Connect")
        .unwrap()
        .attr("action")
        .unwrap()
        .to_owned();
    let doc = edge
        .send(signed_with(
            action.strip_prefix(BASE).unwrap(),
            &params,
            AUTH_TOKEN,
            &home,
        ))
        .await
        .twiml();
    assert_dial(&doc, OWNER, Some(CALLER));
}

#[tokio::test]
async fn stream_end_after_hangup_just_hangs_up() {
    let edge = edge().await;
    let params = with(
        voice_params(SCREENING_NUMBER, CALLER),
        "CallStatus",
        "completed",
    );
    let doc = edge
        .send(signed(
            "/telephony/stream-fallback?attempt=1&mode=screening&tried=iad-1",
            &params,
        ))
        .await
        .twiml();
    assert_eq!(doc.child_names(), ["Hangup"]);
}

// ----------------------------------------------------------------------------------------------
// /telephony/dial-result and voicemail
// ----------------------------------------------------------------------------------------------

fn dial_params(to: &str, status: &str) -> Vec<(String, String)> {
    let params = with(voice_params(to, CALLER), "DialCallStatus", status);
    let params = with(params, "CallStatus", "in-progress");
    with(params, "DialCallSid", "CA0000000000000000000000000000dial")
}

#[tokio::test]
async fn answered_dial_hangs_up_and_is_reported() {
    let edge = edge().await;
    for status in ["completed", "answered"] {
        let doc = edge
            .send(signed(
                "/telephony/dial-result",
                &dial_params(FORWARD_NUMBER, status),
            ))
            .await
            .twiml();
        assert_eq!(doc.child_names(), ["Hangup"], "{status}");
    }
    let events = edge.node.wait_for_events(2).await;
    assert!(events.iter().all(|(_, e)| e.kind == EventKind::DialResult));
}

#[tokio::test]
async fn missed_dial_goes_to_the_ai_receptionist_and_starts_the_text_back() {
    let edge = edge().await;
    for status in ["no-answer", "busy", "failed", "canceled"] {
        let doc = edge
            .send(signed_with(
                "/telephony/dial-result",
                &dial_params(FORWARD_NUMBER, status),
                AUTH_TOKEN,
                &[("i-twilio-idempotency-token", status)],
            ))
            .await
            .twiml();
        assert_stream(&doc, CallMode::Receptionist, &edge.node.base());
    }
    let events = edge.node.wait_for_events(4).await;
    for (_, event) in &events {
        assert_eq!(event.kind, EventKind::DialResult);
        assert_eq!(event.tenant_id.as_deref(), Some(TENANT_B));
        let dial: shared::webhook::DialActionRequest =
            shared::webhook::FromForm::from_form(&event.form()).unwrap();
        assert_eq!(event.idempotency_key, dial.dial_call_status.as_str());
    }
}

#[tokio::test]
async fn missed_transfer_resumes_the_ai_at_lead_capture() {
    let edge = edge().await;
    let doc = edge
        .send(signed(
            "/telephony/dial-result?transfer=1",
            &dial_params(SCREENING_NUMBER, "no-answer"),
        ))
        .await
        .twiml();
    assert_stream(&doc, CallMode::Receptionist, &edge.node.base());
    let connect = doc.find("Connect").unwrap();
    let stream = connect.find("Stream").unwrap();
    assert_eq!(
        stream.parameter("after").as_deref(),
        Some("failed_transfer")
    );
    // If that node's stream fails, the fallback route is told to resume at lead capture too.
    let (_, query) = split_url(connect.attr("action").unwrap());
    assert!(query.contains(&("after".to_owned(), "failed_transfer".to_owned())));
    // An ordinary missed forward dial does not.
    let doc = edge
        .send(signed(
            "/telephony/dial-result",
            &dial_params(FORWARD_NUMBER, "no-answer"),
        ))
        .await
        .twiml();
    let stream = doc.find("Connect").unwrap().find("Stream").unwrap();
    assert_eq!(stream.parameter("after"), None);
}

#[tokio::test]
async fn missed_dial_with_ai_off_takes_a_voicemail() {
    let edge = edge().await;
    let doc = edge
        .send(signed(
            "/telephony/dial-result",
            &dial_params(FORWARD_NO_AI_NUMBER, "no-answer"),
        ))
        .await
        .twiml();
    assert_voicemail(&doc);
}

#[tokio::test]
async fn missed_last_resort_dial_takes_a_voicemail_not_the_ai() {
    let edge = edge().await;
    let doc = edge
        .send(signed(
            "/telephony/dial-result?last_resort=1",
            &dial_params(SCREENING_NUMBER, "busy"),
        ))
        .await
        .twiml();
    assert_voicemail(&doc);
}

#[tokio::test]
async fn voicemail_done_says_goodbye() {
    let edge = edge().await;
    let params = with(
        voice_params(SCREENING_NUMBER, CALLER),
        "RecordingUrl",
        "https://api.twilio.com/r/RE1",
    );
    let doc = edge
        .send(signed("/telephony/voicemail-done", &params))
        .await
        .twiml();
    assert_eq!(doc.child_names(), ["Say", "Hangup"]);
}

// ----------------------------------------------------------------------------------------------
// Forwarded callbacks
// ----------------------------------------------------------------------------------------------

fn status_params() -> Vec<(String, String)> {
    let p = with(
        voice_params(SCREENING_NUMBER, CALLER),
        "CallStatus",
        "completed",
    );
    let p = with(p, "CallDuration", "42");
    with(p, "SequenceNumber", "3")
}

fn stream_status_params() -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", CALL_SID),
        ("StreamSid", "MZ00000000000000000000000000000001"),
        ("StreamEvent", "stream-stopped"),
        ("Timestamp", "2027-01-15T08:00:00Z"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn recording_params() -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", CALL_SID),
        ("RecordingSid", "RE00000000000000000000000000000001"),
        ("RecordingStatus", "completed"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1",
        ),
        ("RecordingDuration", "12"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn sms_params() -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("From", CALLER),
        ("To", FORWARD_NUMBER),
        ("Body", "Call me back please & thanks"),
        ("NumMedia", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A delivery report of an SMS the tenant's number sent to the caller.
fn sms_status_params() -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", "SM00000000000000000000000000000002"),
        ("MessageStatus", "delivered"),
        ("From", FORWARD_NUMBER),
        ("To", CALLER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn callbacks_are_forwarded_signed_with_twilios_idempotency_token() {
    let edge = edge().await;
    let cases = [
        (
            "/telephony/status",
            status_params(),
            EventKind::CallStatus,
            Some(TENANT_A),
        ),
        (
            "/telephony/stream-status",
            stream_status_params(),
            EventKind::StreamStatus,
            None,
        ),
        (
            "/telephony/recording",
            recording_params(),
            EventKind::Recording,
            None,
        ),
        ("/sms/inbound", sms_params(), EventKind::Sms, Some(TENANT_B)),
        (
            "/sms/status",
            sms_status_params(),
            EventKind::SmsStatus,
            Some(TENANT_B),
        ),
    ];
    for (i, (route, params, kind, tenant)) in cases.iter().enumerate() {
        let token = format!("idem-{i}");
        let reply = edge
            .send(signed_with(
                route,
                params,
                AUTH_TOKEN,
                &[("I-Twilio-Idempotency-Token", &token)],
            ))
            .await;
        if *kind == EventKind::Sms {
            let doc = reply.twiml();
            assert!(doc.children.is_empty());
        } else {
            assert_eq!(
                reply.status,
                StatusCode::NO_CONTENT,
                "{route}: {}",
                reply.body
            );
        }
        let events = edge.node.events();
        let (_, event) = events.last().unwrap();
        assert_eq!(event.kind, *kind);
        assert_eq!(event.idempotency_key, token);
        assert_eq!(event.received_at, NOW_S);
        assert_eq!(event.tenant_id.as_deref(), *tenant, "{route}");
        assert_eq!(&event.fields, params);
    }
    assert_eq!(*edge.node.state.bad_signatures.lock().unwrap(), 0);
}

#[tokio::test]
async fn retried_callback_without_token_gets_the_same_body_hash_key() {
    let edge = edge().await;
    for _ in 0..2 {
        let reply = edge
            .send(signed("/telephony/status", &status_params()))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    let events = edge.node.events();
    assert_eq!(events.len(), 2);
    assert!(events[0].1.idempotency_key.starts_with("sha256:"));
    assert_eq!(events[0].1.idempotency_key, events[1].1.idempotency_key);
}

#[tokio::test]
async fn callback_goes_to_the_node_named_in_its_url() {
    let edge = edge().await;
    let reply = edge
        .send(signed_with(
            "/telephony/stream-status?node=syd-1",
            &stream_status_params(),
            AUTH_TOKEN,
            &[("x-home-region", "us1")],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(edge.node.events()[0].0, "syd-1");
}

#[tokio::test]
async fn failing_node_is_skipped_for_the_next_one() {
    let edge = edge().await;
    edge.node.fail("iad-1");
    let reply = edge
        .send(signed_with(
            "/telephony/status",
            &status_params(),
            AUTH_TOKEN,
            &[("x-home-region", "us1")],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(edge.node.events()[0].0, "ord-1");
}

#[tokio::test]
async fn callback_no_node_accepts_is_503_not_lost_silently() {
    let edge = edge().await;
    for id in ["iad-1", "ord-1", "lhr-1", "syd-1"] {
        edge.node.fail(id);
    }
    for (route, params) in [
        ("/telephony/status", status_params()),
        ("/telephony/recording", recording_params()),
        ("/sms/inbound", sms_params()),
    ] {
        let reply = edge.send(signed(route, &params)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{route}");
        assert_eq!(reply.headers["retry-after"], "5");
    }
    assert!(edge.node.events().is_empty());
    // Three tries each (the default `forward_attempts`), on three different nodes.
    let tries = edge.node.tries();
    assert_eq!(tries.len(), 9, "{tries:?}");
    let first: HashSet<&String> = tries[..3].iter().collect();
    assert_eq!(first.len(), 3, "{tries:?}");
}

#[tokio::test]
async fn a_lone_node_that_fails_a_moment_gets_the_callback_again() {
    let edge = edge_with(
        |base| {
            let mut snapshot = standard_snapshot(base, NOW_S);
            snapshot.nodes.truncate(1);
            Some(snapshot)
        },
        &[],
    )
    .await;
    // Slow or busy for two requests (500 calls starting at once), then fine.
    edge.node.fail_next("iad-1", 2);
    let reply = edge
        .send(signed("/telephony/stream-status", &stream_status_params()))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(edge.node.tries(), ["iad-1", "iad-1", "iad-1"]);
    assert_eq!(edge.node.events().len(), 1);
    // Still failing after the last try: 503, so Twilio's callback is not lost silently.
    edge.node.fail_next("iad-1", 3);
    let reply = edge
        .send(signed("/telephony/status", &status_params()))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(edge.node.tries().len(), 6);
}

// ----------------------------------------------------------------------------------------------
// /telephony/outbound (browser dialer)
// ----------------------------------------------------------------------------------------------

fn dialer_params(to: &str, tenant: &str) -> Vec<(String, String)> {
    let p = voice_params(to, "client:alice");
    let p = with(p, "Caller", "client:alice");
    let p = with(p, "ApplicationSid", "AP00000000000000000000000000000001");
    with(p, "tenant", tenant)
}

#[tokio::test]
async fn browser_call_dials_from_the_tenant_number_with_live_transcript() {
    let edge = edge().await;
    let params = with(
        dialer_params(CALLER, TENANT_A),
        "callerId",
        RECEPTIONIST_NUMBER,
    );
    let doc = edge
        .send(signed("/telephony/outbound", &params))
        .await
        .twiml();
    assert_eq!(doc.child_names(), ["Start", "Dial"]);
    let stream = doc.find("Stream").unwrap();
    assert_eq!(stream.attr("track"), Some("both_tracks"));
    let claims =
        stream_token::verify(&stream.parameter("token").unwrap(), SECRET, NOW_S, None).unwrap();
    assert_eq!(claims.tenant_id, TENANT_A);
    assert_eq!(stream.parameter("kind").as_deref(), Some("dialer"));
    let dial = doc.find("Dial").unwrap();
    assert_eq!(dial.attr("callerId"), Some(RECEPTIONIST_NUMBER));
    assert_eq!(dial.attr("record"), Some("record-from-answer-dual"));
    assert!(
        dial.attr("recordingStatusCallback")
            .unwrap()
            .starts_with(&format!("{BASE}/telephony/recording"))
    );
    assert_eq!(dial.find("Number").unwrap().text, CALLER);

    // Without callerId: the tenant's first number.
    let doc = edge
        .send(signed(
            "/telephony/outbound",
            &dialer_params(CALLER, TENANT_A),
        ))
        .await
        .twiml();
    assert_eq!(
        doc.find("Dial").unwrap().attr("callerId"),
        Some(SCREENING_NUMBER)
    );
}

#[tokio::test]
async fn browser_call_cannot_borrow_another_tenants_number_or_dial_garbage() {
    let edge = edge().await;
    for params in [
        with(dialer_params(CALLER, TENANT_A), "callerId", FORWARD_NUMBER),
        dialer_params("not a number", TENANT_A),
        dialer_params(CALLER, "no-such-tenant"),
        without(dialer_params(CALLER, TENANT_A), "tenant"),
    ] {
        let doc = edge
            .send(signed("/telephony/outbound", &params))
            .await
            .twiml();
        assert_eq!(doc.child_names(), ["Say", "Hangup"], "{params:?}");
    }
}

// ----------------------------------------------------------------------------------------------
// Routing snapshot cache
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn snapshot_is_pulled_once_per_ttl_and_refreshed_in_the_background() {
    let edge = edge().await;
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(edge.node.pulls(), 1, "a fresh snapshot is not pulled again");

    // Stale: the old copy answers immediately, a refresh runs behind it.
    let mut updated = standard_snapshot(&edge.node.base(), NOW_S + 20);
    updated.numbers.retain(|n| n.e164 != SCREENING_NUMBER);
    edge.node.set_snapshot(Some(updated));
    edge.clock.advance(20_000);
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Connect"], "stale copy still served");
    edge.node.wait_for_pulls(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Say", "Hangup"], "refreshed copy used");
    assert_eq!(edge.node.pulls(), 2);
}

#[tokio::test]
async fn last_good_snapshot_survives_a_dead_control_plane() {
    let edge = edge().await;
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(edge.node.pulls(), 1);
    edge.node.kill();
    // An hour later, with every refresh failing, calls still route by the last good copy.
    for _ in 0..3 {
        edge.clock.advance(20 * 60_000);
        let doc = edge
            .call(SCREENING_NUMBER, CALLER, &[("x-home-region", "us1")])
            .await;
        let (node, _, _) = assert_stream(&doc, CallMode::Screening, &edge.node.base());
        assert_eq!(node, "iad-1");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn control_plane_answering_errors_keeps_the_last_good_copy() {
    let edge = edge().await;
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    edge.node.set_snapshot(None); // 503 from now on
    edge.clock.advance(20_000);
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    edge.node.wait_for_pulls(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Connect"]);
}

const FALLBACK_NODES: &str = r#"[{"id":"fallback-1","region":"iad","lat":38.94,"lon":-77.45,"public_url":"https://voice.example.com"}]"#;

#[tokio::test]
async fn fallback_nodes_are_used_when_no_snapshot_was_ever_pulled() {
    let fallback_numbers = format!(
        r#"[{{"e164":"{RECEPTIONIST_NUMBER}","tenant_id":"{TENANT_A}","mode":"receptionist"}}]"#
    );
    let edge = edge_with(
        |_| None,
        &[
            ("FALLBACK_NODES", FALLBACK_NODES),
            ("FALLBACK_NUMBERS", &fallback_numbers),
        ],
    )
    .await;
    let doc = edge.call(RECEPTIONIST_NUMBER, CALLER, &[]).await;
    let stream = doc.find("Stream").unwrap();
    assert_eq!(
        stream.attr("url"),
        Some("wss://voice.example.com/media/fallback-1")
    );
    // A number only the (unreachable) snapshot knows: not in service.
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Say", "Hangup"]);
    // The cold isolate tried the control plane once, then backs off instead of waiting on it.
    assert_eq!(edge.node.pulls(), 1);
}

#[tokio::test]
async fn without_any_snapshot_or_fallback_numbers_every_call_is_not_in_service() {
    let edge = edge_with(|_| None, &[("FALLBACK_NODES", FALLBACK_NODES)]).await;
    let doc = edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(doc.child_names(), ["Say", "Hangup"]);
}

#[tokio::test]
async fn snapshot_pull_is_signed_and_a_wrong_secret_is_refused() {
    // The control node checks the edge's HMAC: with the right secret there are no refusals.
    let edge = edge().await;
    edge.call(SCREENING_NUMBER, CALLER, &[]).await;
    assert_eq!(edge.node.pulls(), 1);
    assert_eq!(*edge.node.state.bad_signatures.lock().unwrap(), 0);

    // An edge with another secret is refused (401) and falls back.
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    node.set_snapshot(Some(standard_snapshot(&node.base(), NOW_S)));
    let mut cfg = config(&node.base(), &[]);
    cfg.edge_shared_secret = b"wrong".to_vec();
    let router = app(AppState::with_clock(cfg, clock));
    let req = signed(
        "/telephony/inbound",
        &voice_params(SCREENING_NUMBER, CALLER),
    );
    let response = router.oneshot(req).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("not in service"));
    assert_eq!(*node.state.bad_signatures.lock().unwrap(), 1);
}
