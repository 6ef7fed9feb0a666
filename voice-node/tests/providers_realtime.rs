//! Speech to speech on OpenAI Realtime, against a local server speaking the Realtime event
//! protocol over a real WebSocket (`provider_fakes/realtime.rs`): a call through the agent seam
//! (session configuration, caller audio in, model audio out, transcripts as turns), barge-in
//! with truncation, a tool call driving a transfer, and the failures — a 401 on the upgrade, a
//! server that never says `session.created`, an `error` event, a drop mid-call — each of which
//! must leave the caller talking to someone.

mod ai_support;
mod node_support;
mod provider_fakes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node_support::{FromNode, NODE, SECRET, TwilioCall, bind, config, connect, tenant_with_number};
use provider_fakes::realtime::{FakeRealtime, Rt, RtConn, event};
use serde_json::{Value, json};
use shared::domain::{CallMode, CallOutcome};
use shared::stream_token::{StreamClaims, issue};
use sqlx::PgPool;
use uuid::Uuid;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, CallClock, CallStarted, EndReason,
    InboundAudio, Speaker, SpeechAudio, Utterance,
};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::api::seal::SealKey;
use voice_node::media::AudioChunk;
use voice_node::metrics::Metrics;
use voice_node::providers::realtime_openai::RealtimeAgentFactory;
use voice_node::providers::{ProviderSource, RetryPolicy};
use voice_node::server::{NodeState, app};

/// Short budgets so failure tests take well under a second each.
fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        first_byte: Duration::from_millis(400),
        total: Duration::from_secs(3),
    }
}

/// The cascaded agent (offline models, a tone instead of a voice) behind Realtime.
fn offline(db: Option<PgPool>) -> AiAgentFactory {
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

/// Providers from these variables (the node's environment).
fn env(vars: &[(&str, &str)]) -> ProviderSource {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ProviderSource::from_lookup(|k| map.get(k).cloned()).with_policy(fast_policy())
}

/// A factory whose calls go to `fake` (by the environment), falling back to the cascaded agent.
fn realtime_factory(fake: &FakeRealtime) -> RealtimeAgentFactory<AiAgentFactory> {
    let source = env(&[
        ("CALLGATE_REALTIME_URL", &fake.url),
        ("CALLGATE_REALTIME_API_KEY", "sk-realtime-test"),
        ("CALLGATE_REALTIME_MODEL", "gpt-realtime-test"),
    ]);
    RealtimeAgentFactory::new(offline(None), source, None)
}

fn call(sid: &str, tenant: Uuid, mode: CallMode) -> CallStarted {
    CallStarted {
        call_sid: sid.into(),
        stream_sid: format!("MZ{sid}"),
        tenant_id: tenant.to_string(),
        mode,
        custom_parameters: Default::default(),
        clock: CallClock::starting_at(tokio::time::Instant::now()),
    }
}

/// The agent's next action (10 s at most).
async fn next_action(agent: &mut AgentHandle) -> AgentAction {
    tokio::time::timeout(Duration::from_secs(10), agent.actions.recv())
        .await
        .expect("the agent acted in time")
        .expect("the agent is running")
}

/// Actions until `stop` matches one, which is returned last.
async fn actions_until(
    agent: &mut AgentHandle,
    stop: impl Fn(&AgentAction) -> bool,
) -> Vec<AgentAction> {
    let mut seen = Vec::new();
    loop {
        let action = next_action(agent).await;
        let done = stop(&action);
        seen.push(action);
        if done {
            return seen;
        }
    }
}

/// The next `Say`, skipping other actions.
async fn next_say(agent: &mut AgentHandle) -> Utterance {
    match actions_until(agent, |a| matches!(a, AgentAction::Say(_)))
        .await
        .pop()
    {
        Some(AgentAction::Say(u)) => u,
        _ => unreachable!(),
    }
}

/// Every chunk of a streamed utterance, until its sender is dropped.
async fn drain_stream(utterance: &mut Utterance) -> Vec<u8> {
    let SpeechAudio::Stream(rx) = &mut utterance.audio else {
        panic!("Realtime audio is streamed");
    };
    let mut audio = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(chunk)) => audio.extend(chunk),
            Ok(None) => return audio,
            Err(_) => panic!("the utterance's stream never ended ({} bytes)", audio.len()),
        }
    }
}

