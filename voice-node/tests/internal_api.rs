//! Persistence and the edge's signed API against real Postgres: idempotent writes, forwarded
//! callbacks applied once, HMAC refusals, the routing snapshot, the call report.

mod node_support;

use chrono::Utc;
use node_support::*;
use shared::domain::{CallMode, CallOutcome};
use shared::form::Form;
use shared::forwarded::{EventKind, ForwardedEvent};
use shared::routing::RoutingSnapshot;
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::agent::{Speaker, TurnTimings};
use voice_node::store::Write;
use voice_node::store::writes::{self, CallEndedRow, CallStartedRow, TurnRow};

async fn post_event(node: &TestNode, event: &ForwardedEvent) -> (u16, serde_json::Value) {
    let response = node.send_event(event).await;
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

async fn signed_get(node: &TestNode, path: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(node.url(path));
    for (name, value) in signed(b"") {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

fn event(
    kind: EventKind,
    key: &str,
    pairs: &[(&str, &str)],
    tenant: Option<Uuid>,
) -> ForwardedEvent {
    ForwardedEvent::new(
        kind,
        key.into(),
        now_unix(),
        &Form::from_pairs(pairs.iter().copied()),
    )
    .with_tenant(tenant.map(|t| t.to_string()))
}

fn call_fields<'a>(call_sid: &'a str, status: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CallSid", call_sid),
        ("AccountSid", "AC1"),
        ("From", "+14155550123"),
        ("To", "+14155550100"),
        ("CallStatus", status),
        ("Direction", "inbound"),
    ]
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn call_rows_and_turns_are_idempotent_under_replays(pool: PgPool) {
    let (tenant, number) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let started = Write::CallStarted(CallStartedRow {
        call_sid: "CA_idem".into(),
        tenant_id: tenant.to_string(),
        mode: CallMode::Screening,
        from_number: String::new(),
        to_number: "+14155550100".into(),
        node_id: NODE.into(),
        region: "iad".into(),
        at: Utc::now(),
    });
    let turn = |seq: u32, text: &str| {
        Write::Turn(TurnRow {
            call_sid: "CA_idem".into(),
            seq,
            speaker: Speaker::Caller,
            text: text.into(),
            started_at: Utc::now(),
            ended_at: Some(Utc::now()),
            interrupted: false,
            timings: TurnTimings {
                speech_end_ms: Some(1200),
                ..TurnTimings::default()
            },
        })
    };
    let ended = Write::CallEnded(CallEndedRow {
        call_sid: "CA_idem".into(),
        outcome: Some(CallOutcome::MessageTaken),
        ended_at: Utc::now(),
        duration_s: 12,
        call_over: true,
    });
    let mut conn = pool.acquire().await.unwrap();
    // Everything twice, as a re-flush after an outage would.
    for write in [
        &started,
        &started,
        &turn(0, "first"),
        &turn(0, "first"),
        &turn(1, "second"),
        &ended,
        &ended,
    ] {
        writes::apply(&mut conn, write).await.unwrap();
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM transcript_turns").await,
        2
    );
    let (number_id, outcome, status, duration): (
        Option<Uuid>,
        Option<String>,
        String,
        Option<i32>,
    ) = sqlx::query_as("SELECT number_id, outcome, status, duration_s FROM calls")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(number_id, Some(number));
    assert_eq!(outcome.as_deref(), Some("message_taken"));
    assert_eq!(status, "completed");
    assert_eq!(duration, Some(12));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn forwarded_callbacks_apply_once_however_often_they_arrive(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Forward).await;
    let node = TestNode::start(pool.clone()).await;

    // A status callback for a call nobody streamed yet creates the call.
    let ringing = event(
        EventKind::CallStatus,
        "tok-ring",
        &call_fields("CA_fwd", "ringing"),
        Some(tenant),
    );
    assert_eq!(
        post_event(&node, &ringing).await,
        (200, serde_json::json!({"result": "applied"}))
    );
    assert_eq!(
        post_event(&node, &ringing).await,
        (200, serde_json::json!({"result": "duplicate"}))
    );

    // The owner did not answer: one call event, one text-back job, whatever the retries.
    let mut dial_fields = call_fields("CA_fwd", "in-progress");
    dial_fields.push(("DialCallStatus", "no-answer"));
    let dial = event(
        EventKind::DialResult,
        "tok-dial",
        &dial_fields,
        Some(tenant),
    );
    for _ in 0..3 {
        assert_eq!(post_event(&node, &dial).await.0, 200);
    }
    let mut completed_fields = call_fields("CA_fwd", "completed");
    completed_fields.push(("CallDuration", "31"));
    let completed = event(
        EventKind::CallStatus,
        "tok-done",
        &completed_fields,
        Some(tenant),
    );
    post_event(&node, &completed).await;
    post_event(&node, &completed).await;
    // A late "ringing" retry under a new key does not reopen the finished call.
    let late = event(
        EventKind::CallStatus,
        "tok-late",
        &call_fields("CA_fwd", "ringing"),
        Some(tenant),
    );
    post_event(&node, &late).await;

    assert_eq!(count(&pool, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM call_events").await, 4);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM jobs WHERE kind = 'text_back'").await,
        1
    );
    let (status, outcome, duration, ended): (String, Option<String>, Option<i32>, bool) = sqlx::query_as(
        "SELECT status, outcome, duration_s, ended_at IS NOT NULL FROM calls WHERE call_sid = 'CA_fwd'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), outcome.as_deref(), duration, ended),
        ("completed", Some("missed"), Some(31), true)
    );

    // SMS: one thread, one message.
    let sms = event(
        EventKind::Sms,
        "tok-sms",
        &[
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("From", "+14155550123"),
            ("To", "+14155550100"),
            ("Body", "Call me back please"),
        ],
        Some(tenant),
    );
    assert_eq!(post_event(&node, &sms).await.1["result"], "applied");
    assert_eq!(post_event(&node, &sms).await.1["result"], "duplicate");
    assert_eq!(count(&pool, "SELECT count(*) FROM sms_threads").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM sms_messages").await, 1);

    // Recording: one row, updated in place.
    let recording = event(
        EventKind::Recording,
        "tok-rec",
        &[
            ("AccountSid", "AC1"),
            ("CallSid", "CA_fwd"),
            ("RecordingSid", "RE1"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE1"),
            ("RecordingDuration", "30"),
        ],
        Some(tenant),
    );
    post_event(&node, &recording).await;
    assert_eq!(post_event(&node, &recording).await.1["result"], "duplicate");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM recordings WHERE status = 'completed'"
        )
        .await,
        1
    );

    // Stream status for a known call is recorded; for an unknown call it is acknowledged.
    let stream = |sid: &str, key: &str| {
        event(
            EventKind::StreamStatus,
            key,
            &[
                ("AccountSid", "AC1"),
                ("CallSid", sid),
                ("StreamSid", "MZ1"),
                ("StreamEvent", "stream-started"),
            ],
            Some(tenant),
        )
    };
    assert_eq!(
        post_event(&node, &stream("CA_fwd", "tok-s1")).await.1["result"],
        "applied"
    );
    let (status, body) = post_event(&node, &stream("CA_nobody", "tok-s2")).await;
    assert_eq!((status, body["result"].as_str()), (202, Some("ignored")));

    // Malformed: a status callback without CallSid.
    let bad = event(
        EventKind::CallStatus,
        "tok-bad",
        &[("CallStatus", "completed")],
        None,
    );
    assert_eq!(post_event(&node, &bad).await.0, 400);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn internal_routes_refuse_bad_or_missing_signatures(pool: PgPool) {
    let node = TestNode::start(pool).await;
    let http = reqwest::Client::new();
    let body = event(
        EventKind::CallStatus,
        "k",
        &call_fields("CA1", "ringing"),
        None,
    )
    .to_json();
    let ts = now_unix();
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![
            ("X-Callgate-Timestamp", ts.to_string()),
            (
                "X-Callgate-Signature",
                shared::stream_token::sign_body(b"wrong key", ts, body.as_bytes()),
            ),
        ],
        vec![
            ("X-Callgate-Timestamp", (ts - 3600).to_string()),
            (
                "X-Callgate-Signature",
                shared::stream_token::sign_body(SECRET.as_bytes(), ts - 3600, body.as_bytes()),
            ),
        ],
        vec![
            ("X-Callgate-Timestamp", ts.to_string()),
            (
                "X-Callgate-Signature",
                shared::stream_token::sign_body(SECRET.as_bytes(), ts, b"another body"),
            ),
        ],
    ];
    for headers in cases {
        let mut request = http.post(node.url("/internal/events")).body(body.clone());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{headers:?}");
    }
    for path in ["/internal/routing-snapshot", "/internal/calls/CA1"] {
        assert_eq!(http.get(node.url(path)).send().await.unwrap().status(), 401);
    }
    assert_eq!(
        signed_get(&node, "/internal/calls/CA_unknown")
            .await
            .status(),
        404
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn routing_snapshot_lists_numbers_caller_lists_and_live_nodes(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Receptionist).await;
    sqlx::query("INSERT INTO contacts (tenant_id, number, kind) VALUES ($1, '+14155550666', 'block'), ($1, '+14155550777', 'allow')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    let disabled: Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (name, disabled_at) VALUES ('Gone', now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO phone_numbers (tenant_id, e164) VALUES ($1, '+14155550999')")
        .bind(disabled)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO voice_nodes (id, region, public_url, last_heartbeat_at)
         VALUES ('stale-node', 'lhr', 'https://old.example', now() - interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let node = TestNode::start(pool.clone()).await;
    voice_node::registry::heartbeat(
        &pool,
        &voice_node::registry::node_row(
            &node.state.config,
            &node.state.metrics,
            &node.state.drain,
            Utc::now(),
        ),
    )
    .await
    .unwrap();

    let response = signed_get(&node, "/internal/routing-snapshot").await;
    assert_eq!(response.status(), 200);
    let snapshot = RoutingSnapshot::from_json(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        snapshot.numbers.len(),
        1,
        "disabled tenants' numbers are left out"
    );
    let route = &snapshot.numbers[0];
    assert_eq!(
        (route.e164.as_str(), route.mode, route.tenant_id.clone()),
        ("+14155550100", CallMode::Receptionist, tenant.to_string())
    );
    assert_eq!(route.owner_phone.as_deref(), Some("+14155550199"));
    assert_eq!(snapshot.tenants.len(), 1);
    assert_eq!(snapshot.tenants[0].blocked_callers, ["+14155550666"]);
    assert_eq!(snapshot.tenants[0].allowed_callers, ["+14155550777"]);
    assert_eq!(
        snapshot.nodes.len(),
        1,
        "stale nodes are left out: {:?}",
        snapshot.nodes
    );
    let me = &snapshot.nodes[0];
    assert_eq!(
        (me.id.as_str(), me.region.as_str(), me.draining),
        (NODE, "iad", false)
    );
    assert_eq!(me.public_url, format!("http://{}", node.addr));
    assert!(me.lat > 30.0 && me.lon < -70.0, "iad's coordinates: {me:?}");
    assert!(me.last_heartbeat + 5 >= now_unix());
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn call_report_shows_the_transcript_the_simulator_prints(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let node = TestNode::start(pool.clone()).await;
    let mut call = TwilioCall::start(node.addr, tenant, "CA_report").await;
    call.hear_utterance().await;
    call.speak(30).await;
    call.hear_utterance().await;
    call.stop().await;
    call.recv().await;
    let response = signed_get(&node, "/internal/calls/CA_report").await;
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["call_sid"], "CA_report");
    assert_eq!(report["mode"], "screening");
    assert_eq!(report["outcome"], "message_taken");
    assert_eq!(report["screening"], serde_json::Value::Null);
    let transcript = report["transcript"].as_array().unwrap();
    let speakers: Vec<&str> = transcript
        .iter()
        .map(|t| t["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(speakers, ["agent", "caller", "agent"]);
    let latencies = report["turn_latency_ms"].as_array().unwrap();
    assert_eq!(latencies.len(), 1, "{report}");
    // The VAD's 600 ms stop hangover is part of the reply latency.
    let latency = latencies[0].as_u64().unwrap();
    assert!((550..1500).contains(&latency), "{latency}");
    assert_eq!(report["errors"], serde_json::json!([]));
}
