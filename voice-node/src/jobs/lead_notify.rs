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
