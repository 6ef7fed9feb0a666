//! Call flows end to end with the offline AI agent on real speech, a node on a real port, Twilio
//! REST pointed at a local fake that records requests, the real edge Router in-process and a
//! real SMTP server (aiosmtpd):
//!
//! - a legit caller on a screening number is put through: the fake Twilio receives the call
//!   update with `<Dial action=…/telephony/dial-result?transfer=1 timeout=20>` to the owner, the
//!   attempt is in `call_events`, and the dial's completion makes the outcome `transferred`;
//! - a transfer nobody answered: the edge's dial-result sends the caller back to a node with
//!   `after=failed_transfer`, the receptionist starts at lead capture, the caller gives name,
//!   number, reason and urgency and confirms; the lead is stored, e-mailed to the tenant's admin
//!   and texted to the owner once.

mod ai_support;
mod node_support;
mod smtp_support;
mod twilio_fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::domain::CallMode;
use shared::forwarded::{EventKind, ForwardedEvent};
use shared::stream_token::{StreamClaims, issue};
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::server::NodeState;

use node_support::{AUTH_TOKEN, NODE, SECRET, TwilioCall};
use smtp_support::SmtpServer;
use twilio_fake::TwilioFake;

const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550123";
const OWNER: &str = "+14155550199";

fn agents(pool: &PgPool) -> Arc<AiAgentFactory> {
    Arc::new(AiAgentFactory::new(
        ai_support::models(),
        InferencePool::new(1),
        Some(pool.clone()),
        AiAgentConfig {
            voice: PromptVoice::Tone,
            ..AiAgentConfig::default()
        },
    ))
}

