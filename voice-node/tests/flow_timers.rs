//! The call flows' timers with virtual time: the 60 s SMS takeover, retry backoff, and the 20 s
//! `<Dial timeout>` after which Twilio posts `no-answer`. Each test runs against a real Postgres
//! (`#[sqlx::test]`), the node's `/internal/events` on a real port, the real edge Router, the
//! Twilio REST fake and the call simulator's TwiML follower, with tokio's clock paused: a minute
//! passes in milliseconds, and every deadline is checked to the second on both sides.
//!
//! How time is driven. The job queue reads [`Clock::tokio`] (a wall-clock base plus tokio's
//! elapsed time) and the workers sleep their poll interval on tokio's timer, so
//! `tokio::time::advance` moves both together; the simulator rings a `<Dial>` with
//! `tokio::time::sleep`. The node, the edge, the fake, the workers, the simulator and a pool of
//! their own all run on one current-thread runtime started paused ([`paused`]); the runtime
//! `#[sqlx::test]` made only creates and drops the database.
//!
//! Why auto-advance is switched off. A paused runtime that has nothing to run jumps to its next
//! timer, and "nothing to run" includes "waiting for Postgres or a socket". While a worker waits
//! for a query, its 20 s lease-renewal tick, the 300 s job timeout, sqlx's 30 s acquire timeout or
//! reqwest's 10 s request timeout could then fire after a few milliseconds of real time: the tests
//! would see timeouts that never happen in production, and time would race past the second they
//! check. Tokio documents the remedy: while a `spawn_blocking` task runs, the paused clock does
//! not auto-advance. [`AutoAdvanceOff`] keeps one such task parked for the whole test, so virtual time
//! moves only when the test calls `tokio::time::advance`, one second at a time (the workers' poll
//! interval), and not while a request is in flight: after each step the test waits, in real time,
//! until the worker reports an idle poll ([`JobWorkers::idle_polls`]) and whatever else that
//! second started has landed. The alternative (the pool and servers on a second, real-time
//! runtime) would leave the workers' own timers on the paused one, where they would still
//! auto-advance during the queries.
//!
//! One wait is by real time rather than a signal: the simulated Twilio does not report when it
//! is idle, so the dial tests give it [`DIAL_GRACE`] after each step for a request it started to
//! reach the edge, which logs the virtual second of arrival (on 127.0.0.1 it takes well under a
//! millisecond). A request slower than that, on a machine far too loaded, would be logged a second
//! late: a ring that starts late fails the test, and a ring one second short could go unseen.

mod node_support;
mod twilio_fake;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use node_support::{AUTH_TOKEN, SECRET, TestNode, tenant_with_number};
use shared::domain::CallMode;
use sqlx::PgPool;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use twilio_fake::{Failure, TwilioFake};
use uuid::Uuid;
use voice_node::agent::TransferRequest;
use voice_node::jobs::sms_send::{self, Author, OutboundSms};
use voice_node::jobs::worker::{JobWorkers, WorkerConfig};
use voice_node::jobs::{Clock, JobContext};
use voice_node::simulate::call_control::CallRedirect;
use voice_node::simulate::twilio_http::{CallIdentity, TwilioHttp};
use voice_node::simulate::twiml_follow::{
    CallerBehaviour, DialStatus, FollowResult, MediaLeg, StreamEnd, StreamSpec, follow_call,
};
use voice_node::sms::KeywordResponder;

const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550123";
/// `tenant_with_number`'s owner phone.
const OWNER: &str = "+14155550199";
/// The workers' poll interval, and so the step the tests advance by.
const POLL: Duration = Duration::from_secs(1);
/// Real time for a request the simulator started to reach the edge on 127.0.0.1 (it takes well
/// under a millisecond; the margin is for a loaded machine).
const DIAL_GRACE: Duration = Duration::from_millis(100);
/// The longest real time a step may take to settle before the test fails.
const REAL_WAIT: Duration = Duration::from_secs(30);

