//! The reaper: closes what a dead node left open.
//!
//! A node killed without a drain (SIGKILL, OOM, a lost machine) never writes `ended_at` for its
//! live calls, and its heartbeat row keeps saying it exists. Every node therefore runs this
//! sweep every few heartbeats, with jitter so the nodes do not all wake together. One sweep at a
//! time holds a transaction-scoped advisory lock ([`REAPER_LOCK`]); the others skip that round.
//!
//! A node is dead when its heartbeat is older than the reap threshold (well past the snapshot's
//! staleness limit, so a node that merely missed a beat or two is left alone). For each dead node
//! the sweep, in one transaction:
//! - closes its open calls: outcome `failed`, a non-final Twilio status becomes `failed`,
//!   `ended_at` = the call's last recorded activity (not the time of the sweep), and a
//!   `call_events` row `reaped` naming the dead node and the reaping node;
//! - hands its running jobs back to the queue at once instead of waiting for their lease to
//!   expire (a job out of attempts becomes `dead`, as a lease expiry would make it). Outbound
//!   SMS and mail stay at most once per key through `outbound_deliveries`;
//! - deletes its `voice_nodes` row, so no snapshot routes to it again. A node that was only cut
//!   off and comes back simply writes its row again with its next heartbeat.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

/// The advisory lock key one sweep holds (`pg_try_advisory_xact_lock`): ASCII "cgreaper".
pub const REAPER_LOCK: i64 = 0x6367_7265_6170_6572;

/// A node silent for this many heartbeat intervals is declared dead. Larger than
/// [`crate::registry::STALE_HEARTBEATS`]: the edge stops routing to a node first, and only later
/// is its work taken from it.
pub const DEAD_AFTER_HEARTBEATS: u32 = 6;

/// How the sweep runs.
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    /// This node (never reaps itself: it is evidently alive).
    pub node_id: String,
    /// Heartbeat older than this → dead.
    pub dead_after: Duration,
    /// Base pause between sweeps.
    pub interval: Duration,
    /// Up to this much is added to each pause, at random, so nodes spread their sweeps.
    pub jitter: Duration,
}

impl ReaperConfig {
    /// Defaults derived from the heartbeat interval: dead after [`DEAD_AFTER_HEARTBEATS`] beats,
    /// a sweep every two beats plus up to one beat of jitter.
    pub fn for_node(node_id: &str, heartbeat: Duration) -> Self {
        ReaperConfig {
            node_id: node_id.to_owned(),
            dead_after: heartbeat * DEAD_AFTER_HEARTBEATS,
            interval: heartbeat * 2,
            jitter: heartbeat,
        }
    }
}

/// A call the sweep closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapedCall {
    /// Twilio's SID.
    pub call_sid: String,
    /// The dead node that held it.
    pub node_id: String,
    /// What `ended_at` was set to.
    pub ended_at: DateTime<Utc>,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// `false` when another node held the lock, so this sweep did nothing.
    pub ran: bool,
    /// Node rows removed.
    pub dead_nodes: Vec<String>,
    /// Calls closed.
    pub calls: Vec<ReapedCall>,
    /// Jobs put back in the queue.
    pub jobs_requeued: u64,
    /// Jobs that had no attempt left and are now `dead`.
    pub jobs_dead: u64,
}

