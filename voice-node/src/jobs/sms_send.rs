//! Sending an SMS exactly once in effect, and the `sms_send` job that does only that.
//!
//! [`deliver_sms`] claims the message's idempotency key in `outbound_deliveries` and holds that
//! row locked (`FOR UPDATE`) in one transaction around the Twilio request, so two workers that
//! both run the job (a lease taken over from a node that is slow rather than dead) serialize on
//! the row, and the second sees `sent` and skips. If the node dies mid-request the transaction
//! rolls back and the claim with it, and the retry sends again: the one window where a message
//! can go out twice is a crash after Twilio accepted it and before the commit (Twilio's Messages
//! API has no idempotency token to close it).

use serde::Deserialize;
use uuid::Uuid;

use super::{Job, JobContext, JobError};
use crate::config::mask_phone;
use crate::twilio_rest::SmsRequest;

/// The job kind.
pub const KIND: &str = "sms_send";

/// Who a message in a thread is from (`sms_messages.author`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    /// The owner, relayed.
    Owner,
    /// The AI's reply.
    Ai,
    /// callgate itself (text-back, notices to the owner).
    System,
}

impl Author {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Owner => "owner",
            Author::Ai => "ai",
            Author::System => "system",
        }
    }
}

/// An SMS to deliver once.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct OutboundSms {
    /// Whose message.
    pub tenant_id: Uuid,
    /// The thread to store it in (as an outbound message); `None` for notices to the owner.
    pub thread_id: Option<Uuid>,
    /// E.164 recipient.
    pub to: String,
    /// The tenant's number it is sent from.
    pub from: String,
    /// The text.
    pub body: String,
    /// Who wrote it.
    pub author: Author,
    /// Claimed in `outbound_deliveries`; also the stored message's key.
    pub idempotency_key: String,
}

/// What [`deliver_sms`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Twilio accepted it now.
    Sent {
        /// `SM…`.
        sid: String,
    },
    /// It had been sent before under the same key; nothing was sent.
    AlreadySent,
    /// Not sent: the thread's caller asked for no more messages.
    Suppressed,
}

/// Twilio's message status in the schema's spelling (`queued` when unknown).
fn status_column(status: Option<&str>) -> &'static str {
    match status.unwrap_or("queued") {
        "accepted" => "accepted",
        "scheduled" => "scheduled",
        "sending" => "sending",
        "sent" => "sent",
        "delivered" => "delivered",
        _ => "queued",
    }
}

/// Sends `sms` unless its key was delivered before; see the module docs.
pub async fn deliver_sms(
    ctx: &JobContext,
    sms: &OutboundSms,
    job_id: Option<Uuid>,
) -> Result<Delivery, JobError> {
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "INSERT INTO outbound_deliveries (tenant_id, channel, idempotency_key, recipient, job_id)
         VALUES ($1, 'sms', $2, $3, $4)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(sms.tenant_id)
    .bind(&sms.idempotency_key)
    .bind(&sms.to)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    let status: String = sqlx::query_scalar(
        "SELECT status FROM outbound_deliveries WHERE idempotency_key = $1 FOR UPDATE",
    )
    .bind(&sms.idempotency_key)
    .fetch_one(&mut *tx)
    .await?;
    if status == "sent" {
        tx.commit().await?;
        return Ok(Delivery::AlreadySent);
    }
    if let Some(thread) = sms.thread_id {
        let stopped: Option<bool> = sqlx::query_scalar(
            "SELECT stopped FROM sms_threads WHERE id = $1 AND caller_number = $2",
        )
        .bind(thread)
        .bind(&sms.to)
        .fetch_optional(&mut *tx)
        .await?;
        if stopped == Some(true) {
            sqlx::query(
                "UPDATE outbound_deliveries SET status = 'failed', last_error = 'recipient opted out'
                 WHERE idempotency_key = $1",
            )
            .bind(&sms.idempotency_key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Delivery::Suppressed);
        }
    }
    let Some(twilio) = &ctx.twilio else {
        sqlx::query(
            "UPDATE outbound_deliveries SET status = 'undeliverable',
                    last_error = 'TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN not set'
             WHERE idempotency_key = $1",
        )
        .bind(&sms.idempotency_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Err(JobError::Permanent(
            "no Twilio account configured: SMS undeliverable".into(),
        ));
    };
    let request = SmsRequest {
        to: sms.to.clone(),
        from: sms.from.clone(),
        body: sms.body.clone(),
        status_callback: None,
    };
    match twilio.send_sms(&request).await {
        Ok(sent) => {
            let now = ctx.clock.now();
            sqlx::query(
                "UPDATE outbound_deliveries SET status = 'sent', provider_id = $2, sent_at = $3,
                        attempts = attempts + 1, last_error = NULL
                 WHERE idempotency_key = $1",
            )
            .bind(&sms.idempotency_key)
            .bind(&sent.sid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(thread) = sms.thread_id {
                sqlx::query(
                    "INSERT INTO sms_messages (tenant_id, thread_id, message_sid, direction, author,
                                               body, status, idempotency_key, created_at, sent_at)
                     VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, $8, $8)
                     ON CONFLICT DO NOTHING",
                )
                .bind(sms.tenant_id)
                .bind(thread)
                .bind(&sent.sid)
                .bind(sms.author.as_str())
                .bind(&sms.body)
                .bind(status_column(sent.status.as_deref()))
                .bind(&sms.idempotency_key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sms_threads SET last_message_at = GREATEST(last_message_at, $2) WHERE id = $1",
                )
                .bind(thread)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            tracing::info!(to = %mask_phone(&sms.to), author = sms.author.as_str(), sid = %sent.sid, "SMS sent");
            Ok(Delivery::Sent { sid: sent.sid })
        }
        Err(err) => {
            let permanent = !err.is_retryable();
            sqlx::query(
                "UPDATE outbound_deliveries SET attempts = attempts + 1, last_error = $2,
                        status = CASE WHEN $3 THEN 'failed' ELSE status END
                 WHERE idempotency_key = $1",
            )
            .bind(&sms.idempotency_key)
            .bind(err.to_string())
            .bind(permanent)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Err(err.into())
        }
    }
}

/// The `sms_send` job: its payload is an [`OutboundSms`].
pub async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let sms: OutboundSms = serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::Permanent(format!("sms_send payload: {e}")))?;
    deliver_sms(ctx, &sms, Some(job.id)).await.map(drop)
}

/// Queues `sms` as an `sms_send` job (inside the caller's transaction), keyed on its delivery key,
/// due at `run_at` (`None`: the database's now).
pub async fn enqueue<'e>(
    db: impl sqlx::PgExecutor<'e>,
    sms: &OutboundSms,
    run_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let mut job = super::NewJob::new(KIND, serde_json::to_value(sms).unwrap_or_default())
        .tenant(sms.tenant_id)
        .key(format!("{KIND}:{}", sms.idempotency_key));
    job.run_at = run_at;
    super::queue::enqueue(db, &job).await
}
