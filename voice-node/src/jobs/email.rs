//! E-mail over SMTP (`SMTP_URL`, lettre on tokio + rustls), sent exactly once in effect through
//! the same `outbound_deliveries` claim as SMS ([`super::sms_send`]).
//!
//! `SMTP_URL` follows lettre: `smtp://user:pass@host:587?tls=required` (STARTTLS),
//! `smtps://host:465` (TLS from the start), `smtp://127.0.0.1:2525` (plain, local relays and
//! tests). Without it, deliveries are recorded as `undeliverable` (kept so they can be sent later)
//! and the job succeeds: a missing mail server is a configuration state, not an error to retry.

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use super::{JobContext, JobError};

/// An SMTP connection pool and the sender address.
#[derive(Clone)]
pub struct Mailer {
    /// lettre's pooled async transport.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `SMTP_FROM`.
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the SMTP credentials.
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `smtp_url`, sending as `from`.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("SMTP_URL: {e}"))?
            .build();
        let from = from.parse().map_err(|e| format!("SMTP_FROM: {e}"))?;
        Ok(Mailer { transport, from })
    }
}

/// An e-mail to deliver once.
#[derive(Debug, Clone)]
pub struct OutboundEmail {
    /// Whose mail.
    pub tenant_id: Uuid,
    /// The address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Claimed in `outbound_deliveries`.
    pub idempotency_key: String,
}

/// What [`deliver_email`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailDelivery {
    /// The server accepted it; its Message-ID.
    Sent(String),
    /// Sent before under the same key.
    AlreadySent,
    /// No `SMTP_URL`: recorded as undeliverable.
    Undeliverable,
}

/// Sends `mail` unless its key was delivered before (row lock held around the SMTP exchange, as
/// for SMS).
pub async fn deliver_email(
    ctx: &JobContext,
    mail: &OutboundEmail,
    job_id: Option<Uuid>,
) -> Result<EmailDelivery, JobError> {
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "INSERT INTO outbound_deliveries (tenant_id, channel, idempotency_key, recipient, job_id)
         VALUES ($1, 'email', $2, $3, $4)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(mail.tenant_id)
    .bind(&mail.idempotency_key)
    .bind(&mail.to)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    let status: String = sqlx::query_scalar(
        "SELECT status FROM outbound_deliveries WHERE idempotency_key = $1 FOR UPDATE",
    )
    .bind(&mail.idempotency_key)
    .fetch_one(&mut *tx)
    .await?;
    if status == "sent" {
        tx.commit().await?;
        return Ok(EmailDelivery::AlreadySent);
    }
    let Some(mailer) = &ctx.mailer else {
        sqlx::query(
            "UPDATE outbound_deliveries SET status = 'undeliverable', last_error = 'SMTP_URL not set'
             WHERE idempotency_key = $1",
        )
        .bind(&mail.idempotency_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(EmailDelivery::Undeliverable);
    };
    let to = mail
        .to
        .parse()
        .map_err(|e| JobError::Permanent(format!("bad recipient address: {e}")))?;
    let message = Message::builder()
        .from(mailer.from.clone())
        .to(to)
        .subject(&mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .message_id(None)
        .body(mail.body.clone())
        .map_err(|e| JobError::Permanent(format!("building the e-mail: {e}")))?;
    let message_id = message
        .headers()
        .get_raw("Message-ID")
        .unwrap_or_default()
        .to_owned();
    match mailer.transport.send(message).await {
        Ok(_) => {
            sqlx::query(
                "UPDATE outbound_deliveries SET status = 'sent', provider_id = $2, sent_at = $3,
                        attempts = attempts + 1, last_error = NULL
                 WHERE idempotency_key = $1",
            )
            .bind(&mail.idempotency_key)
            .bind(&message_id)
            .bind(ctx.clock.now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(EmailDelivery::Sent(message_id))
        }
        Err(err) => {
            // 5xx SMTP replies are permanent; connection trouble and 4xx are worth a retry.
            let permanent = err.is_permanent();
            sqlx::query(
                "UPDATE outbound_deliveries SET attempts = attempts + 1, last_error = $2,
                        status = CASE WHEN $3 THEN 'failed' ELSE status END
                 WHERE idempotency_key = $1",
            )
            .bind(&mail.idempotency_key)
            .bind(err.to_string())
            .bind(permanent)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let error = format!("SMTP: {err}");
            Err(if permanent {
                JobError::Permanent(error)
            } else {
                JobError::Retry(error)
            })
        }
    }
}