/// One sweep: finds nodes silent for longer than `config.dead_after` and closes their calls,
/// releases their jobs and removes their rows, all in one transaction.
pub async fn reap_once(pool: &PgPool, config: &ReaperConfig) -> Result<ReapReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(REAPER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(ReapReport::default());
    }
    let mut report = ReapReport {
        ran: true,
        ..ReapReport::default()
    };
    let dead = sqlx::query(
        "SELECT id, last_heartbeat_at FROM voice_nodes
         WHERE id <> $1 AND last_heartbeat_at < now() - make_interval(secs => $2)
         ORDER BY id
         FOR UPDATE SKIP LOCKED",
    )
    .bind(&config.node_id)
    .bind(config.dead_after.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    for row in dead {
        let node: String = row.get("id");
        let heartbeat: DateTime<Utc> = row.get("last_heartbeat_at");
        // Last activity: the latest of the call's own times, its turns and its events, never
        // before it started (the table's CHECK).
        let closed = sqlx::query(
            "WITH open AS (
                 SELECT c.id, c.tenant_id,
                        GREATEST(c.started_at, c.answered_at,
                                 (SELECT max(COALESCE(t.ended_at, t.started_at))
                                  FROM transcript_turns t WHERE t.call_id = c.id),
                                 (SELECT max(e.created_at) FROM call_events e
                                  WHERE e.call_id = c.id)) AS last_activity
                 FROM calls c
                 WHERE c.node_id = $1 AND c.ended_at IS NULL
                 FOR UPDATE OF c
             ), closed AS (
                 UPDATE calls c SET
                     ended_at = o.last_activity,
                     outcome = 'failed',
                     status = CASE WHEN c.status IN ('queued', 'ringing', 'in_progress')
                                   THEN 'failed' ELSE c.status END,
                     duration_s = GREATEST(0, extract(epoch FROM o.last_activity
                                  - COALESCE(c.answered_at, c.started_at))::integer)
                 FROM open o WHERE c.id = o.id
                 RETURNING c.id, c.tenant_id, c.call_sid, c.ended_at
             ), events AS (
                 INSERT INTO call_events (tenant_id, call_id, kind, payload)
                 SELECT tenant_id, id, 'reaped',
                        jsonb_build_object('node', $1::text, 'reaped_by', $2::text,
                                           'last_heartbeat_at', $3::timestamptz)
                 FROM closed
             )
             SELECT call_sid, ended_at FROM closed ORDER BY call_sid",
        )
        .bind(&node)
        .bind(&config.node_id)
        .bind(heartbeat)
        .fetch_all(&mut *tx)
        .await?;
        report.calls.extend(closed.into_iter().map(|r| ReapedCall {
            call_sid: r.get("call_sid"),
            node_id: node.clone(),
            ended_at: r.get("ended_at"),
        }));

        // `locked_by` is `NODE#worker`; the '#' keeps node "a" from matching node "ab".
        let jobs = sqlx::query(
            "UPDATE jobs SET
                 status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END,
                 run_at = now(), locked_by = NULL, locked_at = NULL,
                 last_error = 'released by the reaper: node ' || $1::text
                              || ' stopped heartbeating while running it'
             WHERE status = 'running' AND (locked_by = $1 OR starts_with(locked_by, $1 || '#'))
             RETURNING status",
        )
        .bind(&node)
        .fetch_all(&mut *tx)
        .await?;
        for job in jobs {
            if job.get::<String, _>("status") == "dead" {
                report.jobs_dead += 1;
            } else {
                report.jobs_requeued += 1;
            }
        }

        sqlx::query("DELETE FROM voice_nodes WHERE id = $1")
            .bind(&node)
            .execute(&mut *tx)
            .await?;
        report.dead_nodes.push(node);
    }
    tx.commit().await?;
    Ok(report)
}

/// Sweeps forever (until the task is aborted), pausing `interval` + random jitter between sweeps.
pub fn spawn(pool: PgPool, config: ReaperConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(config.interval + jitter(config.jitter)).await;
            match reap_once(&pool, &config).await {
                Ok(report) => log_report(&config.node_id, &report),
                Err(err) => tracing::warn!(error = %err, "reaper sweep failed; will retry"),
            }
        }
    })
}

fn log_report(me: &str, report: &ReapReport) {
    for node in &report.dead_nodes {
        let calls = report.calls.iter().filter(|c| &c.node_id == node).count();
        tracing::warn!(
            reaper = me,
            dead_node = %node,
            calls_closed = calls,
            jobs_requeued = report.jobs_requeued,
            jobs_dead = report.jobs_dead,
            "reaped a node that stopped heartbeating"
        );
    }
}

/// A random pause in `[0, max)`; zero when the OS has no randomness to give (the sweep is still
/// correct without jitter, only less spread out).
fn jitter(max: Duration) -> Duration {
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Duration::from_millis(u64::from_le_bytes(bytes) % millis),
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) < Duration::from_millis(50));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn defaults_follow_the_heartbeat() {
        let config = ReaperConfig::for_node("n1", Duration::from_secs(5));
        assert_eq!(config.dead_after, Duration::from_secs(30));
        assert_eq!(config.interval, Duration::from_secs(10));
        assert!(config.dead_after.as_secs() > 5 * u64::from(crate::registry::STALE_HEARTBEATS));
    }
}
