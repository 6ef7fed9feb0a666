//! SMS threads end to end through the node's `/internal/events` and the job queue, against a fake
//! Twilio: the AI takes over after 60 s of owner silence, the owner's texts are relayed and stop
//! the AI, owner commands. Time is the queue's manual clock, and events carry the same clock's
//! time, so the 60 s pass in milliseconds.

mod node_support;
mod twilio_fake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use node_support::*;
use shared::domain::CallMode;
use sqlx::PgPool;
use twilio_fake::TwilioFake;
use uuid::Uuid;
use voice_node::jobs::worker::{self, WorkerConfig};
use voice_node::jobs::{Clock, JobContext};
use voice_node::sms::KeywordResponder;

const CALLER: &str = "+14155550123";
const OTHER_CALLER: &str = "+14155550777";
const NUMBER: &str = "+14155550100";
/// `tenant_with_number`'s owner phone.
const OWNER: &str = "+14155550199";

struct Harness {
    node: TestNode,
    fake: TwilioFake,
    ctx: JobContext,
    clock: Clock,
    tenant: Uuid,
    next: u32,
}

impl Harness {
    async fn start(pool: PgPool) -> Self {
        let fake = TwilioFake::start().await;
        let node = TestNode::start(pool.clone()).await;
        let (tenant, _) = tenant_with_number(&pool, NUMBER, CallMode::Forward).await;
        let clock = Clock::manual(Utc::now().trunc_subsecs(0));
        let ctx = JobContext {
            pool,
            twilio: Some(fake.client()),
            responder: Arc::new(KeywordResponder),
            mailer: None,
            clock: clock.clone(),
        };
        Harness {
            node,
            fake,
            ctx,
            clock,
            tenant,
            next: 0,
        }
    }

    /// An SMS from `from` to the tenant number, received now (the manual clock's now).
    async fn text(&mut self, from: &str, body: &str) {
        self.next += 1;
        let sid = format!("SMin{:04}", self.next);
        let received_at = u64::try_from(self.clock.now().timestamp()).unwrap();
        let event = twilio_fake::inbound_sms(&sid, from, NUMBER, body, received_at);
        for _ in 0..2 {
            // Delivered twice, applied once.
            assert_eq!(self.node.post_event(&event).await, 200);
        }
    }

    /// Runs every due job.
    async fn run_jobs(&self) {
        let config = WorkerConfig::for_node("node-a", 1);
        worker::run_due(&self.ctx, &config, "node-a#0")
            .await
            .unwrap();
    }

