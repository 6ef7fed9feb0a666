//! The job queue against real Postgres and a fake Twilio: SKIP LOCKED claims, leases taken over
//! from a crashed worker, retries with backoff, permanent failures, exactly-once SMS.
//!
//! Time is the queue's manual [`Clock`], moved by hand: retries and leases are tested in
//! milliseconds of real time.

mod twilio_fake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use twilio_fake::{Failure, TwilioFake};
use uuid::Uuid;
use voice_node::jobs::queue::{self, Outcome};
use voice_node::jobs::sms_send::{self, Author, OutboundSms};
use voice_node::jobs::worker::{self, JobWorkers, WorkerConfig};
use voice_node::jobs::{Clock, JobContext, NewJob};
use voice_node::sms::KeywordResponder;

const CALLER: &str = "+14155550123";
const NUMBER: &str = "+14155550100";

async fn tenant(pool: &PgPool) -> Uuid {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Acme Dental') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, $2, 'forward')")
        .bind(tenant)
        .bind(NUMBER)
        .execute(pool)
        .await
        .unwrap();
    tenant
}

/// A clock a few seconds ahead of the database's `now()`, so jobs enqueued with the default
/// `run_at` are due even on a slow, busy machine.
fn clock() -> Clock {
    Clock::manual(Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(5))
}

fn ctx(pool: &PgPool, fake: &TwilioFake, clock: &Clock) -> JobContext {
    JobContext {
        pool: pool.clone(),
        twilio: Some(fake.client()),
        responder: Arc::new(KeywordResponder),
        mailer: None,
        clock: clock.clone(),
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(10),
        ..WorkerConfig::for_node("node-a", 2)
    }
}

fn sms(tenant: Uuid, body: &str, key: &str) -> OutboundSms {
    OutboundSms {
        tenant_id: tenant,
        thread_id: None,
        to: CALLER.into(),
        from: NUMBER.into(),
        body: body.into(),
        author: Author::System,
        idempotency_key: key.into(),
    }
}