/// Runs `test` on a current-thread runtime of its own, started with tokio's clock paused and
/// auto-advance inhibited throughout, with a pool of its own on `pool`'s test database.
///
/// Why a runtime of its own: `#[sqlx::test]` builds an unpaused runtime, and pausing it later
/// freezes the clock between two of tokio's millisecond ticks. Timers round their deadline up to
/// the next tick while the clock reads the tick below, so a 1 s sleep would need 1 s plus a
/// fraction of a millisecond of `advance`: every step would drift. A runtime started paused
/// keeps virtual time on whole ticks, so `advance(1 s)` fires exactly the 1 s timers.
async fn paused<F, Fut>(pool: PgPool, test: F)
where
    F: FnOnce(PgPool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let options = (*pool.connect_options()).clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let _no_auto_advance = AutoAdvanceOff::start();
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .unwrap();
            test(pool.clone()).await;
            pool.close().await;
        });
    })
    .await;
    if let Err(failed) = outcome {
        std::panic::resume_unwind(failed.into_panic());
    }
}

/// Tokio's auto-advance, switched off until dropped (see the module docs).
struct AutoAdvanceOff {
    /// Dropped with it, even on a failed assertion: the parked blocking task then returns, so
    /// the runtime can shut down.
    _release: std::sync::mpsc::Sender<()>,
}

impl AutoAdvanceOff {
    fn start() -> Self {
        let (release, parked) = std::sync::mpsc::channel::<()>();
        // While this blocking task runs, the paused clock moves only by `advance`.
        drop(tokio::task::spawn_blocking(move || {
            let _ = parked.recv();
        }));
        AutoAdvanceOff { _release: release }
    }
}

/// Sleeps in real time without letting the paused clock move (a blocking task inhibits it).
async fn real_sleep(duration: Duration) {
    tokio::task::spawn_blocking(move || std::thread::sleep(duration))
        .await
        .unwrap();
}

/// Waits, in real time, until `check` gives a value.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + REAL_WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out (real time) waiting for {what}"
        );
        real_sleep(Duration::from_millis(2)).await;
    }
}

/// A node, the Twilio fake and one job worker on the paused clock.
struct Timers {
    /// The paused runtime's pool on the test database.
    pool: PgPool,
    /// `/internal/events` and the routing snapshot the edge reads.
    node: TestNode,
    /// Twilio's REST API: what was sent, and when on the virtual clock.
    fake: TwilioFake,
    /// The job queue's clock, `Clock::tokio` at a whole second.
    clock: Clock,
    /// Virtual time zero: the clock's base.
    start: Instant,
    /// Real time at virtual zero, to report what a test cost.
    real_start: std::time::Instant,
    /// One worker polling every [`POLL`]; taken by `finish`.
    workers: Option<JobWorkers>,
    /// The worker's idle polls: a step is over when this moves.
    idle: watch::Receiver<u64>,
    /// The tenant of [`NUMBER`].
    tenant: Uuid,
    /// Numbers the SMS events' SIDs.
    next_sms: u32,
}

