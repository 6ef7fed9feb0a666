//! The `sms_takeover` job: scheduled 60 s after a caller's text (see [`crate::sms`]); if no human
//! answered meanwhile, the AI replies ([`crate::sms::SmsResponder`]) and the thread becomes
//! `ai_active`. A lead the caller gives is stored once per thread and announced
//! ([`super::lead_notify`]).

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::sms_send::{Author, OutboundSms, deliver_sms};
use super::{Job, JobContext, JobError, field};
use crate::sms::responder::{KbEntry, ResponderInput, ThreadMessage};

/// The job kind.
pub const KIND: &str = "sms_takeover";

/// Runs the job; see the module docs.
pub async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let thread_id: Uuid = field(job, "thread_id")?;
    let message_sid: String = field(job, "message_sid")?;
    let received_at: DateTime<Utc> = field(job, "received_at")?;

    let Some(thread) = sqlx::query(
        "SELECT th.tenant_id, th.caller_number, th.state, th.stopped, th.owner_replied_at,
                n.e164, t.name
         FROM sms_threads th
         JOIN phone_numbers n ON n.id = th.number_id
         JOIN tenants t ON t.id = th.tenant_id
         WHERE th.id = $1",
    )
    .bind(thread_id)
    .fetch_optional(&ctx.pool)
    .await?
    else {
        return Ok(()); // deleted (retention, tenant removed): nothing to answer
    };
    let state: String = thread.get("state");
    let owner_replied_at: Option<DateTime<Utc>> = thread.get("owner_replied_at");
    if thread.get::<bool, _>("stopped")
        || !matches!(state.as_str(), "awaiting_owner" | "ai_active")
        || owner_replied_at.is_some_and(|at| at >= received_at)
    {
        tracing::debug!(thread = %thread_id, %state, "a human has the thread: no AI reply");
        return Ok(());
    }
    // A later caller text has its own takeover job, which answers both.
    let newer: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sms_messages
                        WHERE thread_id = $1 AND author = 'caller' AND created_at > $2)",
    )
    .bind(thread_id)
    .bind(received_at)
    .fetch_one(&ctx.pool)
    .await?;
    if newer {
        return Ok(());
    }
    let tenant_id: Uuid = thread.get("tenant_id");
    let history = sqlx::query(
        // Times have second precision: within one second, the caller's text comes before the reply.
        "SELECT author, body FROM sms_messages WHERE thread_id = $1 ORDER BY created_at, direction, id",
    )
    .bind(thread_id)
    .fetch_all(&ctx.pool)
    .await?
    .into_iter()
    .map(|r| ThreadMessage {
        author: r.get("author"),
        body: r.get("body"),
    })
    .collect();
    let kb = sqlx::query(
        "SELECT question, answer FROM kb_entries WHERE tenant_id = $1 AND enabled ORDER BY created_at",
    )
    .bind(tenant_id)
    .fetch_all(&ctx.pool)
    .await?
    .into_iter()
    .map(|r| KbEntry {
        question: r.get("question"),
        answer: r.get("answer"),
    })
    .collect();
    let input = ResponderInput {
        tenant_id,
        business: thread.get("name"),
        history,
        kb,
    };
    let reply = ctx.responder.reply(&input).await.map_err(JobError::Retry)?;

    let caller: String = thread.get("caller_number");
    let mut tx = ctx.pool.begin().await?;
    // Only if no human took the thread while the reply was being written.
    let still_ours = sqlx::query(
        "UPDATE sms_threads SET state = 'ai_active', ai_takeover_at = COALESCE(ai_takeover_at, $2)
         WHERE id = $1 AND state IN ('awaiting_owner', 'ai_active') AND NOT stopped",
    )
    .bind(thread_id)
    .bind(ctx.clock.now())
    .execute(&mut *tx)
    .await?;
    if still_ours.rows_affected() == 0 {
        return Ok(());
    }
    if let Some(lead) = &reply.lead {
        let stored: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO leads (tenant_id, name, callback_number, reason, sms_thread_id)
             SELECT $1, $2, $3, $4, $5
             WHERE NOT EXISTS (SELECT 1 FROM leads WHERE sms_thread_id = $5)
             RETURNING id",
        )
        .bind(tenant_id)
        .bind(&lead.name)
        .bind(&caller)
        .bind(&lead.reason)
        .bind(thread_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(lead_id) = stored {
            super::queue::enqueue(&mut *tx, &super::lead_notify::job(tenant_id, lead_id)).await?;
        }
    }
    tx.commit().await?;
    let sms = OutboundSms {
        tenant_id,
        thread_id: Some(thread_id),
        to: caller,
        from: thread.get("e164"),
        body: reply.text,
        author: Author::Ai,
        idempotency_key: format!("ai_reply:{message_sid}"),
    };
    deliver_sms(ctx, &sms, Some(job.id)).await.map(drop)
}
