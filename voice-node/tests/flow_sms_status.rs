//! SMS delivery reports: the node's sends ask Twilio for them (`StatusCallback` =
//! `PUBLIC_WEBHOOK_BASE_URL/sms/status`), and the forwarded reports move `sms_messages.status`
//! forward only, once per status, whatever order Twilio sends them in.

mod node_support;
mod twilio_fake;

use shared::domain::CallMode;
use shared::forwarded::{EventKind, ForwardedEvent};
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::store::callbacks::{Applied, apply};
use voice_node::twilio_rest::SmsRequest;

async fn outbound_message(pool: &PgPool, sid: &str) {
    let (tenant, number) =
        node_support::tenant_with_number(pool, "+14155550100", CallMode::Forward).await;
    let thread: Uuid = sqlx::query_scalar(
        "INSERT INTO sms_threads (tenant_id, number_id, caller_number)
         VALUES ($1, $2, '+14155550123') RETURNING id",
    )
    .bind(tenant)
    .bind(number)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sms_messages (tenant_id, thread_id, message_sid, direction, author, body, status)
         VALUES ($1, $2, $3, 'outbound', 'system', 'Sorry we missed your call', 'queued')",
    )
    .bind(tenant)
    .bind(thread)
    .bind(sid)
    .execute(pool)
    .await
    .unwrap();
}

fn report(sid: &str, status: &str, key: &str) -> ForwardedEvent {
    let form = shared::form::Form::from_pairs([
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", "AC1"),
        ("From", "+14155550100"),
        ("To", "+14155550123"),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("ApiVersion", "2010-04-01"),
    ]);
    ForwardedEvent::new(EventKind::SmsStatus, key.into(), 1, &form)
}

async fn status(pool: &PgPool, sid: &str) -> (String, bool) {
    sqlx::query_as("SELECT status, sent_at IS NOT NULL FROM sms_messages WHERE message_sid = $1")
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn delivery_reports_move_the_status_forward_only_and_once(pool: PgPool) {
    outbound_message(&pool, "SMdelivery1").await;
    assert_eq!(
        apply(&pool, &report("SMdelivery1", "sent", "k1"))
            .await
            .unwrap(),
        Applied::Applied
    );
    assert_eq!(status(&pool, "SMdelivery1").await, ("sent".into(), true));
    assert_eq!(
        apply(&pool, &report("SMdelivery1", "delivered", "k2"))
            .await
            .unwrap(),
        Applied::Applied
    );
    // Twilio retries the same report, and a late `sending` arrives: nothing moves back.
    assert_eq!(
        apply(&pool, &report("SMdelivery1", "delivered", "k2"))
            .await
            .unwrap(),
        Applied::Duplicate
    );
    assert_eq!(
        apply(&pool, &report("SMdelivery1", "sending", "k0"))
            .await
            .unwrap(),
        Applied::Duplicate
    );
    assert_eq!(status(&pool, "SMdelivery1").await.0, "delivered");
    // A message this database never sent, and a status the schema does not know.
    assert_eq!(
        apply(&pool, &report("SMunknown", "delivered", "k3"))
            .await
            .unwrap(),
        Applied::Ignored("unknown message")
    );
    assert_eq!(
        apply(&pool, &report("SMdelivery1", "teleported", "k4"))
            .await
            .unwrap(),
        Applied::Ignored("unknown message status")
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_failed_delivery_is_recorded(pool: PgPool) {
    outbound_message(&pool, "SMfailed1").await;
    let mut event = report("SMfailed1", "undelivered", "k1");
    event.fields.push(("ErrorCode".into(), "30003".into()));
    assert_eq!(apply(&pool, &event).await.unwrap(), Applied::Applied);
    assert_eq!(
        status(&pool, "SMfailed1").await,
        ("undelivered".into(), false)
    );
}

#[tokio::test]
async fn the_nodes_sends_ask_twilio_for_delivery_reports() {
    let fake = twilio_fake::TwilioFake::start().await;
    let base = fake.base();
    let (_listener, addr) = node_support::bind().await;
    let config = node_support::config(
        addr,
        &[
            ("TWILIO_API_BASE", base.as_str()),
            ("TWILIO_ACCOUNT_SID", twilio_fake::ACCOUNT_SID),
            ("PUBLIC_WEBHOOK_BASE_URL", "https://edge.example/"),
        ],
    );
    let client = voice_node::twilio_rest::TwilioClient::from_config(&config).unwrap();
    client
        .send_sms(&SmsRequest {
            to: "+14155550123".into(),
            from: "+14155550100".into(),
            body: "hello".into(),
            status_callback: None,
        })
        .await
        .unwrap();
    let sent = fake.sms_to("+14155550123").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].form["StatusCallback"],
        "https://edge.example/sms/status"
    );
}