/// A node with the AI agent, its heartbeat and job workers, Twilio REST at `twilio`.
async fn start_node(
    pool: &PgPool,
    twilio: &TwilioFake,
    edge: &str,
    smtp: Option<u16>,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = node_support::bind().await;
    let base = twilio.base();
    let smtp_url = smtp.map(|p| format!("smtp://127.0.0.1:{p}"));
    let mut extra = vec![
        ("TWILIO_API_BASE", base.as_str()),
        ("TWILIO_ACCOUNT_SID", twilio_fake::ACCOUNT_SID),
        ("PUBLIC_WEBHOOK_BASE_URL", edge),
        ("JOB_WORKERS", "1"),
    ];
    if let Some(url) = &smtp_url {
        extra.push(("SMTP_URL", url.as_str()));
    }
    let config = node_support::config(addr, &extra);
    let state = NodeState::new(config, pool.clone(), agents(pool));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(voice_node::server::run_until_drained(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// The caller's speech: Piper when installed (what the fixtures use), espeak-ng otherwise.
async fn speech(text: &str) -> Vec<u8> {
    let models = ai_support::models();
    if let Some(piper) = &models.piper {
        let owned = text.to_owned();
        let models = Arc::clone(&models);
        return tokio::task::spawn_blocking(move || {
            models.piper.as_ref().unwrap().synthesize_mulaw(&owned)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("piper: {e} ({piper:?})"));
    }
    voice_node::speech::synthesize_mulaw(text).await.unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(ai_support::fixtures().join("stt").join(name)).unwrap()
}

async fn wait_for<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    try_for(Duration::from_secs(60), check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it finds something or `limit` passes.
async fn try_for<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The call's transcript: (speaker, text) in order.
async fn transcript_of(pool: &PgPool, call_sid: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT speaker, text FROM transcript_turns t JOIN calls c ON c.id = t.call_id
         WHERE c.call_sid = $1 ORDER BY t.seq",
    )
    .bind(call_sid)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn call_updates(twilio: &TwilioFake, call_sid: &str) -> Vec<BTreeMap<String, String>> {
    twilio
        .requests()
        .await
        .into_iter()
        .filter(|r| r.resource.trim_end_matches(".json") == format!("Calls/{call_sid}"))
        .map(|r| r.form)
        .collect()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_legit_caller_is_transferred_to_the_owner_over_twilio_rest(pool: PgPool) {
    let twilio = TwilioFake::start().await;
    let (tenant, _) = node_support::tenant_with_number(&pool, NUMBER, CallMode::Screening).await;
    let (addr, _stop) = start_node(&pool, &twilio, "https://edge.test", None).await;
    let call_sid = "CAflowtransfer0000000000000000001";
    let ws = node_support::connect(addr, &format!("/media/{NODE}"), Some(AUTH_TOKEN))
        .await
        .unwrap();
    let token = issue(
        &StreamClaims {
            call_sid: call_sid.into(),
            tenant_id: tenant.to_string(),
            node_id: NODE.into(),
            mode: CallMode::Screening,
            expires_at: node_support::now_unix() + 120,
        },
        SECRET.as_bytes(),
    );
    let params = BTreeMap::from([
        ("token".to_owned(), token),
        ("from".to_owned(), CALLER.to_owned()),
        ("to".to_owned(), NUMBER.to_owned()),
    ]);
    let mut call = TwilioCall::start_with_parameters(ws, call_sid, params).await;
    call.hear_utterance().await; // the greeting
    call.say_audio(&fixture("01.ulaw"), 800).await; // "Hi, this is Dana from Acme Dental…"
    let spoke = Instant::now();
    call.hear_utterance().await; // "Please hold while I put you through."
    // The reply's stages reached the node's /metrics (the session adds the first frame sent).
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in ["callgate_turn_voice_to_voice_ms", "callgate_turn_stt_ms"] {
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series}_count ")))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n > 0), "{series}: {metrics}");
    }

    let update = wait_for("the transfer's call update", async || {
        call_updates(&twilio, call_sid).await.into_iter().next()
    })
    .await;
    eprintln!(
        "transfer: Twilio call update {} ms after the caller's introduction (+800 ms silence) \
         ended, the hold message included",
        spoke.elapsed().as_millis()
    );
    let twiml = &update["Twiml"];
    assert_eq!(
        twiml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="https://edge.test/telephony/dial-result?transfer=1" method="POST" timeout="20"><Number>+14155550199</Number></Dial></Response>"#
    );
    // Twilio now runs the <Dial> and stops the stream.
    call.stop().await;
    while !matches!(call.recv().await, node_support::FromNode::Close(_)) {}

    let (label, action): (String, Option<String>) = wait_for("the screening result", async || {
        sqlx::query_as("SELECT label, action FROM screening_results")
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        (label.as_str(), action.as_deref()),
        ("legit", Some("transfer"))
    );
    let kinds: Vec<String> = wait_for("the transfer events", async || {
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT e.kind FROM call_events e JOIN calls c ON c.id = e.call_id
             WHERE c.call_sid = $1 AND e.kind LIKE 'transfer%' ORDER BY e.created_at",
        )
        .bind(call_sid)
        .fetch_all(&pool)
        .await
        .unwrap();
        (kinds.len() >= 2).then_some(kinds)
    })
    .await;
    assert_eq!(kinds, ["transfer_attempt", "transfer_started"]);
    // Not hung up, and no outcome until the dial reports.
    assert!(
        !call_updates(&twilio, call_sid)
            .await
            .iter()
            .any(|f| f.get("Status").map(String::as_str) == Some("completed"))
    );
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome, None);

    // The owner answered: the dial result (forwarded by the edge) makes it `transferred`.
    let form = shared::form::Form::from_pairs([
        ("CallSid", call_sid),
        ("AccountSid", "AC1"),
        ("From", CALLER),
        ("To", NUMBER),
        ("CallStatus", "in-progress"),
        ("Direction", "inbound"),
        ("DialCallStatus", "completed"),
        ("DialCallSid", "CAchild"),
        ("DialCallDuration", "42"),
    ]);
    let event = ForwardedEvent::new(EventKind::DialResult, "dial-1".into(), 1, &form);
    voice_node::store::callbacks::apply(&pool, &event)
        .await
        .unwrap();
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("transferred"));
}

/// The stream `<Parameter>`s and node URL path of a `<Connect><Stream>` TwiML answer.
fn stream_of(twiml: &str) -> (String, BTreeMap<String, String>) {
    let doc = roxmltree::Document::parse(twiml).unwrap();
    let stream = doc
        .descendants()
        .find(|n| n.has_tag_name("Stream"))
        .unwrap_or_else(|| panic!("no <Stream> in {twiml}"));
    let url = stream.attribute("url").unwrap().to_owned();
    let params = stream
        .children()
        .filter(|n| n.has_tag_name("Parameter"))
        .map(|n| {
            (
                n.attribute("name").unwrap().to_owned(),
                n.attribute("value").unwrap().to_owned(),
            )
        })
        .collect();
    (url, params)
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_missed_transfer_comes_back_for_lead_capture_and_the_lead_is_announced_once(
    pool: PgPool,
) {
    let twilio = TwilioFake::start().await;
    let smtp = SmtpServer::start().await;
    let (tenant, _) = node_support::tenant_with_number(&pool, NUMBER, CallMode::Receptionist).await;
    sqlx::query(
        "INSERT INTO users (tenant_id, email, password_hash, role)
         VALUES ($1, 'owner@acme.test', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'admin')",
    )
    .bind(tenant)
    .execute(&pool)
    .await
    .unwrap();

    // The edge, in-process, reading the node's routing snapshot.
    let edge_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", edge_listener.local_addr().unwrap());
    let (node_addr, _stop) = start_node(&pool, &twilio, &edge, Some(smtp.port)).await;
    let node = format!("http://{node_addr}");
    let edge_vars = BTreeMap::from([
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("PUBLIC_WEBHOOK_BASE_URL", edge.clone()),
        ("CONTROL_URL", node.clone()),
    ]);
    let edge_config =
        edge_worker::config::Config::from_lookup(|n| edge_vars.get(n).cloned()).unwrap();
    let router = edge_worker::app(edge_worker::AppState::new(edge_config));
    tokio::spawn(async move { axum::serve(edge_listener, router).await });

    // A receptionist call a node transferred (as in the test above)…
    let call_sid = "CAflowmissed00000000000000000001";
    let call_id: Uuid = sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode, status)
         VALUES ($1, $2, $3, $4, 'receptionist', 'in_progress') RETURNING id",
    )
    .bind(call_sid)
    .bind(tenant)
    .bind(CALLER)
    .bind(NUMBER)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO call_events (tenant_id, call_id, kind, payload)
         VALUES ($1, $2, 'transfer_started', '{\"department\": \"Sales\"}')",
    )
    .bind(tenant)
    .bind(call_id)
    .execute(&pool)
    .await
    .unwrap();
    // …whose <Dial> rang out: Twilio calls the action (`?transfer=1`, as the node's TwiML says).
    let url = format!("{edge}/telephony/dial-result?transfer=1");
    let form: Vec<(String, String)> = [
        ("CallSid", call_sid),
        ("AccountSid", twilio_fake::ACCOUNT_SID),
        ("From", CALLER),
        ("To", NUMBER),
        ("CallStatus", "in-progress"),
        ("Direction", "inbound"),
        ("DialCallStatus", "no-answer"),
        ("DialCallSid", "CAchild"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = shared::signature::compute(AUTH_TOKEN, &url, &form);
    let body = shared::form::Form::from_pairs(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .to_urlencoded();
    let twiml = wait_for("the node in the edge's snapshot", async || {
        let answer = reqwest::Client::new()
            .post(&url)
            .header("X-Twilio-Signature", &signature)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let twiml = answer.text().await.unwrap();
        twiml.contains("<Stream").then_some(twiml)
    })
    .await;
    let (stream_url, params) = stream_of(&twiml);
    assert_eq!(
        params.get("after").map(String::as_str),
        Some("failed_transfer")
    );
    assert_eq!(params.get("mode").map(String::as_str), Some("receptionist"));
    let path = stream_url
        .split_once(&node_addr.to_string())
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| panic!("stream not on this node: {stream_url}"));
    let ws = node_support::connect(node_addr, &path, Some(AUTH_TOKEN))
        .await
        .unwrap();
    let mut call = TwilioCall::start_with_parameters(ws, call_sid, params).await;

    // Straight to lead capture; then name, the caller ID confirmed, reason, urgency, read-back.
    call.hear_utterance().await;
    for sentence in [
        "My name is Robert Smith.",
        "Yes, that's the best number.",
        "It's about a leaking roof.",
        "Yes, it is very urgent.",
        "Yes, that's correct.",
    ] {
        call.say_audio(&speech(sentence).await, 800).await;
        call.hear_utterance().await;
    }
    let greeting: String = sqlx::query_scalar(
        "SELECT t.text FROM transcript_turns t JOIN calls c ON c.id = t.call_id
         WHERE c.call_sid = $1 AND t.speaker = 'agent' ORDER BY t.seq LIMIT 1",
    )
    .bind(call_sid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        greeting.starts_with("Sorry, nobody could take your call."),
        "{greeting}"
    );

    let (name, callback, reason, urgency): (Option<String>, Option<String>, String, String) =
        wait_for("the lead", async || {
            sqlx::query_as("SELECT name, callback_number, reason, urgency FROM leads")
                .fetch_optional(&pool)
                .await
                .unwrap()
        })
        .await;
    let transcript = transcript_of(&pool, call_sid).await;
    let name = name.unwrap_or_default();
    assert!(name.contains("Robert"), "{name} / {transcript:#?}");
    assert_eq!(callback.as_deref(), Some(CALLER));
    assert!(reason.to_lowercase().contains("roof"), "{reason}");
    assert_eq!(urgency, "high");

    // The node's job workers mail the tenant's admin and text the owner, once each.
    let mail = wait_for("the lead e-mail", async || smtp.messages().pop()).await;
    assert!(mail.contains("owner@acme.test"), "{mail}");
    assert!(mail.contains("Robert"), "{mail}");
    let sms = wait_for("the owner's SMS", async || {
        twilio.sms_to(OWNER).await.into_iter().next()
    })
    .await;
    assert_eq!(sms.form["From"], NUMBER);
    assert!(
        sms.form["Body"].starts_with("New lead: Robert"),
        "{:?}",
        sms.form
    );

    // The caller says goodbye: the node hangs up over REST.
    call.say_audio(&speech("No, that's all. Goodbye.").await, 800)
        .await;
    let hung_up = try_for(Duration::from_secs(60), async || {
        call_updates(&twilio, call_sid)
            .await
            .into_iter()
            .find(|f| f.get("Status").map(String::as_str) == Some("completed"))
    })
    .await;
    if hung_up.is_none() {
        let transcript = transcript_of(&pool, call_sid).await;
        panic!("no REST hang-up after the goodbye; transcript: {transcript:#?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        twilio.sms_to(OWNER).await.len(),
        1,
        "the owner is texted once"
    );
    assert_eq!(smtp.messages().len(), 1, "one admin, one e-mail");
    // The caller gave their details to the AI: no missed-call text-back on top.
    assert!(twilio.sms_to(CALLER).await.is_empty());
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("message_taken"));
    let leads: i64 = sqlx::query_scalar("SELECT count(*) FROM leads")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leads, 1);
}
