//! The AI agent end to end on real speech (committed fixtures), without a socket: events in
//! through its `AgentHandle`, actions out. Also the knowledge base against Postgres.

mod ai_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shared::domain::{CallMode, CallOutcome, ScreeningLabel};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, CallClock, CallStarted, DeliveryError,
    EndReason, InboundAudio, ScreeningAction, Speaker,
};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::kb::{self, KnowledgeBase, NO_ANSWER};
use voice_node::ai::pool::InferencePool;
use voice_node::media::AudioChunk;
use voice_node::metrics::Metrics;

fn factory(db: Option<PgPool>) -> AiAgentFactory {
    AiAgentFactory::new(
        ai_support::models(),
        InferencePool::new(1),
        db,
        AiAgentConfig {
            voice: PromptVoice::Tone,
            ..AiAgentConfig::default()
        },
    )
}

fn call(mode: CallMode, tenant: &str) -> CallStarted {
    CallStarted {
        call_sid: "CA00000000000000000000000000000001".into(),
        stream_sid: "MZ00000000000000000000000000000001".into(),
        tenant_id: tenant.into(),
        mode,
        custom_parameters: BTreeMap::new(),
        clock: CallClock::starting_at(Instant::now()),
    }
}

/// Delivers mu-law as 20 ms frames (waiting when the agent lags), then `silence_ms` of silence.
async fn speak(agent: &AgentHandle, mulaw: &[u8], silence_ms: usize) {
    speak_paced(agent, mulaw, silence_ms, false).await;
}

/// Like [`speak`]; `real_time` paces frames every 20 ms as Twilio does, so latencies measured
/// from the end of speech are the ones a caller would get.
async fn speak_paced(agent: &AgentHandle, mulaw: &[u8], silence_ms: usize, real_time: bool) {
    let silence = vec![0xFFu8; silence_ms * 8];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in mulaw.chunks(160).chain(silence.chunks(160)) {
        if real_time {
            tick.tick().await;
        }
        let mut event = Some(frame);
        while let Some(f) = event {
            let audio = AgentEvent::Audio(InboundAudio {
                audio: AudioChunk::new(f),
                timestamp_ms: 0,
                received_at: Instant::now(),
            });
            match agent.deliver(audio) {
                Ok(()) => event = None,
                Err(DeliveryError::Lagging) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(DeliveryError::Gone) => panic!("agent gone"),
            }
        }
    }
}

/// Actions until `stop` matches one (or 60 s pass: first model load under a loaded machine).
async fn actions_until(
    agent: &mut AgentHandle,
    stop: impl Fn(&AgentAction) -> bool,
) -> Vec<AgentAction> {
    let mut seen = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            Some(a) = agent.actions.recv() => {
                let done = stop(&a);
                seen.push(a);
                if done { return seen; }
            }
            _ = &mut deadline => panic!("timed out; saw {seen:#?}"),
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(ai_support::fixtures().join("stt").join(name)).unwrap()
}

