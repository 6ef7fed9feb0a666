//! The `text_back` job: a caller the owner did not answer (forward mode's `<Dial>` ended
//! no-answer / busy / failed) gets the tenant's `text_back_template` from the number they called,
//! in an SMS thread that the caller's replies then join.
//!
//! Enqueued by `/internal/events` ([`crate::store::callbacks`]) with the key `text_back:CA…`, so one
//! per call; sent under the delivery key `text_back:CA…`, so once however often the job runs.

use sqlx::Row;
use uuid::Uuid;

use super::sms_send::{Author, Delivery, OutboundSms, deliver_sms};
use super::{Job, JobContext, JobError, field};

/// The job kind.
pub const KIND: &str = "text_back";

/// `template` with `{business}` replaced by the tenant's name.
pub fn render_template(template: &str, business: &str) -> String {
    template.replace("{business}", business)
}

/// Runs the job; see the module docs.
pub async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let call_sid: String = field(job, "call_sid")?;
    let caller: String = field(job, "caller")?;
    let number: String = field(job, "number")?;
    let call_id: Option<Uuid> = field(job, "call_id").ok();

    let Some(route) = sqlx::query(
        "SELECT n.id AS number_id, n.tenant_id, t.name, t.text_back_template, t.disabled_at IS NOT NULL AS disabled
         FROM phone_numbers n JOIN tenants t ON t.id = n.tenant_id
         WHERE n.e164 = $1",
    )
    .bind(&number)
    .fetch_optional(&ctx.pool)
    .await?
    else {
        return Err(JobError::Permanent("the called number is no longer configured".into()));
    };
    if route.get::<bool, _>("disabled") {
        tracing::info!(%call_sid, "tenant disabled: no text-back");
        return Ok(());
    }
    let tenant_id: Uuid = route.get("tenant_id");
    let number_id: Uuid = route.get("number_id");
    let body = render_template(
        &route.get::<String, _>("text_back_template"),
        &route.get::<String, _>("name"),
    );
    // The thread the caller's replies will join; an open one is reused.
    let thread_id: Uuid = sqlx::query_scalar(
        "INSERT INTO sms_threads (tenant_id, number_id, caller_number, call_id, last_message_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (number_id, caller_number) WHERE state <> 'closed'
         DO UPDATE SET call_id = COALESCE(sms_threads.call_id, EXCLUDED.call_id)
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(number_id)
    .bind(&caller)
    .bind(call_id)
    .bind(ctx.clock.now())
    .fetch_one(&ctx.pool)
    .await?;
    let sms = OutboundSms {
        tenant_id,
        thread_id: Some(thread_id),
        to: caller,
        from: number,
        body,
        author: Author::System,
        idempotency_key: format!("text_back:{call_sid}"),
    };
    match deliver_sms(ctx, &sms, Some(job.id)).await? {
        Delivery::Sent { .. } => {}
        Delivery::AlreadySent => tracing::info!(%call_sid, "text-back already sent"),
        Delivery::Suppressed => tracing::info!(%call_sid, "caller opted out: no text-back"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn template_names_the_business() {
        assert_eq!(
            super::render_template("Sorry we missed you at {business}.", "Acme Dental"),
            "Sorry we missed you at Acme Dental."
        );
    }
}