    async fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
        self.run_jobs().await;
    }

    async fn bodies_to(&self, to: &str) -> Vec<String> {
        self.fake
            .sms_to(to)
            .await
            .into_iter()
            .map(|r| {
                assert_eq!(r.form["From"], NUMBER);
                r.form["Body"].clone()
            })
            .collect()
    }

    async fn thread_state(&self, caller: &str) -> String {
        sqlx::query_scalar(
            "SELECT state FROM sms_threads WHERE caller_number = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(caller)
        .fetch_one(&self.ctx.pool)
        .await
        .unwrap()
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn unanswered_caller_gets_an_ai_reply_after_60_s_and_a_lead_is_captured(pool: PgPool) {
    let mut h = Harness::start(pool.clone()).await;
    sqlx::query("INSERT INTO kb_entries (tenant_id, question, answer) VALUES ($1, 'What are your opening hours?', 'We are open 9 to 5, Monday to Friday.')")
        .bind(h.tenant)
        .execute(&pool)
        .await
        .unwrap();

    h.text(CALLER, "Hi, what are your opening hours?").await;
    h.run_jobs().await;
    // The owner sees the caller's text; the caller hears nothing yet.
    assert_eq!(
        h.bodies_to(OWNER).await,
        ["[+14155550123] Hi, what are your opening hours?"]
    );
    assert!(h.bodies_to(CALLER).await.is_empty());
    h.advance(59).await;
    assert!(h.bodies_to(CALLER).await.is_empty(), "too early");
    h.advance(1).await;
    assert_eq!(
        h.bodies_to(CALLER).await,
        ["We are open 9 to 5, Monday to Friday."]
    );
    assert_eq!(h.thread_state(CALLER).await, "ai_active");

    // While the AI has the thread it answers at once; unknown questions start lead capture.
    h.advance(1).await;
    h.text(CALLER, "My tooth hurts").await;
    h.run_jobs().await;
    let replies = h.bodies_to(CALLER).await;
    assert_eq!(replies.len(), 2);
    assert!(replies[1].contains("your name"), "{}", replies[1]);
    h.advance(1).await;
    h.text(CALLER, "My name is Ann Lee, about a broken crown")
        .await;
    h.run_jobs().await;
    let replies = h.bodies_to(CALLER).await;
    assert_eq!(replies.len(), 3);
    assert!(replies[2].contains("Ann Lee"));
    let (name, callback, reason, thread_linked): (Option<String>, Option<String>, String, bool) =
        sqlx::query_as(
            "SELECT name, callback_number, reason, sms_thread_id IS NOT NULL FROM leads WHERE tenant_id = $1",
        )
        .bind(h.tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (
            name.as_deref(),
            callback.as_deref(),
            reason.as_str(),
            thread_linked
        ),
        (Some("Ann Lee"), Some(CALLER), "a broken crown", true)
    );
    // The lead is announced (by e-mail to the admins; this tenant has none, so nothing is sent).
    let notify: String = sqlx::query_scalar("SELECT status FROM jobs WHERE kind = 'lead_notify'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notify, "succeeded");
    // The thread holds the whole conversation: 3 caller texts, 3 AI replies.
    let authors: Vec<String> =
        sqlx::query_scalar("SELECT author FROM sms_messages ORDER BY created_at, direction")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(authors, ["caller", "ai", "caller", "ai", "caller", "ai"]);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn owner_reply_is_relayed_to_the_caller_and_stops_the_ai(pool: PgPool) {
    let mut h = Harness::start(pool.clone()).await;
    h.text(CALLER, "Can someone call me back?").await;
    h.advance(10).await;
    h.text(OWNER, "Sure, I will call you at 3").await;
    h.run_jobs().await;
    assert_eq!(h.bodies_to(CALLER).await, ["Sure, I will call you at 3"]);
    assert_eq!(h.thread_state(CALLER).await, "owner_replied");

    // The takeover time passes: the AI stays out, now and for later caller texts.
    h.advance(60).await;
    h.text(CALLER, "Great, thanks").await;
    h.advance(120).await;
    assert_eq!(h.bodies_to(CALLER).await, ["Sure, I will call you at 3"]);
    assert_eq!(
        h.bodies_to(OWNER).await,
        [
            "[+14155550123] Can someone call me back?",
            "[+14155550123] Great, thanks"
        ]
    );
    let (author, sid): (String, Option<String>) =
        sqlx::query_as("SELECT author, message_sid FROM sms_messages WHERE direction = 'outbound'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(author, "owner");
    assert!(sid.unwrap().starts_with("SM"));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn owner_commands_address_stop_and_switch_the_ai(pool: PgPool) {
    let mut h = Harness::start(pool.clone()).await;
    h.text(OWNER, "#help").await;
    h.run_jobs().await;
    assert!(h.bodies_to(OWNER).await[0].contains("#stop"));

    h.text(CALLER, "Hello?").await;
    h.advance(1).await;
    h.text(OTHER_CALLER, "Are you open today?").await;
    h.advance(1).await;
    // `@digits` picks the thread; without it the latest one gets the text.
    h.text(OWNER, "@0123 Yes, one moment").await;
    h.text(OWNER, "#ai off").await;
    h.run_jobs().await;
    assert_eq!(h.bodies_to(CALLER).await, ["Yes, one moment"]);
    assert_eq!(h.thread_state(OTHER_CALLER).await, "owner_replied");

    h.text(OWNER, "@0123 #stop").await;
    h.run_jobs().await;
    assert_eq!(h.thread_state(CALLER).await, "closed");
    let owner_inbox = h.bodies_to(OWNER).await;
    assert!(owner_inbox.contains(&"Closed the conversation with +14155550123.".to_owned()));
    assert!(owner_inbox.contains(&"The AI will not answer +14155550777.".to_owned()));

    // Neither caller hears from the AI, however long the owner stays silent.
    h.advance(300).await;
    assert_eq!(h.bodies_to(CALLER).await.len(), 1);
    assert!(h.bodies_to(OTHER_CALLER).await.is_empty());

    // `#ai on` hands the other thread to the AI, which answers the next text at once.
    h.text(OWNER, "@0777 #ai on").await;
    h.text(OTHER_CALLER, "Hello again").await;
    h.run_jobs().await;
    assert_eq!(h.bodies_to(OTHER_CALLER).await.len(), 1);
    assert_eq!(h.thread_state(OTHER_CALLER).await, "ai_active");
}