fn frame(byte: u8) -> AgentEvent {
    AgentEvent::Audio(InboundAudio {
        audio: AudioChunk::new(&[byte; 160]),
        timestamp_ms: 0,
        received_at: tokio::time::Instant::now(),
    })
}

/// Starts a call on `factory` and returns its agent with the server's side of the session,
/// past `session.update` and the greeting request.
async fn started(
    factory: &RealtimeAgentFactory<AiAgentFactory>,
    fake: &FakeRealtime,
    metrics: &Arc<Metrics>,
) -> (AgentHandle, RtConn, CallStarted, Value) {
    let call = call(
        "CA000000000000000000000000000000r1",
        Uuid::new_v4(),
        CallMode::Receptionist,
    );
    let agent = factory.start(&call, Arc::clone(metrics));
    agent.deliver(AgentEvent::Started(call.clone())).unwrap();
    let mut conn = fake.connection().await;
    let update = conn.next().await;
    assert_eq!(update["type"], "session.update", "{update}");
    let greeting = conn.next().await;
    assert_eq!(greeting["type"], "response.create", "{greeting}");
    assert!(
        greeting["response"]["instructions"]
            .as_str()
            .unwrap()
            .contains("How can I help you today?"),
        "{greeting}"
    );
    (agent, conn, call, update)
}

#[tokio::test]
async fn a_call_runs_on_realtime_with_phone_audio_both_ways_and_transcripts_as_turns() {
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let factory = realtime_factory(&fake);
    let metrics = Arc::new(Metrics::new());
    let (mut agent, mut conn, call, update) = started(&factory, &fake, &metrics).await;

    // The upgrade and the session configuration.
    assert_eq!(conn.authorization, "Bearer sk-realtime-test");
    assert_eq!(conn.beta, "realtime=v1");
    assert_eq!(conn.uri, "/v1/realtime?model=gpt-realtime-test");
    let session = &update["session"];
    assert_eq!(session["input_audio_format"], "g711_ulaw");
    assert_eq!(session["output_audio_format"], "g711_ulaw");
    assert_eq!(session["turn_detection"]["type"], "server_vad");
    assert_eq!(session["input_audio_transcription"]["model"], "whisper-1");
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["transfer_call", "end_call", "capture_lead"]);
    assert!(
        session["instructions"]
            .as_str()
            .unwrap()
            .contains("receptionist")
    );

    // Caller audio goes up as is, base64 of the mu-law frames.
    let mut sent = Vec::new();
    for i in 0..10u8 {
        agent.deliver(frame(0x10 + i)).unwrap();
        sent.extend([0x10 + i; 160]);
    }
    assert_eq!(conn.appended_audio(sent.len()).await, sent);

    // The caller asks, the model answers: its audio is one streamed utterance.
    conn.caller_said("item_user_1", 0, 180, "When are you open?");
    let answer_audio: Vec<u8> = (0..2400u32).map(|i| (i % 251) as u8).collect();
    conn.speak(
        "resp_1",
        "item_answer_1",
        &answer_audio,
        3,
        "We're open nine to five.",
    );
    let mut turns = Vec::new();
    let mut before = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let Some(AgentAction::Say(mut answer)) = before.pop() else {
        unreachable!()
    };
    turns.extend(before.into_iter().filter_map(|a| match a {
        AgentAction::Turn(t) => Some(t),
        _ => None,
    }));
    assert_eq!(
        answer.text, None,
        "the transcript is recorded as a turn, not at the first frame"
    );
    assert!(
        answer.timings.speech_end_ms.is_some(),
        "{:?}",
        answer.timings
    );
    assert!(answer.timings.first_token_ms.is_some());
    assert_eq!(drain_stream(&mut answer).await, answer_audio);
    let first_frame_ms = call.clock.now_ms();
    agent
        .deliver(AgentEvent::Playing {
            id: answer.id,
            first_frame_ms,
        })
        .unwrap();
    agent
        .deliver(AgentEvent::Played {
            id: answer.id,
            interrupted: false,
        })
        .unwrap();

    // Both sides of the exchange are transcript turns.
    while turns.len() < 2 {
        if let AgentAction::Turn(t) = next_action(&mut agent).await {
            turns.push(t);
        }
    }
    turns.sort_by_key(|t| t.speaker.as_str());
    assert_eq!(turns[0].speaker, Speaker::Agent);
    assert_eq!(turns[0].text, "We're open nine to five.");
    assert_eq!(turns[1].speaker, Speaker::Caller);
    assert_eq!(turns[1].text, "When are you open?");
    assert!(turns[1].timings.stt_final_ms.is_some());

    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
    let end = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;
    assert!(matches!(
        end.last(),
        Some(AgentAction::Hangup(CallOutcome::Completed))
    ));
    assert_eq!(metrics.provider_failures.get(), 0);
}

