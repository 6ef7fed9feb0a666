//! The reaper against real Postgres: a node that stopped heartbeating has its calls closed, its
//! jobs released and its row removed; a live node's calls are untouched.

mod node_support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use node_support::*;
use shared::domain::CallMode;
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::jobs::queue::{self, NewJob};
use voice_node::reaper::{ReaperConfig, reap_once};

fn reaper(me: &str) -> ReaperConfig {
    ReaperConfig {
        node_id: me.to_owned(),
        dead_after: Duration::from_secs(30),
        interval: Duration::from_secs(1),
        jitter: Duration::ZERO,
    }
}

async fn node_row(pool: &PgPool, id: &str, heartbeat_age_s: i32) {
    sqlx::query(
        "INSERT INTO voice_nodes (id, region, public_url, last_heartbeat_at)
         VALUES ($1, 'iad', 'http://127.0.0.1:1', now() - make_interval(secs => $2))",
    )
    .bind(id)
    .bind(f64::from(heartbeat_age_s))
    .execute(pool)
    .await
    .unwrap();
}

/// An open, answered call on `node` that started `age_s` ago, with one caller turn `turn_age_s`
/// ago (its last activity).
async fn open_call(
    pool: &PgPool,
    tenant: Uuid,
    sid: &str,
    node: &str,
    age_s: i32,
    turn_age_s: i32,
) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode, status, node_id,
                            started_at, answered_at)
         VALUES ($1, $2, '+14155550199', '+14155550100', 'screening', 'in_progress', $3,
                 now() - make_interval(secs => $4), now() - make_interval(secs => $4))
         RETURNING id",
    )
    .bind(sid)
    .bind(tenant)
    .bind(node)
    .bind(f64::from(age_s))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at, ended_at)
         VALUES ($1, $2, 0, 'caller', 'hello?', now() - make_interval(secs => $3 + 2),
                 now() - make_interval(secs => $3))",
    )
    .bind(tenant)
    .bind(id)
    .bind(f64::from(turn_age_s))
    .execute(pool)
    .await
    .unwrap();
    id
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn dead_nodes_calls_are_closed_jobs_released_and_row_removed(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    node_row(&pool, "node-dead", 120).await;
    node_row(&pool, "node-live", 1).await;
    // The live node's name starts like the dead one's: prefix matching must not catch it.
    node_row(&pool, "node-dead2", 1).await;
    let dead_call = open_call(&pool, tenant, "CA_reap_dead", "node-dead", 300, 130).await;
    let live_call = open_call(&pool, tenant, "CA_reap_live", "node-live", 300, 5).await;
    let other_call = open_call(&pool, tenant, "CA_reap_dead2", "node-dead2", 300, 5).await;

    // A job the dead node was running, and one a live node is running.
    let lease = Duration::from_secs(60);
    let dead_job = queue::enqueue(&pool, &NewJob::new("retention", serde_json::json!({})))
        .await
        .unwrap()
        .unwrap();
    let claimed = queue::claim(&pool, "default", "node-dead#0", lease, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, dead_job);
    let live_job = queue::enqueue(
        &pool,
        &NewJob::new("retention", serde_json::json!({})).key("other"),
    )
    .await
    .unwrap()
    .unwrap();
    let claimed = queue::claim(&pool, "default", "node-dead2#1", lease, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, live_job);

    let report = reap_once(&pool, &reaper("node-live")).await.unwrap();
    assert!(report.ran);
    assert_eq!(report.dead_nodes, vec!["node-dead".to_owned()]);
    assert_eq!(report.calls.len(), 1);
    assert_eq!(report.calls[0].call_sid, "CA_reap_dead");
    assert_eq!(report.jobs_requeued, 1);

    // The dead node's call: failed, ended at its last turn (~130 s ago), not at the sweep.
    let (outcome, status, ended_at, duration): (
        Option<String>,
        String,
        Option<DateTime<Utc>>,
        Option<i32>,
    ) = sqlx::query_as("SELECT outcome, status, ended_at, duration_s FROM calls WHERE id = $1")
        .bind(dead_call)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outcome.as_deref(), Some("failed"));
    assert_eq!(status, "failed");
    let ended_ago = Utc::now() - ended_at.expect("ended_at set");
    assert!(
        (125..=140).contains(&ended_ago.num_seconds()),
        "ended_at should be the last activity, {}s ago",
        ended_ago.num_seconds()
    );
    let duration = duration.expect("duration set");
    assert!((165..=175).contains(&duration), "duration {duration}");
    let event: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM call_events WHERE call_id = $1 AND kind = 'reaped'",
    )
    .bind(dead_call)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(event["node"], "node-dead");
    assert_eq!(event["reaped_by"], "node-live");

    // Live nodes' calls are untouched.
    for call in [live_call, other_call] {
        let (ended, outcome): (Option<DateTime<Utc>>, Option<String>) =
            sqlx::query_as("SELECT ended_at, outcome FROM calls WHERE id = $1")
                .bind(call)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((ended, outcome), (None, None));
    }

    // The dead node's row is gone, the live ones stay.
    let nodes: Vec<String> = sqlx::query_scalar("SELECT id FROM voice_nodes ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(nodes, vec!["node-dead2".to_owned(), "node-live".to_owned()]);

    // The released job is claimable now, long before its 60 s lease would have expired; the
    // live node's job stays with it.
    let next = queue::claim(&pool, "default", "node-live#0", lease, Utc::now())
        .await
        .unwrap()
        .expect("the dead node's job is runnable again");
    assert_eq!(next.id, dead_job);
    assert_eq!(next.attempts, 2);
    assert!(
        queue::claim(&pool, "default", "node-live#1", lease, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "the live node's running job must not be handed out"
    );

    // A second sweep finds nothing more.
    let again = reap_once(&pool, &reaper("node-live")).await.unwrap();
    assert!(again.ran);
    assert!(again.dead_nodes.is_empty() && again.calls.is_empty());
    let reaped_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM call_events WHERE kind = 'reaped'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(reaped_events, 1);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_job_out_of_attempts_is_dead_not_requeued(pool: PgPool) {
    node_row(&pool, "node-dead", 120).await;
    let mut job = NewJob::new("retention", serde_json::json!({}));
    job.max_attempts = Some(1);
    let id = queue::enqueue(&pool, &job).await.unwrap().unwrap();
    queue::claim(
        &pool,
        "default",
        "node-dead#0",
        Duration::from_secs(60),
        Utc::now(),
    )
    .await
    .unwrap()
    .unwrap();
    let report = reap_once(&pool, &reaper("node-live")).await.unwrap();
    assert_eq!((report.jobs_requeued, report.jobs_dead), (0, 1));
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(error.unwrap().contains("node-dead"));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn only_one_sweep_runs_at_a_time(pool: PgPool) {
    node_row(&pool, "node-dead", 120).await;
    // Another node's sweep holds the lock in its open transaction.
    let mut other = pool.begin().await.unwrap();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(voice_node::reaper::REAPER_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(got);
    let report = reap_once(&pool, &reaper("node-live")).await.unwrap();
    assert!(!report.ran, "the lock was held: this sweep must skip");
    other.rollback().await.unwrap();
    let report = reap_once(&pool, &reaper("node-live")).await.unwrap();
    assert_eq!(report.dead_nodes, vec!["node-dead".to_owned()]);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_node_never_reaps_itself_and_a_recent_heartbeat_is_alive(pool: PgPool) {
    node_row(&pool, "node-me", 120).await;
    node_row(&pool, "node-slow", 20).await;
    let report = reap_once(&pool, &reaper("node-me")).await.unwrap();
    assert!(report.ran);
    assert!(report.dead_nodes.is_empty(), "{report:?}");
}