/// Starts the agent and acknowledges its greeting as played.
async fn started(factory: &AiAgentFactory, call: CallStarted) -> AgentHandle {
    let mut agent = factory.start(&call, Arc::new(Metrics::new()));
    agent.deliver(AgentEvent::Started(call)).unwrap();
    let greeting = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let Some(AgentAction::Say(u)) = greeting.last() else {
        unreachable!()
    };
    agent
        .deliver(AgentEvent::Played {
            id: u.id,
            interrupted: false,
        })
        .unwrap();
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screening_a_robocall_ends_it_and_records_the_verdict_and_timings() {
    let factory = factory(None);
    let mut agent = started(&factory, call(CallMode::Screening, "not-a-uuid")).await;
    speak_paced(&agent, &fixture("03.ulaw"), 900, true).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;

    let turn = seen
        .iter()
        .find_map(|a| match a {
            AgentAction::Turn(t) if t.speaker == Speaker::Caller => Some(t),
            _ => None,
        })
        .expect("caller turn");
    // "Congratulations, you have been selected for a free cruise, press one now."
    let heard = turn.text.to_lowercase();
    assert!(
        heard.contains("selected") && heard.contains("press one"),
        "{heard}"
    );
    let (end, stt) = (
        turn.timings.speech_end_ms.unwrap(),
        turn.timings.stt_final_ms.unwrap(),
    );
    assert!(stt >= end);
    println!("STT final {} ms after end of speech", stt - end);

    let verdict = seen
        .iter()
        .find_map(|a| match a {
            AgentAction::Screening(v) => Some(v),
            _ => None,
        })
        .expect("screening verdict");
    assert_eq!(verdict.label, ScreeningLabel::Spam);
    assert_eq!(verdict.action, Some(ScreeningAction::EndCall));

    let reply = seen
        .iter()
        .find_map(|a| match a {
            AgentAction::Say(u) => Some(u),
            _ => None,
        })
        .expect("a goodbye");
    let t = reply.timings;
    assert_eq!(t.speech_end_ms, Some(end));
    assert!(t.first_token_ms.unwrap() >= stt);
    assert!(t.first_tts_byte_ms.unwrap() >= t.first_token_ms.unwrap());
    println!(
        "reply text ready {} ms, first TTS audio {} ms after end of speech",
        t.first_token_ms.unwrap() - end,
        t.first_tts_byte_ms.unwrap() - end
    );
    assert!(matches!(
        seen.last(),
        Some(AgentAction::Hangup(CallOutcome::Rejected))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_speech_over_the_agent_interrupts_it() {
    let factory = factory(None);
    let call = call(CallMode::Receptionist, "not-a-uuid");
    let mut agent = factory.start(&call, Arc::new(Metrics::new()));
    agent.deliver(AgentEvent::Started(call)).unwrap();
    // The greeting is still playing (no `Played`): the caller talks over it.
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    assert_eq!(seen.len(), 1);
    speak(&agent, &fixture("05.ulaw")[..8000], 0).await;
    actions_until(&mut agent, |a| matches!(a, AgentAction::Interrupt)).await;
    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn receptionist_answers_from_the_tenants_kb_and_stores_embeddings(pool: PgPool) {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Acme Dental') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    for (q, a) in [
        (
            "What are your opening hours on Saturday?",
            "On Saturdays we are open from nine to one.",
        ),
        (
            "Where are you located?",
            "We are at 12 Main Street, next to the library.",
        ),
        (
            "Do you accept insurance?",
            "Yes, we accept most dental insurance plans.",
        ),
    ] {
        sqlx::query("INSERT INTO kb_entries (tenant_id, question, answer) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(q)
            .bind(a)
            .execute(&pool)
            .await
            .unwrap();
    }
    let factory = factory(Some(pool.clone()));
    let mut agent = started(&factory, call(CallMode::Receptionist, &tenant.to_string())).await;
    // "Hello, I would like to know what time you open on Saturday."
    speak(&agent, &fixture("02.ulaw"), 900).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let Some(AgentAction::Say(reply)) = seen.last() else {
        unreachable!()
    };
    assert!(
        reply
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with("On Saturdays we are open")),
        "{:?}",
        reply.text
    );

    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM kb_entries WHERE embedding_model = 'all-MiniLM-L6-v2' AND array_length(embedding, 1) = 384",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 3);
    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
}

#[tokio::test]
async fn kb_answers_paraphrases_and_declines_unrelated_questions() {
    let models = ai_support::models();
    let kb = KnowledgeBase::from_pairs(
        &models.embedder,
        &[
            (
                "What are your opening hours?",
                "We are open nine to five, Monday to Friday.",
            ),
            (
                "How much does a cleaning cost?",
                "A cleaning is eighty dollars.",
            ),
            (
                "Do you have parking?",
                "Yes, there is free parking behind the building.",
            ),
        ],
    )
    .unwrap();
    let ask = |q: &str| {
        let v = models.embedder.embed(q).unwrap();
        kb.answer(&v).map(|m| m.entry.answer.clone())
    };
    assert_eq!(
        ask("When are you open?").as_deref(),
        Some("We are open nine to five, Monday to Friday.")
    );
    assert_eq!(
        ask("what's the price of a teeth cleaning").as_deref(),
        Some("A cleaning is eighty dollars.")
    );
    assert_eq!(
        ask("Is there somewhere to park my car?").as_deref(),
        Some("Yes, there is free parking behind the building.")
    );
    assert_eq!(ask("Can you fix my car's transmission?"), None);
    assert_eq!(ask("I'd like to speak to Dr. Smith about my x-rays"), None);
    assert!(NO_ANSWER.contains("take a message"));
    let _ = kb::ANSWER_THRESHOLD;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn the_screening_verdict_is_stored_once_per_call(pool: PgPool) {
    use voice_node::agent::ScreeningVerdict;
    use voice_node::store::Write;
    use voice_node::store::writes::{CallStartedRow, ScreeningRow, apply};

    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Acme Dental') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    let sid = "CA00000000000000000000000000000042";
    let mut conn = pool.acquire().await.unwrap();
    apply(
        &mut conn,
        &Write::CallStarted(CallStartedRow {
            call_sid: sid.into(),
            tenant_id: tenant.to_string(),
            mode: CallMode::Screening,
            from_number: "+14155550123".into(),
            to_number: "+14155550100".into(),
            node_id: "test".into(),
            region: "local".into(),
            at: chrono::Utc::now(),
        }),
    )
    .await
    .unwrap();
    for (label, action) in [
        (ScreeningLabel::Unknown, ScreeningAction::TakeMessage),
        (ScreeningLabel::Spam, ScreeningAction::EndCall),
    ] {
        let write = Write::Screening(ScreeningRow {
            call_sid: sid.into(),
            verdict: ScreeningVerdict {
                label,
                intent: "prize scam".into(),
                confidence: 0.9,
                rationale: "rule: press one".into(),
                action: Some(action),
            },
        });
        assert_eq!(apply(&mut conn, &write).await.unwrap(), 1);
    }
    let (label, action, intent): (String, String, String) =
        sqlx::query_as("SELECT label, action, intent FROM screening_results")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (label.as_str(), action.as_str(), intent.as_str()),
        ("spam", "end_call", "prize scam")
    );
}

/// The fixture cut after its last loud frame (its trailing quiet would lengthen the pause).
fn fixture_speech(name: &str) -> Vec<u8> {
    let u = voice_node::simulate::caller_audio::Utterance::from_mulaw(name, fixture(name));
    u.audio[..(u.last_speech_frame + 1) * 160].to_vec()
}

/// A turn that ends normally is answered from the transcript started at its tentative end of
/// turn (before the stop hangover ran out), not from a second transcription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_transcript_answers_a_turn_that_really_ended() {
    let factory = factory(None);
    let mut agent = started(&factory, call(CallMode::Screening, "not-a-uuid")).await;
    speak_paced(&agent, &fixture_speech("03.ulaw"), 900, true).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;
    let heard = seen
        .iter()
        .find_map(|a| match a {
            AgentAction::Turn(t) if t.speaker == Speaker::Caller => Some(t.text.to_lowercase()),
            _ => None,
        })
        .expect("caller turn");
    assert!(heard.contains("press one"), "{heard}");
    // (A comma's pause may start and discard one before: only the last one counts.)
    let stats = factory.eager_stt_stats();
    assert_eq!(stats.used, 1, "{stats:?}");
    assert_eq!(stats.started, stats.used + stats.discarded, "{stats:?}");
}

/// A pause past the eager point but inside the stop hangover: the transcript started at the
/// pause misses what follows, so it is thrown away and the turn holds both parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_transcript_is_discarded_when_the_caller_goes_on() {
    let factory = factory(None);
    let mut agent = started(&factory, call(CallMode::Screening, "not-a-uuid")).await;
    // "Hi, this is Dana from Acme Dental …", 280 ms of silence, "… I need a refund."
    let mut audio = fixture_speech("01.ulaw");
    audio.extend(vec![0xFFu8; 14 * 160]);
    audio.extend(fixture_speech("06.ulaw"));
    speak_paced(&agent, &audio, 900, true).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Screening(_))).await;
    let turns: Vec<String> = seen
        .iter()
        .filter_map(|a| match a {
            AgentAction::Turn(t) if t.speaker == Speaker::Caller => Some(t.text.to_lowercase()),
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert!(
        turns[0].contains("dana") && turns[0].contains("refund"),
        "{turns:?}"
    );
    let stats = factory.eager_stt_stats();
    assert!(stats.discarded >= 1, "{stats:?}");
    assert_eq!(stats.used, 1, "{stats:?}");
    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
}