#[tokio::test]
async fn barge_in_stops_playback_and_truncates_the_item_to_what_was_heard() {
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let factory = realtime_factory(&fake);
    let metrics = Arc::new(Metrics::new());
    let (mut agent, mut conn, call, _) = started(&factory, &fake, &metrics).await;

    // A 2 s greeting starts playing.
    conn.speak(
        "resp_g",
        "item_greeting",
        &vec![0x55u8; 16_000],
        4,
        "Hello, thanks for calling.",
    );
    let mut greeting = next_say(&mut agent).await;
    assert_eq!(drain_stream(&mut greeting).await.len(), 16_000);
    agent
        .deliver(AgentEvent::Playing {
            id: greeting.id,
            first_frame_ms: call.clock.now_ms(),
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The caller talks over it.
    conn.speech_started("item_user_1", 400);
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Interrupt)).await;
    assert!(matches!(seen.last(), Some(AgentAction::Interrupt)));
    let truncate = conn.next_of("conversation.item.truncate").await;
    assert_eq!(truncate["item_id"], "item_greeting");
    assert_eq!(truncate["content_index"], 0);
    let heard = truncate["audio_end_ms"].as_u64().unwrap();
    eprintln!("barge-in: truncated at {heard} ms after ~500 ms of playback");
    assert!(
        (450..1_000).contains(&heard),
        "heard {heard} ms of a 2 s item after ~500 ms of playback"
    );
    agent
        .deliver(AgentEvent::Played {
            id: greeting.id,
            interrupted: true,
        })
        .unwrap();

    // An answer that was heard to the end is not truncated when the caller speaks again.
    conn.speak("resp_2", "item_answer", &vec![0x66u8; 800], 1, "Sure.");
    let mut answer = next_say(&mut agent).await;
    drain_stream(&mut answer).await;
    agent
        .deliver(AgentEvent::Playing {
            id: answer.id,
            first_frame_ms: call.clock.now_ms(),
        })
        .unwrap();
    agent
        .deliver(AgentEvent::Played {
            id: answer.id,
            interrupted: false,
        })
        .unwrap();
    conn.speech_started("item_user_2", 3_000);
    agent.deliver(frame(0x20)).unwrap();
    let next = conn.next().await;
    assert_eq!(
        next["type"], "input_audio_buffer.append",
        "no truncate for audio heard in full: {next}"
    );
    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
    let end = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;
    assert!(
        !end.iter().any(|a| matches!(a, AgentAction::Interrupt)),
        "{end:?}"
    );
}

