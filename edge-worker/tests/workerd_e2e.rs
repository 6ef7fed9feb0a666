//! End to end: the WASM build served by workerd on loopback, webhooks signed by Twilio's own
//! npm library, the routing snapshot pulled from a local fake node over HMAC.
//!
//! Needs `edge-worker/dist/` (`cargo xtask edge-bundle`) and `node_modules/` (`npm ci`);
//! `cargo xtask test edge-e2e` builds both and runs this with `--include-ignored`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::workerd::{Workerd, repo_root};
use common::*;
use edge_worker::platform::Clock;
use shared::domain::CallMode;
use shared::form::Form;
use shared::forwarded::EventKind;

/// Signs each (url, params) with `twilio.getExpectedTwilioSignature` via node.
fn twilio_sign(requests: &[(String, Vec<(String, String)>)]) -> Vec<String> {
    let requests: Vec<serde_json::Value> = requests
        .iter()
        .map(|(url, params)| {
            let params: serde_json::Map<String, serde_json::Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            serde_json::json!({ "url": url, "params": params })
        })
        .collect();
    let input = serde_json::json!({ "authToken": AUTH_TOKEN, "requests": requests }).to_string();
    let mut child = Command::new("node")
        .arg(repo_root().join("edge-worker/tests/twilio_sign.cjs"))
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node (Node.js 20+ is needed for the twilio package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "twilio_sign.cjs failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Sent {
    status: u16,
    body: String,
}

async fn post(
    client: &reqwest::Client,
    workerd: &Workerd,
    path: &str,
    params: &[(String, String)],
    signature: Option<&str>,
    headers: &[(&str, &str)],
) -> Sent {
    let mut req = client
        .post(workerd.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Form::from_pairs(params.iter().cloned()).to_urlencoded());
    if let Some(sig) = signature {
        req = req.header("x-twilio-signature", sig);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    Sent {
        status,
        body: response.text().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the WASM bundle and npm packages; `cargo xtask test` builds them and runs this with --include-ignored"]
async fn wasm_worker_in_workerd_answers_twilio_signed_webhooks() {
    let node = FakeNode::start(Clock::system()).await;
    node.set_snapshot(Some(standard_snapshot(&node.base(), NOW_S)));
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    let workerd = Workerd::start(&[
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("EDGE_SHARED_SECRET", &secret),
        ("PUBLIC_WEBHOOK_BASE_URL", BASE),
        ("CONTROL_URL", &node.base()),
    ]);
    let client = reqwest::Client::new();

    let screening = voice_params(SCREENING_NUMBER, CALLER);
    let forward = voice_params(FORWARD_NUMBER, CALLER);
    let unknown = voice_params(UNKNOWN_NUMBER, CALLER);
    let status = with(
        with(
            voice_params(SCREENING_NUMBER, CALLER),
            "CallStatus",
            "completed",
        ),
        "CallDuration",
        "42",
    );
    let missed = with(
        with(
            voice_params(FORWARD_NUMBER, CALLER),
            "DialCallStatus",
            "no-answer",
        ),
        "CallStatus",
        "in-progress",
    );
    let url = |path: &str| format!("{BASE}{path}");
    let sigs = twilio_sign(&[
        (url("/telephony/inbound"), screening.clone()),
        (url("/telephony/inbound"), forward.clone()),
        (url("/telephony/inbound"), unknown.clone()),
        (url("/telephony/status"), status.clone()),
        (url("/telephony/dial-result"), missed.clone()),
    ]);
    let home = [("x-home-region", "us1")];

    // Valid, screening: <Connect><Stream> to the nearest node with a token that verifies.
    let sent = post(
        &client,
        &workerd,
        "/telephony/inbound",
        &screening,
        Some(&sigs[0]),
        &home,
    )
    .await;
    assert_eq!(sent.status, 200, "{}\n{}", sent.body, workerd.log());
    let doc = parse_twiml(&sent.body);
    let stream = doc
        .find("Stream")
        .unwrap_or_else(|| panic!("{}", sent.body));
    let now_s = Clock::system().now_s();
    let token = stream.parameter("token").unwrap();
    let claims = shared::stream_token::verify(&token, SECRET, now_s, Some("iad-1")).unwrap();
    assert_eq!(
        (claims.call_sid.as_str(), claims.tenant_id.as_str()),
        (CALL_SID, TENANT_A)
    );
    assert_eq!(claims.mode, CallMode::Screening);
    let ws = node.base().replacen("http://", "ws://", 1);
    assert_eq!(
        stream.attr("url").unwrap(),
        format!("{ws}/n/iad-1/media/iad-1")
    );
    assert_eq!(
        doc.find("Connect").unwrap().attr("action").unwrap(),
        format!("{BASE}/telephony/stream-fallback?attempt=1&mode=screening&tried=iad-1")
    );
    assert!(
        node.pulls() >= 1,
        "the Worker pulled the snapshot over HMAC"
    );

    // Valid, forward: <Dial timeout=20 action=dial-result>.
    let sent = post(
        &client,
        &workerd,
        "/telephony/inbound",
        &forward,
        Some(&sigs[1]),
        &[],
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let doc = parse_twiml(&sent.body);
    let dial = doc.find("Dial").unwrap();
    assert_eq!(dial.attr("timeout"), Some("20"));
    assert_eq!(
        dial.attr("action").unwrap(),
        format!("{BASE}/telephony/dial-result")
    );
    assert_eq!(dial.find("Number").unwrap().text, OWNER);

    // Valid, unknown number: polite not-in-service.
    let sent = post(
        &client,
        &workerd,
        "/telephony/inbound",
        &unknown,
        Some(&sigs[2]),
        &[],
    )
    .await;
    assert_eq!(sent.status, 200);
    assert!(sent.body.contains("not in service"), "{}", sent.body);

    // Tampered: the screening signature with another caller.
    let tampered = with(screening.clone(), "From", ALLOWED_CALLER);
    let sent = post(
        &client,
        &workerd,
        "/telephony/inbound",
        &tampered,
        Some(&sigs[0]),
        &[],
    )
    .await;
    assert_eq!(sent.status, 403, "{}", sent.body);

    // Signed for another route: refused.
    let sent = post(
        &client,
        &workerd,
        "/telephony/dial-result",
        &screening,
        Some(&sigs[0]),
        &[],
    )
    .await;
    assert_eq!(sent.status, 403);

    // Missing signature.
    let sent = post(
        &client,
        &workerd,
        "/telephony/inbound",
        &screening,
        None,
        &[],
    )
    .await;
    assert_eq!(sent.status, 403);

    // Status callback: forwarded from the Worker to the node, HMAC-signed, then 204.
    let sent = post(
        &client,
        &workerd,
        "/telephony/status",
        &status,
        Some(&sigs[3]),
        &[("i-twilio-idempotency-token", "e2e-idem-1")],
    )
    .await;
    assert_eq!(sent.status, 204, "{}\n{}", sent.body, workerd.log());
    let events = node.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.kind, EventKind::CallStatus);
    assert_eq!(events[0].1.idempotency_key, "e2e-idem-1");
    assert_eq!(events[0].1.fields, status);

    // Missed forward: the AI receptionist takes the call, and the dial_result event reaches the
    // node after the response (ctx.wait_until).
    let sent = post(
        &client,
        &workerd,
        "/telephony/dial-result",
        &missed,
        Some(&sigs[4]),
        &home,
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let doc = parse_twiml(&sent.body);
    assert_eq!(
        doc.find("Stream").unwrap().parameter("mode").as_deref(),
        Some("receptionist")
    );
    let events = node.wait_for_events(2).await;
    assert_eq!(events[1].1.kind, EventKind::DialResult);
    assert_eq!(events[1].1.tenant_id.as_deref(), Some(TENANT_B));
    assert_eq!(*node.state.bad_signatures.lock().unwrap(), 0);
}
