//! The `lead_notify` job: a new lead (from the AI's SMS lead capture, or a receptionist call) is
//! announced by e-mail to each of the tenant's admins, once per lead and admin.
//!
//! Enqueue with [`job`] in the transaction that stores the lead.

use std::fmt::Write as _;

use sqlx::Row;
use uuid::Uuid;

use super::email::{OutboundEmail, deliver_email};
use super::{Job, JobContext, JobError, NewJob, field};

/// The job kind.
pub const KIND: &str = "lead_notify";

/// The job for `lead_id`, one per lead.
pub fn job(tenant_id: Uuid, lead_id: Uuid) -> NewJob {
    NewJob::new(KIND, serde_json::json!({ "lead_id": lead_id }))
        .tenant(tenant_id)
        .key(format!("lead_notify:{lead_id}"))
}

/// Runs the job; see the module docs.
pub async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let lead_id: Uuid = field(job, "lead_id")?;
    let Some(lead) = sqlx::query(
        "SELECT l.tenant_id, l.name, l.callback_number, l.reason, l.urgency,
                l.call_id IS NOT NULL AS from_call, t.name AS business
         FROM leads l JOIN tenants t ON t.id = l.tenant_id WHERE l.id = $1",
    )
    .bind(lead_id)
    .fetch_optional(&ctx.pool)
    .await?
    else {
        return Ok(());
    };
    let tenant_id: Uuid = lead.get("tenant_id");
    let name: String = lead
        .get::<Option<String>, _>("name")
        .unwrap_or_else(|| "(no name given)".into());
    let callback: String = lead
        .get::<Option<String>, _>("callback_number")
        .unwrap_or_else(|| "(no number)".into());
    let source = if lead.get::<bool, _>("from_call") {
        "a call"
    } else {
        "an SMS conversation"
    };
    let mut body = String::new();
    let _ = writeln!(body, "New lead from {source}:\n");
    let _ = writeln!(body, "Name: {name}");
    let _ = writeln!(body, "Call back: {callback}");
    let _ = writeln!(body, "Reason: {}", lead.get::<String, _>("reason"));
    let _ = writeln!(body, "Urgency: {}", lead.get::<String, _>("urgency"));
    let subject = format!("{}: new lead, {name}", lead.get::<String, _>("business"));
    let admins: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, email FROM users
         WHERE tenant_id = $1 AND role = 'admin' AND disabled_at IS NULL ORDER BY created_at",
    )
    .bind(tenant_id)
    .fetch_all(&ctx.pool)
    .await?;
    for (user_id, email) in admins {
        let mail = OutboundEmail {
            tenant_id,
            to: email,
            subject: subject.clone(),
            body: body.clone(),
            idempotency_key: format!("lead_email:{lead_id}:{user_id}"),
        };
        deliver_email(ctx, &mail, Some(job.id)).await?;
    }
    Ok(())
}

/// Stores a lead confirmed on a call and queues its announcements, in one transaction: the
/// `lead_notify` e-mail job and, when the called number has an owner phone, an SMS to the owner
/// (an `sms_send` job keyed `lead_sms:{lead}`, so a retried job texts once). A call stores at
/// most one lead: a second attempt for the same call returns `None` and queues nothing.
pub async fn store_call_lead(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    call_sid: &str,
    lead: &crate::ai::flow::CapturedLead,
) -> Result<Option<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let call: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, to_number FROM calls WHERE call_sid = $1 AND tenant_id = $2")
            .bind(call_sid)
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    let call_id = call.as_ref().map(|(id, _)| *id);
    let lead_id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO leads (tenant_id, name, callback_number, reason, urgency, call_id)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE $6::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM leads WHERE call_id = $6)
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(&lead.name)
    .bind(&lead.callback_number)
    .bind(&lead.reason)
    .bind(lead.urgency.as_str())
    .bind(call_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(lead_id) = lead_id else {
        return Ok(None);
    };
    super::queue::enqueue(&mut *tx, &job(tenant_id, lead_id)).await?;
    let owner: Option<(String, Option<String>)> =
        match &call {
            Some((_, to_number)) => sqlx::query_as(
                "SELECT e164, owner_phone FROM phone_numbers WHERE e164 = $1 AND tenant_id = $2",
            )
            .bind(to_number)
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?,
            None => None,
        };
    if let Some((from, Some(owner_phone))) = owner {
        let sms = super::sms_send::OutboundSms {
            tenant_id,
            thread_id: None,
            to: owner_phone,
            from,
            body: owner_sms_body(lead),
            author: super::sms_send::Author::System,
            idempotency_key: format!("lead_sms:{lead_id}"),
        };
        super::sms_send::enqueue(&mut *tx, &sms, None).await?;
    }
    tx.commit().await?;
    Ok(Some(lead_id))
}

/// The owner's text about a new lead: everything needed to call back, in one SMS.
fn owner_sms_body(lead: &crate::ai::flow::CapturedLead) -> String {
    format!(
        "New lead: {}, call back {}, about {} ({}).",
        lead.name,
        lead.callback_number,
        lead.reason,
        lead.urgency.spoken()
    )
}