#[tokio::test]
async fn an_error_event_mid_call_is_logged_and_the_call_goes_on() {
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let factory = realtime_factory(&fake);
    let metrics = Arc::new(Metrics::new());
    let (mut agent, conn, _, _) = started(&factory, &fake, &metrics).await;
    conn.send(event(
        "error",
        json!({ "error": { "type": "invalid_request_error", "code": "invalid_value",
                "message": "Invalid value for 'audio_end_ms'.", "param": "audio_end_ms", "event_id": "evt_1" } }),
    ));
    conn.speak("resp_1", "item_1", &vec![0x42u8; 1600], 2, "Still here.");
    let mut said = next_say(&mut agent).await;
    assert_eq!(drain_stream(&mut said).await.len(), 1600);
    agent.deliver(frame(0x30)).unwrap();
    agent
        .deliver(AgentEvent::Ended(EndReason::Stopped))
        .unwrap();
    let end = actions_until(&mut agent, |a| matches!(a, AgentAction::Hangup(_))).await;
    assert!(
        !end.iter().any(|a| matches!(a, AgentAction::Event(_))),
        "an error event is not a provider failure: {end:?}"
    );
    assert_eq!(metrics.provider_failures.get(), 0);
}

#[tokio::test]
async fn a_session_that_drops_mid_call_hands_the_caller_to_the_cascaded_agent() {
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let factory = realtime_factory(&fake);
    let metrics = Arc::new(Metrics::new());
    let (mut agent, conn, _, _) = started(&factory, &fake, &metrics).await;
    conn.close(1011, "internal server error");
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.deliver(frame(0xFF)).unwrap();
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Say(_))).await;
    let failure = seen
        .iter()
        .find_map(|a| match a {
            AgentAction::Event(e) => Some(e.clone()),
            _ => None,
        })
        .expect("the failure is recorded on the call");
    assert_eq!(failure.kind, "provider_failure");
    assert_eq!(failure.payload["provider"], "openai_realtime");
    assert_eq!(failure.payload["error_kind"], "closed");
    assert_eq!(failure.payload["fallback"], "offline");
    assert!(seen.iter().any(|a| matches!(a, AgentAction::Interrupt)));
    let Some(AgentAction::Say(greeting)) = seen.last() else {
        unreachable!()
    };
    assert!(
        greeting
            .text
            .as_deref()
            .is_some_and(|t| t.contains("How can I help")),
        "the offline agent took the call: {:?}",
        greeting.text
    );
    assert_eq!(metrics.provider_failures.get(), 1);
}

const TENANT_NUMBER: &str = "+14155550100";