async fn job_row(pool: &PgPool, key: &str) -> (String, i32, Option<String>, DateTime<Utc>) {
    sqlx::query_as(
        "SELECT status, attempts, last_error, run_at FROM jobs WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn two_workers_never_run_one_job_twice(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let tenant = tenant(&pool).await;
    for i in 0..20 {
        sms_send::enqueue(
            &pool,
            &sms(tenant, &format!("message {i}"), &format!("k{i}")),
            None,
        )
        .await
        .unwrap();
    }
    let config = config();
    let (a, b) = tokio::join!(
        worker::run_due(&ctx, &config, "node-a#0"),
        worker::run_due(&ctx, &config, "node-b#0"),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 20);
    let sent = fake.sms_to(CALLER).await;
    assert_eq!(sent.len(), 20);
    let mut bodies: Vec<&str> = sent.iter().map(|r| r.form["Body"].as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), 20, "each job sent once");
    let (succeeded, max_attempts): (i64, i32) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), max(attempts) FROM jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((succeeded, max_attempts), (20, 1));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_job_held_by_a_crashed_worker_is_finished_by_another_and_sent_once(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let config = config();
    let tenant = tenant(&pool).await;
    let message = sms(tenant, "Sorry we missed your call", "text_back:CA1");
    sms_send::enqueue(&pool, &message, None).await.unwrap();

    // A node claims it and dies before finishing.
    let held = queue::claim(&pool, "default", "dead-node#0", config.lease, clock.now())
        .await
        .unwrap()
        .expect("claimed");
    // While the lease is fresh, nobody else takes it.
    assert_eq!(worker::run_due(&ctx, &config, "node-b#0").await.unwrap(), 0);
    clock.advance(config.lease + Duration::from_secs(1));
    assert_eq!(worker::run_due(&ctx, &config, "node-b#0").await.unwrap(), 1);
    assert_eq!(fake.sms_to(CALLER).await.len(), 1);
    let (status, attempts, _, _) = job_row(&pool, "sms_send:text_back:CA1").await;
    assert_eq!((status.as_str(), attempts), ("succeeded", 2));

    // The dead node's late report is dropped; the same delivery key never sends again.
    assert!(
        !queue::finish(
            &pool,
            &held,
            "dead-node#0",
            &Outcome::Succeeded,
            clock.now()
        )
        .await
        .unwrap()
    );
    let again = NewJob::new(sms_send::KIND, serde_json::to_value(&message).unwrap())
        .tenant(tenant)
        .key("a second job, same delivery");
    queue::enqueue(&pool, &again).await.unwrap();
    assert_eq!(worker::run_due(&ctx, &config, "node-c#0").await.unwrap(), 1);
    assert_eq!(fake.sms_to(CALLER).await.len(), 1, "sent once in effect");
    let (status, provider): (String, Option<String>) = sqlx::query_as(
        "SELECT status, provider_id FROM outbound_deliveries WHERE idempotency_key = 'text_back:CA1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "sent");
    assert!(provider.unwrap().starts_with("SM"));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn retryable_failures_back_off_then_succeed(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let config = config();
    let tenant = tenant(&pool).await;
    sms_send::enqueue(&pool, &sms(tenant, "hello", "retry-me"), None)
        .await
        .unwrap();
    fake.fail_next(2, Failure::Unavailable).await;

    assert_eq!(worker::run_due(&ctx, &config, "w").await.unwrap(), 1);
    let (status, attempts, error, run_at) = job_row(&pool, "sms_send:retry-me").await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert!(error.unwrap().contains("20503"));
    // First backoff: 1–2 s with jitter.
    let wait = run_at - clock.now();
    assert!(
        wait >= chrono::Duration::milliseconds(1000) && wait <= chrono::Duration::seconds(2),
        "{wait:?}"
    );
    assert_eq!(
        worker::run_due(&ctx, &config, "w").await.unwrap(),
        0,
        "not due yet"
    );

    clock.advance(Duration::from_secs(2));
    assert_eq!(worker::run_due(&ctx, &config, "w").await.unwrap(), 1);
    let (status, attempts, _, run_at) = job_row(&pool, "sms_send:retry-me").await;
    assert_eq!((status.as_str(), attempts), ("queued", 2));
    // Second backoff: 2–4 s.
    assert!(run_at - clock.now() >= chrono::Duration::seconds(2));

    clock.advance(Duration::from_secs(4));
    assert_eq!(worker::run_due(&ctx, &config, "w").await.unwrap(), 1);
    let (status, attempts, _, _) = job_row(&pool, "sms_send:retry-me").await;
    assert_eq!((status.as_str(), attempts), ("succeeded", 3));
    assert_eq!(
        fake.sms_to(CALLER).await.len(),
        3,
        "two refused, one accepted"
    );
    let (status, attempts): (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM outbound_deliveries WHERE idempotency_key = 'retry-me'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("sent", 3));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_permanent_twilio_error_fails_the_job_with_the_error_recorded(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let tenant = tenant(&pool).await;
    sms_send::enqueue(&pool, &sms(tenant, "hello", "bad-to"), None)
        .await
        .unwrap();
    fake.fail_next(1, Failure::InvalidTo).await;
    assert_eq!(worker::run_due(&ctx, &config(), "w").await.unwrap(), 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        worker::run_due(&ctx, &config(), "w").await.unwrap(),
        0,
        "never retried"
    );
    let (status, attempts, error, _) = job_row(&pool, "sms_send:bad-to").await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    let error = error.unwrap();
    assert!(
        error.contains("21211") && error.contains("not a valid phone number"),
        "{error}"
    );
    let delivery: String = sqlx::query_scalar(
        "SELECT status FROM outbound_deliveries WHERE idempotency_key = 'bad-to'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(delivery, "failed");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_job_out_of_attempts_is_dead_with_its_last_error(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let tenant = tenant(&pool).await;
    let mut job = NewJob::new(
        sms_send::KIND,
        serde_json::to_value(sms(tenant, "hello", "doomed")).unwrap(),
    )
    .key("doomed");
    job.max_attempts = Some(2);
    queue::enqueue(&pool, &job).await.unwrap();
    fake.fail_next(10, Failure::Unavailable).await;
    for _ in 0..5 {
        worker::run_due(&ctx, &config(), "w").await.unwrap();
        clock.advance(Duration::from_secs(600));
    }
    let (status, attempts, error, _) = job_row(&pool, "doomed").await;
    assert_eq!((status.as_str(), attempts), ("dead", 2));
    assert!(error.unwrap().contains("503"));
    assert_eq!(fake.sms_to(CALLER).await.len(), 2);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn node_workers_run_jobs_and_stop_on_request(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let ctx = JobContext {
        clock: Clock::system(),
        ..ctx(&pool, &fake, &clock())
    };
    let tenant = tenant(&pool).await;
    let workers = JobWorkers::start(ctx, config());
    sms_send::enqueue(&pool, &sms(tenant, "hello", "bg"), None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ..) = job_row(&pool, "sms_send:bg").await;
        if status == "succeeded" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not run: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(2), workers.stop(Duration::from_secs(1)))
        .await
        .expect("workers stop promptly");
    assert_eq!(fake.sms_to(CALLER).await.len(), 1);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_job_whose_last_attempt_lost_its_worker_is_dead_not_retried_forever(pool: PgPool) {
    let fake = TwilioFake::start().await;
    let clock = clock();
    let ctx = ctx(&pool, &fake, &clock);
    let config = config();
    let tenant = tenant(&pool).await;
    let mut job = NewJob::new(
        sms_send::KIND,
        serde_json::to_value(sms(tenant, "hello", "poison")).unwrap(),
    )
    .key("poison");
    job.max_attempts = Some(1);
    queue::enqueue(&pool, &job).await.unwrap();
    queue::claim(&pool, "default", "dead-node#0", config.lease, clock.now())
        .await
        .unwrap()
        .expect("claimed");
    clock.advance(config.lease + Duration::from_secs(1));
    assert_eq!(worker::run_due(&ctx, &config, "node-b#0").await.unwrap(), 0);
    let (status, attempts, error, _) = job_row(&pool, "poison").await;
    assert_eq!((status.as_str(), attempts), ("dead", 1));
    assert!(error.unwrap().contains("lease expired"));
    assert!(fake.requests().await.is_empty());
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_slow_job_keeps_its_lease_and_is_not_taken_over(pool: PgPool) {
    let fake = TwilioFake::start().await;
    fake.delay(1200);
    let ctx = JobContext {
        clock: Clock::system(),
        ..ctx(&pool, &fake, &clock())
    };
    let config = WorkerConfig {
        lease: Duration::from_millis(300),
        ..config()
    };
    let tenant = tenant(&pool).await;
    sms_send::enqueue(&pool, &sms(tenant, "hello", "slow"), None)
        .await
        .unwrap();
    // Two nodes' workers poll every 10 ms while the first one's Twilio request takes 1.2 s,
    // four times the lease: renewals every lease/3 keep the job with its worker.
    let workers = JobWorkers::start(ctx, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ..) = job_row(&pool, "sms_send:slow").await;
        if status == "succeeded" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not run: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.stop(Duration::from_secs(3)).await;
    let (_, attempts, ..) = job_row(&pool, "sms_send:slow").await;
    assert_eq!(attempts, 1, "never taken over");
    assert_eq!(fake.requests().await.len(), 1);
}
