//! The daily `retention` job: deletes what is older than each tenant's `retention_days` — calls
//! (with their events, transcripts and screening results, by cascade), SMS threads whose last
//! message is that old (with their messages) and single old messages of live threads, and
//! recordings (the media at Twilio first, then the row is marked deleted; without a Twilio account they
//! wait). Leads survive: their
//! links to the deleted call or thread become NULL (schema). Finished jobs older than 30 days go
//! too.
//!
//! One job per day, keyed `retention:YYYY-MM-DD`; each run schedules the next day's, and
//! [`ensure_scheduled`] (called when a node starts its workers) schedules today's, so any number
//! of nodes yield one run a day.

use chrono::{DateTime, Days, Utc};
use serde_json::json;
use sqlx::Row;

use super::{Job, JobContext, JobError, NewJob, queue};

/// The job kind.
pub const KIND: &str = "retention";

fn job_for(day: DateTime<Utc>) -> NewJob {
    NewJob::new(KIND, json!({}))
        .key(format!("{KIND}:{}", day.format("%Y-%m-%d")))
        .run_at(day)
}

/// Makes sure today's run exists (a no-op when some node already added it).
pub async fn ensure_scheduled(ctx: &JobContext) -> Result<(), sqlx::Error> {
    queue::enqueue(&ctx.pool, &job_for(ctx.clock.now()))
        .await
        .map(drop)
}

/// What a run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Calls.
    pub calls: u64,
    /// SMS threads.
    pub threads: u64,
    /// SMS messages of threads that stay.
    pub messages: u64,
    /// Recordings (at Twilio and marked in the table).
    pub recordings: u64,
}

/// Deletes everything past its tenant's retention, as of `now`.
pub async fn sweep(ctx: &JobContext, now: DateTime<Utc>) -> Result<Deleted, JobError> {
    let mut deleted = Deleted::default();
    // Recordings first: their rows outlive the call (SET NULL) so the media can still be found.
    let recordings = sqlx::query(
        "SELECT r.id, r.recording_sid FROM recordings r JOIN tenants t ON t.id = r.tenant_id
         WHERE r.deleted_at IS NULL AND r.created_at < $1 - make_interval(days => t.retention_days)
         LIMIT 1000",
    )
    .bind(now)
    .fetch_all(&ctx.pool)
    .await?;
    let Some(twilio) = ctx.twilio.as_ref().filter(|_| !recordings.is_empty()) else {
        if !recordings.is_empty() {
            // Kept (not marked deleted) so a node with credentials deletes them later.
            tracing::warn!(
                count = recordings.len(),
                "old recordings not deleted: no Twilio account configured"
            );
        }
        return sweep_rows(ctx, now, deleted).await;
    };
    for row in recordings {
        let sid: String = row.get("recording_sid");
        twilio.delete_recording(&sid).await?;
        sqlx::query("UPDATE recordings SET deleted_at = $2, url = NULL WHERE id = $1")
            .bind(row.get::<uuid::Uuid, _>("id"))
            .bind(now)
            .execute(&ctx.pool)
            .await?;
        deleted.recordings += 1;
    }
    sweep_rows(ctx, now, deleted).await
}

/// The database part of [`sweep`].
async fn sweep_rows(
    ctx: &JobContext,
    now: DateTime<Utc>,
    mut deleted: Deleted,
) -> Result<Deleted, JobError> {
    deleted.calls = sqlx::query(
        "DELETE FROM calls c USING tenants t
         WHERE t.id = c.tenant_id AND c.started_at < $1 - make_interval(days => t.retention_days)",
    )
    .bind(now)
    .execute(&ctx.pool)
    .await?
    .rows_affected();
    deleted.threads = sqlx::query(
        "DELETE FROM sms_threads s USING tenants t
         WHERE t.id = s.tenant_id AND s.last_message_at < $1 - make_interval(days => t.retention_days)",
    )
    .bind(now)
    .execute(&ctx.pool)
    .await?
    .rows_affected();
    deleted.messages = sqlx::query(
        "DELETE FROM sms_messages m USING tenants t
         WHERE t.id = m.tenant_id AND m.created_at < $1 - make_interval(days => t.retention_days)",
    )
    .bind(now)
    .execute(&ctx.pool)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'dead')
         AND finished_at < $1 - interval '30 days'",
    )
    .bind(now)
    .execute(&ctx.pool)
    .await?;
    Ok(deleted)
}

/// Runs the job; see the module docs.
pub async fn run(ctx: &JobContext, _job: &Job) -> Result<(), JobError> {
    let now = ctx.clock.now();
    let deleted = sweep(ctx, now).await?;
    tracing::info!(
        calls = deleted.calls,
        threads = deleted.threads,
        messages = deleted.messages,
        recordings = deleted.recordings,
        "retention sweep done"
    );
    if let Some(tomorrow) = now.checked_add_days(Days::new(1)) {
        queue::enqueue(&ctx.pool, &job_for(tomorrow)).await?;
    }
    Ok(())
}
