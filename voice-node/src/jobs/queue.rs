//! The `jobs` table as a queue: enqueue, claim, lease, finish, retry.
//!
//! Hand-written over the existing table rather than a crate (apalis-postgres, graphile_worker,
//! underway): each of those brings its own schema and migrations, while `jobs` is already part of
//! the shared schema (tenant scoping, idempotency keys, the dashboard can read it). The whole
//! queue is five SQL statements.
//!
//! - **Claim**: `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`, so any number of workers on
//!   any number of nodes take distinct jobs without a coordinator.
//! - **Lease**: a claimed job is `running` with `locked_by` and `locked_at`. The worker renews
//!   `locked_at` while the job runs; a job whose lease is older than the lease timeout (its node
//!   died) is claimed again by whoever polls next, or is `dead` when that was its last attempt.
//!   Finishing checks the lease holder, so a worker that lost its lease cannot overwrite the new
//!   holder's outcome.
//! - **Retries**: a retryable failure puts the job back with `run_at = now + backoff(attempts)`
//!   (exponential with jitter); after `max_attempts` it is `dead`. A permanent failure (e.g. a
//!   Twilio 4xx) is `failed` at once. Both keep `last_error`.
//!
//! All times that decide when a job runs come from a [`Clock`] rather than Postgres' `now()`:
//! `run_at` of a delayed job (the caller computes it from the event's time or the clock), the claim's
//! `run_at <= $now`, lease expiry and the retry's `now + backoff`. The one exception is a job
//! enqueued without `run_at` ("due at once"), which takes the database's `now()`; any clock at or
//! after the moment it was written sees it as due. Production uses [`Clock::system`]; tests move
//! time by hand ([`Clock::manual`]) or with tokio's paused clock ([`Clock::tokio`]), so a 60 s
//! delay passes in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

/// The queue's notion of now: the wall clock, or a test clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Where now comes from; the system clock unless a test chose otherwise.
    source: Source,
}

/// See [`Clock`]'s constructors.
#[derive(Debug, Clone, Default)]
enum Source {
    /// `Utc::now()`.
    #[default]
    System,
    /// Milliseconds since the epoch, moved by [`Clock::advance`].
    Manual(Arc<AtomicI64>),
    /// `base` plus the tokio time elapsed since `origin`.
    Tokio {
        /// The wall-clock time the clock started at.
        base: DateTime<Utc>,
        /// The tokio instant that corresponds to `base`.
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// The system clock (production).
    pub fn system() -> Self {
        Clock {
            source: Source::System,
        }
    }

    /// A clock that stands still at `start` until advanced.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Clock {
            source: Source::Manual(Arc::new(AtomicI64::new(start.timestamp_millis()))),
        }
    }

    /// A clock at `base` that moves with tokio's clock: `base + (tokio::time::Instant::now() -
    /// now at this call)`. Under `tokio::time::pause()` it moves only with `tokio::time::advance`
    /// (or the runtime's auto-advance), exactly as the timers the workers sleep on, so a test
    /// drives the queue's deadlines and its poll loop with one clock. Read it on the runtime that
    /// created it: tokio's `Instant::now()` is the current runtime's clock.
    pub fn tokio(base: DateTime<Utc>) -> Self {
        Clock {
            source: Source::Tokio {
                base,
                origin: tokio::time::Instant::now(),
            },
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.source {
            Source::System => Utc::now(),
            Source::Manual(ms) => {
                DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
            Source::Tokio { base, origin } => {
                let elapsed =
                    chrono::Duration::from_std(origin.elapsed()).unwrap_or(chrono::Duration::MAX);
                base.checked_add_signed(elapsed)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }

    /// Moves a manual clock forward (no effect on the system or tokio clocks: those move by
    /// themselves, or with `tokio::time::advance`).
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(ms) = &self.source {
            ms.fetch_add(
                i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
                Ordering::SeqCst,
            );
        }
    }
}

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The handler that runs it (`text_back`, `sms_send`, …).
    pub kind: String,
    /// The tenant it works for; `None` for system jobs.
    pub tenant_id: Option<Uuid>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Not before this time; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    /// One job per key, however often it is enqueued.
    pub idempotency_key: Option<String>,
    /// Attempts before the job is `dead`; `None` = the table's default (5).
    pub max_attempts: Option<i32>,
}

impl NewJob {
    /// A job of `kind` with `payload`, runnable now.
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.to_owned(),
            tenant_id: None,
            payload,
            run_at: None,
            idempotency_key: None,
            max_attempts: None,
        }
    }

    /// For `tenant`.
    pub fn tenant(mut self, tenant: Uuid) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Deduplicated on `key`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Not before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// Adds `job` unless its key is already there; the new job's id, or `None` for a duplicate.
/// Takes any executor so callers can enqueue inside their own transaction.
pub async fn enqueue<'e>(
    db: impl PgExecutor<'e>,
    job: &NewJob,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, payload, run_at, idempotency_key, max_attempts)
         VALUES ($1, $2, $3, COALESCE($4, now()), $5, COALESCE($6, 5))
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(job.tenant_id)
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.run_at)
    .bind(&job.idempotency_key)
    .bind(job.max_attempts)
    .fetch_optional(db)
    .await
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its row.
    pub id: Uuid,
    /// Its tenant, if any.
    pub tenant_id: Option<Uuid>,
    /// Which handler.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempts: i32,
    /// The limit.
    pub max_attempts: i32,
    /// Its key, if any.
    pub idempotency_key: Option<String>,
}

