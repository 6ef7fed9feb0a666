//! The fallback chain end to end: a node on real Postgres whose tenant configured cloud
//! providers (sealed keys in `tenant_provider_settings`) served by local fakes — Deepgram
//! answering, the LLM hanging, ElevenLabs failing with 500 — takes a Twilio call: the call
//! carries on with the offline models, each failure is a `provider_failure` call event and a
//! `/metrics` count, and a failed provider is not asked again during the call.

mod ai_support;
mod node_support;
mod provider_fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use node_support::{FromNode, TwilioCall, bind, config, tenant_with_number};
use provider_fakes::{Dg, FakeDeepgram, FakeHttp, Reply};
use serde_json::Value;
use shared::domain::CallMode;
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::api::seal::SealKey;
use voice_node::providers::{ProviderSource, RetryPolicy};
use voice_node::server::{NodeState, app};

const CALL_SID: &str = "CA00000000000000000000000000000fb1";

async fn provider_row(
    pool: &PgPool,
    seal: &SealKey,
    tenant: Uuid,
    kind: &str,
    provider: &str,
    base_url: &str,
    key: &str,
) {
    sqlx::query(
        "INSERT INTO tenant_provider_settings (tenant_id, kind, provider, base_url, settings, api_key_encrypted)
         VALUES ($1, $2, $3, $4, '{\"voice\": \"voice123\"}', $5)",
    )
    .bind(tenant)
    .bind(kind)
    .bind(provider)
    .bind(base_url)
    .bind(seal.seal(tenant, kind, key).unwrap())
    .execute(pool)
    .await
    .unwrap();
}

