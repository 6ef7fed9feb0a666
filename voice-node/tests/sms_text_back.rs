//! Missed-call text-back end to end: a signed `dial_result` (no-answer) posted to the node's
//! `/internal/events`, the node's own job workers, and a fake Twilio that must receive exactly one
//! SMS with the tenant's template, to the caller, from the called number.

mod node_support;
mod twilio_fake;

use std::time::Duration;

use node_support::*;
use shared::domain::CallMode;
use shared::form::Form;
use shared::forwarded::{EventKind, ForwardedEvent};
use sqlx::PgPool;
use twilio_fake::TwilioFake;

const CALLER: &str = "+14155550123";
const NUMBER: &str = "+14155550100";

fn dial_result(call_sid: &str, status: &str, key: &str) -> ForwardedEvent {
    ForwardedEvent::new(
        EventKind::DialResult,
        key.into(),
        now_unix(),
        &Form::from_pairs([
            ("CallSid", call_sid),
            ("AccountSid", twilio_fake::ACCOUNT_SID),
            ("From", CALLER),
            ("To", NUMBER),
            ("CallStatus", "in-progress"),
            ("Direction", "inbound"),
            ("DialCallStatus", status),
        ]),
    )
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn missed_call_texts_the_caller_back_once_within_seconds(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let base = fake.base();
    let node = TestNode::start_with(
        pool.clone(),
        &[
            ("TWILIO_ACCOUNT_SID", twilio_fake::ACCOUNT_SID),
            ("TWILIO_API_BASE", &base),
        ],
    )
    .await;
    let (tenant, _) = tenant_with_number(&pool, NUMBER, CallMode::Forward).await;
    sqlx::query("UPDATE tenants SET text_back_template = 'Sorry we missed you at {business}! Text us here.' WHERE id = $1")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    let workers = voice_node::jobs::worker::start_for_node(&pool, &node.state.config)
        .await
        .expect("JOB_WORKERS defaults to 2");

    // Twilio retries the callback; the edge may offer it twice.
    let missed = dial_result("CA_missed", "no-answer", "tok-dial-1");
    for _ in 0..3 {
        assert_eq!(node.post_event(&missed).await, 200);
    }
    let posted = tokio::time::Instant::now();
    while fake.sms_to(CALLER).await.is_empty() {
        assert!(
            posted.elapsed() < Duration::from_secs(5),
            "no text-back within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Some time for a second (wrong) send to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = fake.sms_to(CALLER).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].form["From"], NUMBER);
    assert_eq!(
        sent[0].form["Body"],
        "Sorry we missed you at Acme Dental! Text us here."
    );

    // An answered dial texts nobody.
    let answered = dial_result("CA_answered", "completed", "tok-dial-2");
    assert_eq!(node.post_event(&answered).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    workers.stop(Duration::from_secs(2)).await;
    assert_eq!(fake.requests().await.len(), 1);

    // The thread is open for the caller's replies, with the text-back in it.
    let (state, call_sid, author, sid, body): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT th.state, c.call_sid, m.author, m.message_sid, m.body
         FROM sms_threads th JOIN calls c ON c.id = th.call_id
         JOIN sms_messages m ON m.thread_id = th.id
         WHERE th.caller_number = $1",
        )
        .bind(CALLER)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (state.as_str(), call_sid.as_str(), author.as_str()),
        ("awaiting_owner", "CA_missed", "system")
    );
    assert!(sid.starts_with("SM"));
    assert!(body.contains("Acme Dental"));

    // Running the job again (a retry after a crash) sends nothing more.
    sqlx::query("UPDATE jobs SET status = 'queued' WHERE kind = 'text_back'")
        .execute(&pool)
        .await
        .unwrap();
    let ctx = voice_node::jobs::JobContext {
        pool: pool.clone(),
        twilio: Some(fake.client()),
        responder: std::sync::Arc::new(voice_node::sms::KeywordResponder),
        mailer: None,
        clock: voice_node::jobs::Clock::system(),
    };
    let config = voice_node::jobs::worker::WorkerConfig::for_node("node-b", 1);
    assert_eq!(
        voice_node::jobs::worker::run_due(&ctx, &config, "node-b#0")
            .await
            .unwrap(),
        1
    );
    assert_eq!(fake.sms_to(CALLER).await.len(), 1);
}
