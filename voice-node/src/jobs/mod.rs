//! Background jobs: a Postgres queue every node works, and the handlers it runs.
//!
//! - [`queue`]: the `jobs` table as a queue (SKIP LOCKED claims, leases, retries with backoff).
//! - [`worker`]: N polling tasks per node, stopped cleanly on drain.
//! - Handlers, one per `kind`: [`text_back`] (missed-call SMS), [`sms_send`] (any SMS, through
//!   the `outbound_deliveries` claim), [`sms_takeover`] (the AI answers a caller nobody answered in
//!   60 s), [`retention`] (daily deletion of old calls, messages and recordings), [`summary`]
//!   (post-call extractive summary and its e-mail over SMTP, [`email`]), [`lead_notify`] (a new
//!   lead e-mailed to the tenant's admins).
//!
//! Exactly once in effect: a job may run more than once (a retry after a timeout, a lease taken
//! over from a dead node), so every outbound side effect claims its idempotency key in
//! `outbound_deliveries` first ([`sms_send::deliver_sms`]).

pub mod email;
pub mod lead_notify;
pub mod queue;
pub mod retention;
pub mod sms_send;
pub mod sms_takeover;
pub mod summary;
pub mod text_back;
pub mod worker;

use std::sync::Arc;

use sqlx::PgPool;

use crate::sms::SmsResponder;
use crate::twilio_rest::{TwilioClient, TwilioError};
pub use queue::{Clock, Job, NewJob};

/// What handlers need.
#[derive(Clone)]
pub struct JobContext {
    /// The shared Postgres.
    pub pool: PgPool,
    /// Twilio REST; `None` when the node has no Account SID (SMS jobs then fail permanently).
    pub twilio: Option<TwilioClient>,
    /// Writes the AI's SMS replies.
    pub responder: Arc<dyn SmsResponder>,
    /// SMTP (`SMTP_URL`); `None`: e-mails are recorded as undeliverable.
    pub mailer: Option<email::Mailer>,
    /// The queue's clock (tests move it by hand).
    pub clock: Clock,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("twilio", &self.twilio)
            .field("mailer", &self.mailer)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Why a handler did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt after a backoff (database or network trouble, Twilio 429/5xx).
    #[error("{0}")]
    Retry(String),
    /// Will fail the same way every time (bad payload, Twilio 4xx, no Twilio account).
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        JobError::Retry(format!("database: {err}"))
    }
}

impl From<TwilioError> for JobError {
    fn from(err: TwilioError) -> Self {
        if err.is_retryable() {
            JobError::Retry(err.to_string())
        } else {
            JobError::Permanent(err.to_string())
        }
    }
}

/// Reads the payload field `name` as `T`.
pub(crate) fn field<T: serde::de::DeserializeOwned>(job: &Job, name: &str) -> Result<T, JobError> {
    let value = job.payload.get(name).cloned().unwrap_or_default();
    serde_json::from_value(value)
        .map_err(|e| JobError::Permanent(format!("{} payload field {name}: {e}", job.kind)))
}

/// Runs `job` with the handler for its kind.
pub async fn dispatch(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    match job.kind.as_str() {
        text_back::KIND => text_back::run(ctx, job).await,
        sms_send::KIND => sms_send::run(ctx, job).await,
        sms_takeover::KIND => sms_takeover::run(ctx, job).await,
        retention::KIND => retention::run(ctx, job).await,
        summary::KIND => summary::run(ctx, job).await,
        lead_notify::KIND => lead_notify::run(ctx, job).await,
        other => Err(JobError::Permanent(format!(
            "no handler for job kind {other}"
        ))),
    }
}