/// A tenant whose `llm` row asks for Realtime at `fake`, with a Billing department.
async fn realtime_tenant(pool: &PgPool, seal: &SealKey, fake: &FakeRealtime) -> Uuid {
    let (tenant, _) = tenant_with_number(pool, TENANT_NUMBER, CallMode::Receptionist).await;
    sqlx::query(
        "INSERT INTO tenant_provider_settings (tenant_id, kind, provider, base_url, model, settings, api_key_encrypted)
         VALUES ($1, 'llm', 'openai', $2, 'gpt-realtime-tenant', '{\"realtime\": true, \"voice\": \"verse\"}', $3)",
    )
    .bind(tenant)
    .bind(&fake.api_base)
    .bind(seal.seal(tenant, "llm", "sk-tenant-realtime").unwrap())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO departments (tenant_id, name, transfer_to) VALUES ($1, 'Billing', '+14155550142')",
    )
    .bind(tenant)
    .execute(pool)
    .await
    .unwrap();
    tenant
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_tenant_row_selects_realtime_and_a_transfer_tool_call_transfers_the_call(pool: PgPool) {
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let seal = SealKey::from_config(None, b"seal for the realtime test");
    let tenant = realtime_tenant(&pool, &seal, &fake).await;
    // No Realtime in the environment: the tenant's row alone selects it.
    let source = ProviderSource::offline()
        .with_seal(seal)
        .with_policy(fast_policy());
    let factory =
        RealtimeAgentFactory::new(offline(Some(pool.clone())), source, Some(pool.clone()));
    let metrics = Arc::new(Metrics::new());
    let call = call(
        "CA000000000000000000000000000000r5",
        tenant,
        CallMode::Receptionist,
    );
    let mut agent = factory.start(&call, Arc::clone(&metrics));
    agent.deliver(AgentEvent::Started(call.clone())).unwrap();
    let mut conn = fake.connection().await;
    assert_eq!(conn.authorization, "Bearer sk-tenant-realtime");
    assert_eq!(conn.uri, "/v1/realtime?model=gpt-realtime-tenant");
    let update = conn.next_of("session.update").await;
    assert_eq!(update["session"]["voice"], "verse");
    assert!(
        update["session"]["instructions"]
            .as_str()
            .unwrap()
            .contains("Billing"),
        "{update}"
    );
    conn.next_of("response.create").await;

    // The model calls transfer_call: the flow resolves the department and words the hand-off.
    conn.function_call(
        "resp_t",
        "call_1",
        "transfer_call",
        r#"{"department":"billing"}"#,
    );
    let output = conn.next_of("conversation.item.create").await;
    assert_eq!(output["item"]["type"], "function_call_output");
    assert_eq!(output["item"]["call_id"], "call_1");
    let result: Value = serde_json::from_str(output["item"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(result["then"], "transfer");
    assert!(
        result["say"].as_str().unwrap().contains("Billing"),
        "{result}"
    );
    conn.next_of("response.create").await;
    // Nothing is transferred before the hand-off has been said.
    conn.speak(
        "resp_s",
        "item_hold",
        &vec![0x33u8; 1600],
        2,
        "Let me put you through to Billing.",
    );
    let seen = actions_until(&mut agent, |a| matches!(a, AgentAction::Transfer(_))).await;
    let say_at = seen
        .iter()
        .position(|a| matches!(a, AgentAction::Say(_)))
        .expect("the hand-off is spoken");
    let Some(AgentAction::Transfer(request)) = seen.last() else {
        unreachable!()
    };
    assert!(say_at < seen.len() - 1);
    assert_eq!(request.to, "+14155550142");
    assert_eq!(request.department, "Billing");
    assert_eq!(metrics.provider_failures.get(), 0);
}

/// The `provider_failure` events of `call_sid`, once at least one is there (15 s at most).
async fn failures(pool: &PgPool, call_sid: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows: Vec<Value> = sqlx::query_scalar(
            "SELECT e.payload FROM call_events e JOIN calls c ON c.id = e.call_id
              WHERE c.call_sid = $1 AND e.kind = 'provider_failure' ORDER BY e.created_at",
        )
        .bind(call_sid)
        .fetch_all(pool)
        .await
        .unwrap();
        if !rows.is_empty() || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node on real Postgres whose calls use Realtime at `fake` (environment), with the cascaded
/// agent behind it; returns a receptionist call placed on it and its node's state.
async fn node_call(
    pool: &PgPool,
    fake: &FakeRealtime,
    call_sid: &str,
) -> (TwilioCall, Arc<NodeState>) {
    let (tenant, _) = tenant_with_number(pool, TENANT_NUMBER, CallMode::Receptionist).await;
    let (listener, addr) = bind().await;
    let source = env(&[
        ("CALLGATE_REALTIME_URL", &fake.url),
        ("CALLGATE_REALTIME_API_KEY", "sk-realtime-test"),
    ]);
    let agents = RealtimeAgentFactory::new(offline(Some(pool.clone())), source, Some(pool.clone()));
    let state = NodeState::new(config(addr, &[]), pool.clone(), Arc::new(agents));
    let router = app(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let token = issue(
        &StreamClaims {
            call_sid: call_sid.to_owned(),
            tenant_id: tenant.to_string(),
            node_id: NODE.to_owned(),
            mode: CallMode::Receptionist,
            expires_at: node_support::now_unix() + 120,
        },
        SECRET.as_bytes(),
    );
    let ws = connect(
        addr,
        &format!("/media/{NODE}"),
        Some(node_support::AUTH_TOKEN),
    )
    .await
    .expect("signed handshake accepted");
    (TwilioCall::start_on(ws, call_sid, Some(token)).await, state)
}

/// The node's next utterance, played through and acknowledged as Twilio does; its frames.
async fn hear_and_ack(call: &mut TwilioCall) -> usize {
    let (frames, next) = call.frames_until_other().await;
    match next {
        FromNode::Mark(name) => call.mark(&name).await,
        other => panic!("expected the utterance's mark, got {other:?}"),
    }
    frames
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_rejected_key_falls_back_to_the_offline_pipeline_and_is_recorded(pool: PgPool) {
    const SID: &str = "CA000000000000000000000000000000r6";
    let fake = FakeRealtime::start(vec![Rt::Reject(401)]).await;
    let (mut call, state) = node_call(&pool, &fake, SID).await;
    let t0 = Instant::now();
    assert!(
        hear_and_ack(&mut call).await > 10,
        "the offline agent greeted"
    );
    eprintln!("401: offline greeting after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let rows = failures(&pool, SID).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["provider"], "openai_realtime");
    assert_eq!(rows[0]["error_kind"], "status");
    assert!(
        rows[0]["error"].as_str().unwrap().contains("401"),
        "{rows:#?}"
    );
    assert_eq!(rows[0]["fallback"], "offline");
    assert!(
        !serde_json::to_string(&rows)
            .unwrap()
            .contains("sk-realtime-test")
    );
    // 401 is not retried.
    assert_eq!(fake.attempts.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(
        state
            .metrics
            .render()
            .contains("callgate_provider_failures_total 1")
    );
    call.stop().await;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_server_silent_before_session_created_falls_back_within_the_deadline(pool: PgPool) {
    const SID: &str = "CA000000000000000000000000000000r7";
    let fake = FakeRealtime::start(vec![Rt::HangBeforeSession]).await;
    let (mut call, _state) = node_call(&pool, &fake, SID).await;
    let t0 = Instant::now();
    assert!(
        hear_and_ack(&mut call).await > 10,
        "the offline agent greeted"
    );
    let waited = t0.elapsed();
    eprintln!("silent server: offline greeting after {waited:?}");
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "fell back after {waited:?} (session.created deadline 400 ms)"
    );
    let rows = failures(&pool, SID).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["provider"], "openai_realtime");
    assert_eq!(rows[0]["error_kind"], "first_byte_timeout");
    call.stop().await;
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_twilio_call_on_realtime_plays_the_model_and_stores_its_transcript(pool: PgPool) {
    const SID: &str = "CA000000000000000000000000000000r8";
    let fake = FakeRealtime::start(vec![Rt::Serve]).await;
    let (mut call, state) = node_call(&pool, &fake, SID).await;
    let mut conn = fake.connection().await;
    conn.next_of("response.create").await;
    // 1 s of the model's greeting reaches Twilio as 50 frames and a mark.
    conn.speak(
        "resp_g",
        "item_g",
        &vec![0x55u8; 8_000],
        4,
        "Hello, how can I help?",
    );
    assert_eq!(hear_and_ack(&mut call).await, 50);
    // The caller's audio reaches the model.
    call.media(0x90).await;
    let audio = conn.appended_audio(160).await;
    assert_eq!(&audio[..160], &[0x90u8; 160][..]);
    conn.caller_said("item_u1", 0, 400, "Do you take walk-ins?");
    let deadline = Instant::now() + Duration::from_secs(10);
    let turns = loop {
        let turns: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.speaker, t.text FROM transcript_turns t JOIN calls c ON c.id = t.call_id
              WHERE c.call_sid = $1 ORDER BY t.seq",
        )
        .bind(SID)
        .fetch_all(&pool)
        .await
        .unwrap();
        if turns.len() >= 2 || Instant::now() > deadline {
            break turns;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // One row per turn, with the model's words (no empty row for the utterance itself).
    assert_eq!(
        turns,
        vec![
            ("agent".to_owned(), "Hello, how can I help?".to_owned()),
            ("caller".to_owned(), "Do you take walk-ins?".to_owned()),
        ]
    );
    assert!(
        state
            .metrics
            .render()
            .contains("callgate_provider_failures_total 0"),
        "no fallback"
    );
    call.stop().await;
}
