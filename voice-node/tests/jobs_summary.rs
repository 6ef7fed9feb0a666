//! The post-call summary job and its e-mail, and the lead e-mail, delivered to a real local SMTP server (aiosmtpd from
//! PyPI, in a venv under the user cache dir; created on first use).

mod node_support;
mod smtp_support;

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::jobs::email::Mailer;
use voice_node::jobs::worker::{self, WorkerConfig};
use voice_node::jobs::{Clock, JobContext, lead_notify, queue, summary};
use voice_node::sms::KeywordResponder;

use smtp_support::SmtpServer;

/// A receptionist call with a transcript, a lead and one admin; returns (tenant, call).
async fn finished_call(pool: &PgPool) -> (Uuid, Uuid) {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Acme Dental') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO users (tenant_id, email, password_hash, role)
         VALUES ($1, 'owner@acme.test', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'admin'),
                ($1, 'staff@acme.test', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'member')",
    )
    .bind(tenant)
    .execute(pool)
    .await
    .unwrap();
    let call: Uuid = sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode, status, outcome, duration_s)
         VALUES ('CAsum', $1, '+14155550123', '+14155550100', 'receptionist', 'completed', 'message_taken', 42)
         RETURNING id",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap();
    for (seq, speaker, text) in [
        (0, "agent", "Hello, Acme Dental, how can I help?"),
        (
            1,
            "caller",
            "Hi. My crown broke this morning. It hurts when I chew.",
        ),
        (
            2,
            "agent",
            "I am sorry about your crown. When can you come in?",
        ),
        (
            3,
            "caller",
            "Tomorrow morning works. The crown is on a back tooth. Thanks!",
        ),
    ] {
        sqlx::query(
            "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at)
             VALUES ($1, $2, $3, $4, $5, now())",
        )
        .bind(tenant)
        .bind(call)
        .bind(seq)
        .bind(speaker)
        .bind(text)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO leads (tenant_id, name, callback_number, reason, urgency, call_id)
         VALUES ($1, 'Ann Lee', '+14155550123', 'broken crown', 'high', $2)",
    )
    .bind(tenant)
    .bind(call)
    .execute(pool)
    .await
    .unwrap();
    (tenant, call)
}

fn ctx(pool: &PgPool, mailer: Option<Mailer>) -> JobContext {
    JobContext {
        pool: pool.clone(),
        twilio: None,
        responder: Arc::new(KeywordResponder),
        mailer,
        clock: Clock::manual(Utc::now() + chrono::Duration::seconds(5)),
    }
}

async fn run_jobs(ctx: &JobContext) -> usize {
    worker::run_due(ctx, &WorkerConfig::for_node("n", 1), "n#0")
        .await
        .unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn summary_is_written_and_mailed_once_to_the_tenants_admins(pool: PgPool) {
    let smtp = SmtpServer::start().await;
    let (tenant, call) = finished_call(&pool).await;
    let mailer = Mailer::new(
        &format!("smtp://127.0.0.1:{}", smtp.port),
        "callgate <callgate@localhost>",
    )
    .unwrap();
    let ctx = ctx(&pool, Some(mailer));
    queue::enqueue(&pool, &summary::job(tenant, call, Utc::now()))
        .await
        .unwrap();
    assert_eq!(run_jobs(&ctx).await, 1);

    let stored: String = sqlx::query_scalar("SELECT summary FROM calls WHERE id = $1")
        .bind(call)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        "Caller: My crown broke this morning. Tomorrow morning works. The crown is on a back tooth."
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "admins only");
    let mail = &messages[0];
    assert!(mail.contains("To: owner@acme.test"), "{mail}");
    assert!(
        mail.contains("Subject: Acme Dental: call from +1415***0123"),
        "{mail}"
    );
    assert!(
        mail.contains("Lead: Ann Lee — call back +14155550123 — broken crown (urgency high)"),
        "{mail}"
    );
    assert!(mail.contains("caller: Tomorrow morning works."), "{mail}");
    assert!(mail.contains(&stored), "{mail}");

    // A second run (a retry after a crash) mails nobody again.
    sqlx::query("UPDATE jobs SET status = 'queued'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(run_jobs(&ctx).await, 1);
    assert_eq!(smtp.messages().len(), 1);
    let (status, provider): (String, Option<String>) = sqlx::query_as(
        "SELECT status, provider_id FROM outbound_deliveries WHERE channel = 'email'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "sent");
    assert!(provider.unwrap().contains('@'), "the Message-ID");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn without_smtp_the_summary_mail_is_recorded_as_undeliverable(pool: PgPool) {
    let (tenant, call) = finished_call(&pool).await;
    let ctx = ctx(&pool, None);
    queue::enqueue(&pool, &summary::job(tenant, call, Utc::now()))
        .await
        .unwrap();
    assert_eq!(run_jobs(&ctx).await, 1);
    let job: String = sqlx::query_scalar("SELECT status FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(job, "succeeded");
    let (status, recipient): (String, String) =
        sqlx::query_as("SELECT status, recipient FROM outbound_deliveries WHERE channel = 'email'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), recipient.as_str()),
        ("undeliverable", "owner@acme.test")
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_completed_receptionist_call_schedules_one_summary_30_s_later(pool: PgPool) {
    use shared::domain::CallMode;
    use shared::form::Form;
    use shared::forwarded::{EventKind, ForwardedEvent};

    let node = node_support::TestNode::start(pool.clone()).await;
    node_support::tenant_with_number(&pool, "+14155550100", CallMode::Receptionist).await;
    node_support::tenant_with_number(&pool, "+14155550200", CallMode::Forward).await;
    for (sid, to) in [("CArec", "+14155550100"), ("CAfwd", "+14155550200")] {
        let event = ForwardedEvent::new(
            EventKind::CallStatus,
            format!("tok-{sid}"),
            node_support::now_unix(),
            &Form::from_pairs([
                ("CallSid", sid),
                ("AccountSid", "AC1"),
                ("From", "+14155550123"),
                ("To", to),
                ("CallStatus", "completed"),
                ("Direction", "inbound"),
                ("CallDuration", "42"),
            ]),
        );
        for _ in 0..2 {
            assert_eq!(node.post_event(&event).await, 200);
        }
    }
    let jobs: Vec<(String, f64)> = sqlx::query_as(
        "SELECT c.call_sid, extract(epoch FROM j.run_at - c.ended_at)::float8
         FROM jobs j JOIN calls c ON c.id = (j.payload->>'call_id')::uuid
         WHERE j.kind = 'call_summary'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(jobs, [("CArec".to_owned(), 30.0)]);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_new_lead_is_mailed_once_to_the_admins(pool: PgPool) {
    let smtp = SmtpServer::start().await;
    let (tenant, _) = finished_call(&pool).await;
    let lead: Uuid = sqlx::query_scalar("SELECT id FROM leads")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mailer = Mailer::new(
        &format!("smtp://127.0.0.1:{}", smtp.port),
        "callgate <callgate@localhost>",
    )
    .unwrap();
    let ctx = ctx(&pool, Some(mailer));
    for _ in 0..2 {
        queue::enqueue(&pool, &lead_notify::job(tenant, lead))
            .await
            .unwrap();
    }
    assert_eq!(run_jobs(&ctx).await, 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert!(
        mail.contains("Subject: Acme Dental: new lead, Ann Lee"),
        "{mail}"
    );
    assert!(mail.contains("New lead from a call"), "{mail}");
    assert!(mail.contains("Call back: +14155550123"), "{mail}");
    assert!(mail.contains("Reason: broken crown"), "{mail}");
    assert!(mail.contains("Urgency: high"), "{mail}");
}