/// The `provider_failure` events of the call, once at least `n` are there (15 s at most).
async fn failures(pool: &PgPool, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows: Vec<Value> = sqlx::query_scalar(
            "SELECT e.payload FROM call_events e JOIN calls c ON c.id = e.call_id
              WHERE c.call_sid = $1 AND e.kind = 'provider_failure' ORDER BY e.created_at",
        )
        .bind(CALL_SID)
        .fetch_all(pool)
        .await
        .unwrap();
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Plays the node's next utterance through and acknowledges its mark, as Twilio does.
async fn hear_and_ack(call: &mut TwilioCall) -> usize {
    let (frames, next) = call.frames_until_other().await;
    match next {
        FromNode::Mark(name) => call.mark(&name).await,
        other => panic!("expected the utterance's mark, got {other:?}"),
    }
    frames
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn provider_outages_degrade_the_call_to_offline_and_are_recorded(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let deepgram = FakeDeepgram::start(vec![Dg::Transcribe(vec![
        "Hi, this is Ann from Doctor Smith's office,".into(),
        "calling to confirm your appointment tomorrow at ten.".into(),
    ])])
    .await;
    let llm = FakeHttp::start().await;
    llm.on("/v1/chat/completions", vec![Reply::Hang]).await;
    let tts = FakeHttp::start().await;
    tts.on(
        "/v1/text-to-speech/voice123/stream",
        vec![Reply::Status(500, "internal".into())],
    )
    .await;

    let (listener, addr) = bind().await;
    let config = config(addr, &[]);
    let seal = SealKey::from_config(None, &config.edge_shared_secret);
    provider_row(
        &pool,
        &seal,
        tenant,
        "stt",
        "deepgram",
        &deepgram.base.replace("ws://", "http://"),
        "dg-tenant-key",
    )
    .await;
    provider_row(
        &pool,
        &seal,
        tenant,
        "llm",
        "openai",
        &format!("{}/v1", llm.base),
        "sk-tenant",
    )
    .await;
    provider_row(
        &pool,
        &seal,
        tenant,
        "tts",
        "elevenlabs",
        &tts.base,
        "xi-tenant",
    )
    .await;

    let source = ProviderSource::offline()
        .with_seal(seal)
        .with_policy(RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            first_byte: Duration::from_millis(400),
            total: Duration::from_secs(3),
        });
    let agents = AiAgentFactory::new(
        ai_support::models(),
        InferencePool::new(1),
        Some(pool.clone()),
        AiAgentConfig {
            voice: PromptVoice::Tone,
            ..AiAgentConfig::default()
        },
    )
    .with_providers(source);
    let state = NodeState::new(config, pool.clone(), Arc::new(agents));
    let router = app(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut call = TwilioCall::start(addr, tenant, CALL_SID).await;
    // The greeting: ElevenLabs fails (500, retried twice), the offline voice speaks instead.
    assert!(
        hear_and_ack(&mut call).await > 10,
        "the greeting was spoken offline"
    );

    // The caller introduces themselves: Deepgram transcribes, the LLM hangs, the offline
    // classifier screens, and the agent answers without waiting on the hung model for long.
    // Real speech (the VAD may be Silero, which ignores tones); Deepgram's fake answers its own
    // transcript.
    let speech = speech();
    call.say_audio(&speech, 700).await;
    let t0 = Instant::now();
    assert!(hear_and_ack(&mut call).await > 10, "the agent answered");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "answer took {:?}: the hung model held the call up",
        t0.elapsed()
    );

    let rows = failures(&pool, 2).await;
    let stages: Vec<&str> = rows.iter().map(|r| r["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, vec!["tts", "screening"], "{rows:#?}");
    assert_eq!(rows[0]["provider"], "elevenlabs");
    assert_eq!(rows[0]["error_kind"], "status");
    assert!(
        rows[0]["error"].as_str().unwrap().contains("500"),
        "{rows:#?}"
    );
    assert_eq!(rows[1]["error_kind"], "first_byte_timeout");
    assert!(rows.iter().all(|r| r["fallback"] == "offline"));
    // No key ever lands in an event.
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains("tenant-key") && !text.contains("sk-tenant"));

    // The call used the working provider with the tenant's unsealed key, and the offline
    // classifier's verdict on Deepgram's transcript was stored.
    let dg = deepgram.seen(1).await;
    assert_eq!(dg[0].authorization, "Token dg-tenant-key");
    assert!(dg[0].audio_bytes >= speech.len() / 2, "{dg:?}");
    let turn: String = sqlx::query_scalar(
        "SELECT t.text FROM transcript_turns t JOIN calls c ON c.id = t.call_id
          WHERE c.call_sid = $1 AND t.speaker = 'caller' ORDER BY t.seq LIMIT 1",
    )
    .bind(CALL_SID)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(turn.starts_with("Hi, this is Ann"), "{turn}");
    let label: String = sqlx::query_scalar(
        "SELECT s.label FROM screening_results s JOIN calls c ON c.id = s.call_id WHERE c.call_sid = $1",
    )
    .bind(CALL_SID)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(label, "legit");

    // A failed provider is not asked again during the call: three ElevenLabs attempts for the
    // greeting (one try, two retries), none for the answer; one LLM request.
    assert_eq!(tts.seen().await.len(), 3);
    assert_eq!(llm.seen().await.len(), 1);
    let metrics = state.metrics.render();
    assert!(
        metrics.contains("callgate_provider_failures_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callgate_provider_retries_total 2"),
        "{metrics}"
    );
    call.stop().await;
}

/// Actions until `stop` matches one (20 s at most).
async fn actions_until(
    agent: &mut voice_node::agent::AgentHandle,
    stop: impl Fn(&voice_node::agent::AgentAction) -> bool,
) -> Vec<voice_node::agent::AgentAction> {
    let mut seen = Vec::new();
    loop {
        let action = tokio::time::timeout(Duration::from_secs(20), agent.actions.recv())
            .await
            .expect("the agent acted in time")
            .expect("the agent is running");
        let done = stop(&action);
        seen.push(action);
        if done {
            return seen;
        }
    }
}

/// A committed recording of real speech, 8 kHz mu-law.
fn speech() -> Vec<u8> {
    std::fs::read(ai_support::fixtures().join("stt/01.ulaw")).unwrap()
}

/// One caller utterance (real speech, then silence past the VAD's stop hangover), paced.
async fn utterance(agent: &voice_node::agent::AgentHandle) {
    use voice_node::agent::{AgentEvent, InboundAudio};
    let mut audio = speech();
    audio.extend(vec![0xFFu8; 8 * 800]);
    for (t, frame) in audio.chunks(160).enumerate() {
        let mut frame = frame.to_vec();
        frame.resize(160, 0xFF);
        agent
            .deliver(AgentEvent::Audio(InboundAudio {
                audio: voice_node::media::AudioChunk::new(&frame),
                timestamp_ms: (t * 20) as u64,
                received_at: tokio::time::Instant::now(),
            }))
            .expect("the agent keeps up with 20 ms frames");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_model_words_receptionist_answers_and_its_tool_calls_drive_the_flow() {
    use provider_fakes::{chunk, text_reply};
    use voice_node::agent::{AgentAction, AgentEvent, AgentFactory, CallClock, CallStarted};

    let deepgram = FakeDeepgram::start(vec![
        Dg::Transcribe(vec!["When are you open on Saturday?".into()]),
        Dg::Transcribe(vec!["Great, that's everything.".into()]),
    ])
    .await;
    let llm = FakeHttp::start().await;
    let end_call = vec![
        chunk(
            serde_json::json!({ "tool_calls": [{ "index": 0, "id": "c1", "type": "function",
            "function": { "name": "end_call", "arguments": "{\"reason\":" } }] }),
        ),
        chunk(serde_json::json!({ "tool_calls": [{ "index": 0,
            "function": { "arguments": " \"caller is done\"}" } }] })),
        "data: [DONE]\n\n".to_owned(),
    ];
    llm.on(
        "/v1/chat/completions",
        vec![
            text_reply("On Saturdays we're open from ten to two."),
            Reply::Sse(end_call),
        ],
    )
    .await;
    let vars: std::collections::BTreeMap<&str, String> = [
        ("CALLGATE_STT_PROVIDER", "deepgram".to_owned()),
        ("CALLGATE_STT_BASE_URL", deepgram.base.clone()),
        ("CALLGATE_STT_API_KEY", "dg".to_owned()),
        ("CALLGATE_LLM_PROVIDER", "openai".to_owned()),
        ("CALLGATE_LLM_BASE_URL", format!("{}/v1", llm.base)),
    ]
    .into_iter()
    .collect();
    let factory = AiAgentFactory::new(
        ai_support::models(),
        InferencePool::new(1),
        None,
        AiAgentConfig {
            voice: PromptVoice::Tone,
            ..AiAgentConfig::default()
        },
    )
    .with_providers(ProviderSource::from_lookup(|k| vars.get(k).cloned()));
    let call = CallStarted {
        call_sid: "CA00000000000000000000000000000fb2".into(),
        stream_sid: "MZ00000000000000000000000000000fb2".into(),
        tenant_id: Uuid::new_v4().to_string(),
        mode: CallMode::Receptionist,
        custom_parameters: Default::default(),
        clock: CallClock::starting_at(tokio::time::Instant::now()),
    };
    let metrics = Arc::new(voice_node::metrics::Metrics::new());
    let mut agent = factory.start(&call, Arc::clone(&metrics));
    agent.deliver(AgentEvent::Started(call.clone())).unwrap();
    let greeting = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let Some(AgentAction::Say(greeting)) = greeting.into_iter().last() else {
        unreachable!()
    };
    agent
        .deliver(AgentEvent::Played {
            id: greeting.id,
            interrupted: false,
        })
        .unwrap();

    // A question: Deepgram's transcript goes to the model, whose answer is spoken.
    utterance(&agent).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let caller = seen.iter().find_map(|a| match a {
        AgentAction::Turn(t) => Some(t.text.clone()),
        _ => None,
    });
    assert_eq!(caller.as_deref(), Some("When are you open on Saturday?"));
    let Some(AgentAction::Say(answer)) = seen.into_iter().last() else {
        unreachable!()
    };
    assert!(
        answer
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with("On Saturdays we're open from ten to two.")),
        "{:?}",
        answer.text
    );
    agent
        .deliver(AgentEvent::Played {
            id: answer.id,
            interrupted: false,
        })
        .unwrap();
    let request = &llm.seen().await[0].body;
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(
        messages.last().unwrap()["content"],
        "When are you open on Saturday?"
    );
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("Knowledge-base context:"),
        "{request}"
    );

    // The caller is done: the model calls `end_call`, the flow says goodbye and hangs up.
    utterance(&agent).await;
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;
    assert!(
        seen.iter()
            .any(|a| matches!(a, AgentAction::Say(u) if u.text.as_deref().is_some_and(|t| t.contains("Goodbye")))),
        "{seen:?}"
    );
    // The second request carried the conversation so far.
    let second = &llm.seen().await[1].body;
    let history: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(
        history.contains(&"On Saturdays we're open from ten to two."),
        "{history:?}"
    );
    assert_eq!(metrics.provider_failures.get(), 0);
}