impl Timers {
    async fn start(pool: PgPool, mode: CallMode) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
            .with_test_writer()
            .try_init();
        let fake = TwilioFake::start().await;
        // A long heartbeat interval: the one heartbeat below keeps the node in the routing
        // snapshot for the whole test, whatever the real time it takes.
        let node = TestNode::start_with(pool.clone(), &[("HEARTBEAT_SECS", "600")]).await;
        let row = voice_node::registry::node_row(
            &node.state.config,
            &node.state.metrics,
            &node.state.drain,
            Utc::now(),
        );
        voice_node::registry::heartbeat(&pool, &row).await.unwrap();
        let (tenant, _) = tenant_with_number(&pool, NUMBER, mode).await;
        // Whole seconds, as the edge stamps events: an event at virtual second n is exactly
        // `clock.now()` then.
        let clock = Clock::tokio(Utc::now().trunc_subsecs(0));
        let start = Instant::now();
        let ctx = JobContext {
            pool: pool.clone(),
            twilio: Some(fake.client()),
            responder: Arc::new(KeywordResponder),
            mailer: None,
            clock: clock.clone(),
        };
        let workers = JobWorkers::start(
            ctx,
            WorkerConfig {
                poll_interval: POLL,
                ..WorkerConfig::for_node("node-a", 1)
            },
        );
        let mut idle = workers.idle_polls();
        // The first poll, at virtual 0: from here on the worker wakes on whole seconds.
        until("the worker's first poll", async || {
            (*idle.borrow_and_update() > 0).then_some(())
        })
        .await;
        Timers {
            pool,
            node,
            fake,
            clock,
            start,
            real_start: std::time::Instant::now(),
            workers: Some(workers),
            idle,
            tenant,
            next_sms: 0,
        }
    }

    /// Virtual seconds since the start.
    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Moves virtual time one poll interval forward and waits until the worker has run
    /// everything that became due.
    async fn step(&mut self) {
        let before = *self.idle.borrow_and_update();
        tokio::time::advance(POLL).await;
        let idle = &mut self.idle;
        let what = format!(
            "the worker's poll at {:?} (idle polls {before})",
            self.start.elapsed()
        );
        until(&what, async || {
            (*idle.borrow_and_update() > before).then_some(())
        })
        .await;
    }

    /// Steps to virtual second `s`, then leaves the simulator `DIAL_GRACE` of real time to send
    /// what that second's timers started: the job worker reports when it is idle, the simulated
    /// Twilio does not, and a request it sent at second `s` must reach the edge while the clock
    /// still reads `s`.
    async fn step_to_and_listen(&mut self, s: u64) {
        self.step_to(s).await;
        real_sleep(DIAL_GRACE).await;
    }

    /// Steps until virtual second `s`.
    async fn step_to(&mut self, s: u64) {
        while self.start.elapsed() < Duration::from_secs(s) {
            self.step().await;
        }
        assert_eq!(self.start.elapsed(), Duration::from_secs(s));
    }

    /// An SMS from `from` to the tenant number, as the edge forwards it, received now.
    async fn text(&mut self, from: &str, body: &str) {
        self.next_sms += 1;
        let sid = format!("SMtimer{:04}", self.next_sms);
        let received_at = u64::try_from(self.clock.now().timestamp()).unwrap();
        let event = twilio_fake::inbound_sms(&sid, from, NUMBER, body, received_at);
        assert_eq!(self.node.post_event(&event).await, 200);
    }

    /// `(virtual second, body)` of every SMS the fake accepted for `to`.
    async fn sent_to(&self, to: &str) -> Vec<(f64, String)> {
        self.fake
            .sms_to(to)
            .await
            .into_iter()
            .filter(|r| r.status == 201)
            .map(|r| {
                (
                    r.at.duration_since(self.start).as_secs_f64(),
                    r.form["Body"].clone(),
                )
            })
            .collect()
    }

    async fn job(&self, kind: &str) -> (String, i32, DateTime<Utc>) {
        sqlx::query_as("SELECT status, attempts, run_at FROM jobs WHERE kind = $1")
            .bind(kind)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Virtual seconds from the start to `at` on the queue's clock.
    fn virtual_s(&self, at: DateTime<Utc>) -> f64 {
        let zero = self.clock.now() - chrono::Duration::from_std(self.start.elapsed()).unwrap();
        (at - zero).as_seconds_f64()
    }

    async fn finish(mut self) {
        if let Some(workers) = self.workers.take() {
            workers.stop(Duration::from_secs(5)).await;
        }
        self.node.server.abort();
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn the_ai_answers_an_unanswered_text_at_60_s_not_at_59(pool: PgPool) {
    paused(pool, |pool| async move {
        let mut t = Timers::start(pool, CallMode::Forward).await;
        t.text(CALLER, "Hi, are you open on Saturday?").await;

        // The owner sees the text at the next poll; the caller hears nothing for 59 s.
        t.step().await;
        assert_eq!(
            t.sent_to(OWNER).await,
            [(
                1.0,
                "[+14155550123] Hi, are you open on Saturday?".to_owned()
            )]
        );
        for s in 2..=59 {
            t.step_to(s).await;
            assert!(t.sent_to(CALLER).await.is_empty(), "AI replied at {s} s");
        }
        let (status, attempts, run_at) = t.job("sms_takeover").await;
        assert_eq!((status.as_str(), attempts), ("queued", 0));
        assert_eq!(t.virtual_s(run_at), 60.0);

        // At 60 s exactly one AI reply, and never a second.
        t.step_to(60).await;
        let replies = t.sent_to(CALLER).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].0, 60.0);
        t.step_to(120).await;
        assert_eq!(t.sent_to(CALLER).await, replies);
        let authors: Vec<String> = sqlx::query_scalar(
            "SELECT author FROM sms_messages WHERE direction = 'outbound' ORDER BY created_at",
        )
        .fetch_all(&t.pool)
        .await
        .unwrap();
        assert_eq!(authors, ["ai"]);
        assert_eq!(t.job("sms_takeover").await.0, "succeeded");
        eprintln!(
            "takeover: {} virtual seconds in {} ms of real time",
            t.now_s(),
            t.real_start.elapsed().as_millis()
        );
        t.finish().await;
    })
    .await;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn an_owner_reply_at_30_s_keeps_the_ai_out(pool: PgPool) {
    paused(pool, |pool| async move {
        let mut t = Timers::start(pool, CallMode::Forward).await;
        t.text(CALLER, "Can you fix a leak today?").await;
        t.step_to(30).await;
        t.text(OWNER, "Yes, I can come at 4.").await;
        t.step_to(31).await;
        assert_eq!(
            t.sent_to(CALLER).await,
            [(31.0, "Yes, I can come at 4.".to_owned())]
        );
        // The takeover still runs at 60 s, and decides to stay out.
        t.step_to(60).await;
        assert_eq!(t.job("sms_takeover").await.0, "succeeded");
        t.step_to(180).await;
        assert_eq!(t.sent_to(CALLER).await.len(), 1, "the AI wrote after all");
        let state: String = sqlx::query_scalar("SELECT state FROM sms_threads")
            .fetch_one(&t.pool)
            .await
            .unwrap();
        assert_eq!(state, "owner_replied");
        t.finish().await;
    })
    .await;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_failing_send_is_retried_at_its_backoff_times_and_sent_once(pool: PgPool) {
    paused(pool, |pool| async move {
        let mut t = Timers::start(pool, CallMode::Forward).await;
        t.fake.fail_next(2, Failure::ServerError).await;
        let sms = OutboundSms {
            tenant_id: t.tenant,
            thread_id: None,
            to: OWNER.to_owned(),
            from: NUMBER.to_owned(),
            body: "A caller left you a message.".to_owned(),
            author: Author::System,
            idempotency_key: "timers:retry".to_owned(),
        };
        sms_send::enqueue(&t.pool, &sms, Some(t.clock.now()))
            .await
            .unwrap();

        // Each step: the attempts so far, checked against the run_at the queue set after each
        // failure. An attempt happens at the first poll at or after it, never before. The first is
        // due at once; the worker's first poll after the enqueue is at 1 s.
        let mut due_s = 1.0;
        let mut attempts_seen = 0;
        let mut backoffs = Vec::new();
        while t.now_s() < 60.0 {
            t.step().await;
            let requests = t.fake.sms_to(OWNER).await;
            let now = t.now_s();
            if requests.len() > attempts_seen {
                assert_eq!(
                    requests.len(),
                    attempts_seen + 1,
                    "two attempts in one poll"
                );
                let at = requests[attempts_seen]
                    .at
                    .duration_since(t.start)
                    .as_secs_f64();
                assert_eq!(at, now);
                assert!(
                    at >= due_s && at < due_s + POLL.as_secs_f64(),
                    "attempt {} at {at} s, due at {due_s} s",
                    attempts_seen + 1
                );
                attempts_seen += 1;
                let (status, attempts, run_at) = t.job("sms_send").await;
                assert_eq!(attempts, i32::try_from(attempts_seen).unwrap());
                if status == "queued" {
                    let next = t.virtual_s(run_at);
                    backoffs.push(next - at);
                    due_s = next;
                } else {
                    assert_eq!(status, "succeeded");
                    due_s = f64::INFINITY;
                }
            } else {
                assert!(
                    now < due_s + POLL.as_secs_f64(),
                    "no attempt by {now} s (due {due_s} s)"
                );
            }
        }
        let statuses: Vec<u16> = t
            .fake
            .sms_to(OWNER)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [500, 500, 201]);
        // 2 s doubled per attempt, scaled by a jitter in [0.5, 1].
        assert_eq!(backoffs.len(), 2);
        assert!((1.0..=2.0).contains(&backoffs[0]), "{backoffs:?}");
        assert!((2.0..=4.0).contains(&backoffs[1]), "{backoffs:?}");
        let (status, attempts): (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM outbound_deliveries WHERE idempotency_key = 'timers:retry'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
        assert_eq!((status.as_str(), attempts), ("sent", 3));
        eprintln!("retries: backoffs {backoffs:?} s");
        t.finish().await;
    })
    .await;
}

/// Every request that reached the edge: `(path, virtual second it arrived)`, and
/// `("{path} answered", second)` when its answer was sent.
type EdgeLog = Arc<std::sync::Mutex<Vec<(String, f64)>>>;

/// The real edge Router on a real port, reading the node's snapshot, logging what it answered.
async fn start_edge(node: SocketAddr, start: Instant) -> (String, EdgeLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", listener.local_addr().unwrap());
    let vars = BTreeMap::from([
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("PUBLIC_WEBHOOK_BASE_URL", edge.clone()),
        ("CONTROL_URL", format!("http://{node}")),
    ]);
    let config = edge_worker::config::Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
    let log: EdgeLog = Arc::default();
    let seen = Arc::clone(&log);
    let router =
        edge_worker::app(edge_worker::AppState::new(config)).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let seen = Arc::clone(&seen);
                async move {
                    let path = request.uri().path().to_owned();
                    let at = start.elapsed().as_secs_f64();
                    seen.lock().unwrap().push((path.clone(), at));
                    let response = next.run(request).await;
                    let at = start.elapsed().as_secs_f64();
                    seen.lock().unwrap().push((format!("{path} answered"), at));
                    response
                }
            },
        ));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (edge, log)
}