/// Claims the next due job on `queue` for `worker`: a queued job whose time has come, or a running
/// one whose lease expired (its worker is gone). Counts the attempt.
pub async fn claim(
    pool: &PgPool,
    queue: &str,
    worker: &str,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Job>, sqlx::Error> {
    let stale_before = now - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    // A job whose every attempt ended with its worker gone (it may be what kills the node) is not
    // taken over forever: out of attempts, it is dead.
    sqlx::query(
        "UPDATE jobs SET status = 'dead', locked_by = NULL, locked_at = NULL, finished_at = $3,
                         last_error = 'lease expired: the worker stopped without finishing (attempt '
                                      || attempts || ' of ' || max_attempts || ')'
         WHERE queue = $1 AND status = 'running' AND locked_at < $2 AND attempts >= max_attempts",
    )
    .bind(queue)
    .bind(stale_before)
    .bind(now)
    .execute(pool)
    .await?;
    let row = sqlx::query(
        "UPDATE jobs SET status = 'running', locked_by = $2, locked_at = $3,
                         attempts = attempts + 1
         WHERE id = (
             SELECT id FROM jobs
             WHERE queue = $1
               AND ((status = 'queued' AND run_at <= $3)
                    OR (status = 'running' AND locked_at < $4 AND attempts < max_attempts))
             ORDER BY run_at
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, tenant_id, kind, payload, attempts, max_attempts, idempotency_key",
    )
    .bind(queue)
    .bind(worker)
    .bind(now)
    .bind(stale_before)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Job {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        kind: r.get("kind"),
        payload: r.get("payload"),
        attempts: r.get("attempts"),
        max_attempts: r.get("max_attempts"),
        idempotency_key: r.get("idempotency_key"),
    }))
}

/// Renews `worker`'s lease on `job`; `false` when the lease was lost (another worker took it).
pub async fn renew(
    pool: &PgPool,
    job: Uuid,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET locked_at = $3
         WHERE id = $1 AND locked_by = $2 AND status = 'running'",
    )
    .bind(job)
    .bind(worker)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// Try again at this time (unless attempts are exhausted).
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        at: DateTime<Utc>,
    },
    /// Will never succeed.
    Failed {
        /// Why.
        error: String,
    },
}

/// Records how `worker`'s run of `job` ended; `false` when the lease was no longer `worker`'s
/// (the outcome is then dropped: the new holder decides).
pub async fn finish(
    pool: &PgPool,
    job: &Job,
    worker: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let (status, error, run_at) = match outcome {
        Outcome::Succeeded => ("succeeded", None, None),
        Outcome::Retry { error, at } if job.attempts < job.max_attempts => {
            ("queued", Some(error.as_str()), Some(*at))
        }
        Outcome::Retry { error, .. } => ("dead", Some(error.as_str()), None),
        Outcome::Failed { error } => ("failed", Some(error.as_str()), None),
    };
    let done = sqlx::query(
        "UPDATE jobs SET status = $3,
                         last_error = COALESCE($4, last_error),
                         run_at = COALESCE($5, run_at),
                         locked_by = NULL, locked_at = NULL,
                         finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE $6 END
         WHERE id = $1 AND locked_by = $2 AND status = 'running'",
    )
    .bind(job.id)
    .bind(worker)
    .bind(status)
    .bind(error)
    .bind(run_at)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The wait before attempt `attempts + 1`: 2 s doubled per attempt, at most 10 min, then scaled
/// by a random factor in [0.5, 1.0] ("equal jitter") so many failed jobs do not retry in step.
pub fn backoff(attempts: i32, jitter: f64) -> Duration {
    const BASE_MS: u64 = 2_000;
    const MAX_MS: u64 = 600_000;
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let full = BASE_MS.saturating_mul(1u64 << exp).min(MAX_MS);
    let jitter = jitter.clamp(0.0, 1.0);
    // Precision loss is irrelevant at millisecond scale below 10 min.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ms = (full as f64 * (0.5 + 0.5 * jitter)) as u64;
    Duration::from_millis(ms)
}

/// A uniform random number in [0, 1) for [`backoff`]'s jitter.
pub fn random_jitter() -> f64 {
    let bits = getrandom::u64().unwrap_or(0) >> 11;
    #[allow(clippy::cast_precision_loss)]
    let unit = bits as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(40, 1.0), Duration::from_secs(600));
        for _ in 0..100 {
            let d = backoff(4, random_jitter());
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(16));
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(61));
        assert_eq!((clock.now() - start).num_seconds(), 61);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_with_paused_tokio_time() {
        let start = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let clock = Clock::tokio(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(5)); // not a manual clock: no effect
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_millis(59_500)).await;
        assert_eq!((clock.now() - start).num_milliseconds(), 59_500);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!((clock.now() - start).num_seconds(), 60);
    }
}
