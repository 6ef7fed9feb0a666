//! The retention job: per-tenant `retention_days`, leads survive, one run a day.

mod twilio_fake;

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use twilio_fake::TwilioFake;
use uuid::Uuid;
use voice_node::jobs::retention;
use voice_node::jobs::worker::{self, WorkerConfig};
use voice_node::jobs::{Clock, JobContext};

async fn tenant(pool: &PgPool, number: &str, retention_days: i32) -> (Uuid, Uuid) {
    let tenant: Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (name, retention_days) VALUES ('T', $1) RETURNING id",
    )
    .bind(retention_days)
    .fetch_one(pool)
    .await
    .unwrap();
    let number: Uuid = sqlx::query_scalar(
        "INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, $2, 'forward') RETURNING id",
    )
    .bind(tenant)
    .bind(number)
    .fetch_one(pool)
    .await
    .unwrap();
    (tenant, number)
}

/// A call, an SMS thread with one message and a lead from both, `days_ago` old.
async fn history(pool: &PgPool, tenant: Uuid, number: Uuid, sid: &str, days_ago: i32) {
    let at = Utc::now() - chrono::Duration::days(i64::from(days_ago));
    let call: Uuid = sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, number_id, from_number, to_number, mode, started_at, created_at)
         VALUES ($1, $2, $3, '+14155550123', '+14155550100', 'forward', $4, $4) RETURNING id",
    )
    .bind(sid)
    .bind(tenant)
    .bind(number)
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap();
    let thread: Uuid = sqlx::query_scalar(
        "INSERT INTO sms_threads (tenant_id, number_id, caller_number, call_id, state, last_message_at, created_at)
         VALUES ($1, $2, '+14155550123', $3, 'closed', $4, $4) RETURNING id",
    )
    .bind(tenant)
    .bind(number)
    .bind(call)
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sms_messages (tenant_id, thread_id, direction, author, body, created_at)
         VALUES ($1, $2, 'inbound', 'caller', 'hi', $3)",
    )
    .bind(tenant)
    .bind(thread)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO leads (tenant_id, name, reason, call_id, sms_thread_id) VALUES ($1, 'Ann', 'crown', $2, $3)",
    )
    .bind(tenant)
    .bind(call)
    .bind(thread)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO recordings (recording_sid, tenant_id, call_id, status, created_at)
         VALUES ($1, $2, $3, 'completed', $4)",
    )
    .bind(format!("RE{sid}"))
    .bind(tenant)
    .bind(call)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn deletes_what_is_past_each_tenants_retention_and_keeps_leads(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let (short, short_number) = tenant(&pool, "+14155550100", 7).await;
    let (long, long_number) = tenant(&pool, "+14155550200", 90).await;
    history(&pool, short, short_number, "CAold", 10).await;
    history(&pool, short, short_number, "CAnew", 2).await;
    history(&pool, long, long_number, "CAkept", 10).await;

    let ctx = JobContext {
        pool: pool.clone(),
        twilio: Some(fake.client()),
        responder: Arc::new(voice_node::sms::KeywordResponder),
        mailer: None,
        clock: Clock::manual(Utc::now() + chrono::Duration::seconds(5)),
    };
    retention::ensure_scheduled(&ctx).await.unwrap();
    retention::ensure_scheduled(&ctx).await.unwrap();
    assert_eq!(
        worker::run_due(&ctx, &WorkerConfig::for_node("n", 1), "n#0")
            .await
            .unwrap(),
        1,
        "one sweep however many nodes schedule it"
    );

    let calls: Vec<String> = sqlx::query_scalar("SELECT call_sid FROM calls ORDER BY call_sid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(calls, ["CAkept", "CAnew"]);
    assert_eq!(count(&pool, "SELECT count(*) FROM sms_threads").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM sms_messages").await, 2);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM recordings WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    let deleted: Vec<String> = fake
        .requests()
        .await
        .into_iter()
        .map(|r| r.resource)
        .collect();
    assert_eq!(deleted, ["DELETE Recordings/RECAold"]);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM leads").await,
        3,
        "leads survive"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM leads WHERE call_id IS NULL AND sms_thread_id IS NULL"
        )
        .await,
        1
    );
    // The next run is tomorrow's.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM jobs WHERE kind = 'retention' AND status = 'queued' AND run_at > now() + interval '23 hours'").await,
        1
    );
}