fn arrived(log: &EdgeLog, path: &str) -> Vec<f64> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, at)| *at)
        .collect()
}

/// Twilio's media leg, played by the test: the streams the call opened, each ended as the script
/// says (the first stream's end, if any, then `CallerHungUp`).
struct ScriptedLeg {
    streams: Arc<Mutex<Vec<(f64, StreamSpec)>>>,
    first_end: Option<StreamEnd>,
    start: Instant,
}

impl MediaLeg for ScriptedLeg {
    async fn run_stream(&mut self, _call: &CallIdentity, stream: &StreamSpec) -> StreamEnd {
        let at = self.start.elapsed().as_secs_f64();
        self.streams.lock().await.push((at, stream.clone()));
        self.first_end.take().unwrap_or(StreamEnd::CallerHungUp)
    }
}

async fn dial_result_applied(pool: &PgPool, call_sid: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT e.payload->>'dial_call_status' FROM call_events e JOIN calls c ON c.id = e.call_id
         WHERE c.call_sid = $1 AND e.kind = 'dial_result'",
    )
    .bind(call_sid)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn an_unanswered_forward_rings_20_s_then_the_caller_is_texted_back(pool: PgPool) {
    paused(pool, |pool| async move {
        let mut t = Timers::start(pool, CallMode::Forward).await;
        let (edge, log) = start_edge(t.node.addr, t.start).await;
        let call = CallIdentity::new(twilio_fake::ACCOUNT_SID, CALLER, NUMBER);
        let streams = Arc::default();
        let mut leg = ScriptedLeg {
            streams: Arc::clone(&streams),
            first_end: None,
            start: t.start,
        };
        let http = TwilioHttp::new(AUTH_TOKEN, &edge, &edge).unwrap();
        let caller = CallerBehaviour {
            dial_status: DialStatus::NoAnswer,
            voicemail_secs: 3,
            ring_limit: None,
        };
        let followed = {
            let call = call.clone();
            tokio::spawn(async move { follow_call(&http, &call, caller, &mut leg).await })
        };
        until("the inbound webhook's answer", async || {
            (!arrived(&log, "/telephony/inbound answered").is_empty()).then_some(())
        })
        .await;
        // The simulator reads the answer and starts ringing at 0 s.
        real_sleep(DIAL_GRACE).await;
        assert_eq!(arrived(&log, "/telephony/inbound"), [0.0]);

        for s in 1..=19 {
            t.step_to_and_listen(s).await;
            assert!(
                arrived(&log, "/telephony/dial-result").is_empty(),
                "dial result at {s} s"
            );
            assert!(t.sent_to(CALLER).await.is_empty(), "text-back at {s} s");
        }
        t.step_to_and_listen(20).await;
        until("the dial result", async || {
            arrived(&log, "/telephony/dial-result").first().copied()
        })
        .await;
        assert_eq!(arrived(&log, "/telephony/dial-result"), [20.0]);
        let status = until("the dial result at the node", async || {
            dial_result_applied(&t.pool, &call.call_sid).await
        })
        .await;
        assert_eq!(status, "no-answer");
        until("the text-back job", async || {
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM jobs WHERE kind = 'text_back'")
                .fetch_optional(&t.pool)
                .await
                .unwrap()
        })
        .await;
        until("the call's end", async || {
            followed.is_finished().then_some(())
        })
        .await;
        let result: FollowResult = followed.await.unwrap();
        assert_eq!(result.dials, [(OWNER.to_owned(), "no-answer")]);
        // Nobody answered, so the AI receptionist took the call at 20 s.
        let streams = streams.lock().await.clone();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].0, 20.0);
        assert_eq!(
            streams[0].1.parameters.get("mode").map(String::as_str),
            Some("receptionist")
        );

        // The text-back goes out at the worker's first poll after the dial result reached the
        // node: the one at 20 s if the job was queued before it, else the one at 21 s.
        t.step_to(21).await;
        let texts = t.sent_to(CALLER).await;
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!([20.0, 21.0].contains(&texts[0].0), "{texts:?}");
        t.step_to(40).await;
        assert_eq!(t.sent_to(CALLER).await.len(), 1);
        t.finish().await;
    })
    .await;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_missed_transfer_rings_20_s_then_returns_to_the_ai_for_lead_capture(pool: PgPool) {
    paused(pool, |pool| async move {
        let mut t = Timers::start(pool, CallMode::Receptionist).await;
        let (edge, log) = start_edge(t.node.addr, t.start).await;
        let call = CallIdentity::new(twilio_fake::ACCOUNT_SID, CALLER, NUMBER);
        // The AI's transfer, as the node's session starts it: the call event it writes, then the
        // REST update whose TwiML the simulated Twilio runs in place of the stream.
        let call_id: Uuid = sqlx::query_scalar(
            "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode, status)
         VALUES ($1, $2, $3, $4, 'receptionist', 'in_progress') RETURNING id",
        )
        .bind(&call.call_sid)
        .bind(t.tenant)
        .bind(CALLER)
        .bind(NUMBER)
        .fetch_one(&t.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO call_events (tenant_id, call_id, kind, payload)
         VALUES ($1, $2, 'transfer_started', '{\"department\": \"Sales\"}')",
        )
        .bind(t.tenant)
        .bind(call_id)
        .execute(&t.pool)
        .await
        .unwrap();
        let transfer = voice_node::media::session::transfer_twiml(
            &TransferRequest {
                to: OWNER.to_owned(),
                department: "Sales".to_owned(),
            },
            Some(&edge),
        );
        assert!(transfer.contains(r#"timeout="20""#), "{transfer}");
        let streams = Arc::default();
        let mut leg = ScriptedLeg {
            streams: Arc::clone(&streams),
            first_end: Some(StreamEnd::Redirected(CallRedirect::Twiml(transfer))),
            start: t.start,
        };
        let http = TwilioHttp::new(AUTH_TOKEN, &edge, &edge).unwrap();
        let caller = CallerBehaviour {
            dial_status: DialStatus::NoAnswer,
            voicemail_secs: 3,
            ring_limit: None,
        };
        let followed = {
            let call = call.clone();
            tokio::spawn(async move { follow_call(&http, &call, caller, &mut leg).await })
        };
        until("the AI's stream", async || {
            (!streams.lock().await.is_empty()).then_some(())
        })
        .await;
        assert_eq!(arrived(&log, "/telephony/inbound"), [0.0]);

        for s in 1..=19 {
            t.step_to_and_listen(s).await;
            assert!(
                arrived(&log, "/telephony/dial-result").is_empty(),
                "dial result at {s} s"
            );
            assert_eq!(streams.lock().await.len(), 1, "back to the AI at {s} s");
        }
        t.step_to_and_listen(20).await;
        until("the second stream", async || {
            (streams.lock().await.len() == 2).then_some(())
        })
        .await;
        assert_eq!(arrived(&log, "/telephony/dial-result"), [20.0]);
        let (at, stream) = streams.lock().await[1].clone();
        assert_eq!(at, 20.0);
        assert_eq!(
            stream.parameters.get("after").map(String::as_str),
            Some("failed_transfer")
        );
        assert_eq!(
            stream.parameters.get("mode").map(String::as_str),
            Some("receptionist")
        );
        until("the call's end", async || {
            followed.is_finished().then_some(())
        })
        .await;
        let result = followed.await.unwrap();
        assert_eq!(result.dials, [(OWNER.to_owned(), "no-answer")]);
        let status = until("the dial result at the node", async || {
            dial_result_applied(&t.pool, &call.call_sid).await
        })
        .await;
        assert_eq!(status, "no-answer");
        // A missed transfer is the AI's to finish: no "sorry we missed you" text.
        t.step_to(40).await;
        assert!(t.sent_to(CALLER).await.is_empty());
        let text_backs: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'text_back'")
                .fetch_one(&t.pool)
                .await
                .unwrap();
        assert_eq!(text_backs, 0);
        t.finish().await;
    })
    .await;
}
