//! The model's reply is spoken as it streams: its first clause reaches the caller while the
//! rest of the reply is still on its way (here: never comes), not after the whole reply.

mod ai_support;
mod provider_fakes;

use std::sync::Arc;
use std::time::Duration;

use provider_fakes::{Dg, FakeDeepgram, FakeHttp, Reply, chunk};
use shared::domain::CallMode;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, CallClock, CallStarted, InboundAudio,
};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::providers::ProviderSource;

async fn next_say(agent: &mut AgentHandle) -> voice_node::agent::Utterance {
    loop {
        let action = tokio::time::timeout(Duration::from_secs(20), agent.actions.recv())
            .await
            .expect("the agent spoke in time")
            .expect("the agent is running");
        if let AgentAction::Say(u) = action {
            return u;
        }
    }
}

#[tokio::test]
async fn the_first_clause_is_spoken_before_the_reply_finishes() {
    let deepgram = FakeDeepgram::start(vec![Dg::Transcribe(vec![
        "When are you open on Saturday?".into(),
    ])])
    .await;
    let llm = FakeHttp::start().await;
    // One sentence, the start of a second, then the stream stalls for good.
    llm.on(
        "/v1/chat/completions",
        vec![Reply::SseThenHang(vec![
            chunk(serde_json::json!({ "role": "assistant", "content": "" })),
            chunk(serde_json::json!({ "content": "On Saturdays we're open" })),
            chunk(serde_json::json!({ "content": " from ten to two. We also" })),
        ])],
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
        call_sid: "CA00000000000000000000000000000st1".into(),
        stream_sid: "MZ00000000000000000000000000000st1".into(),
        tenant_id: uuid::Uuid::new_v4().to_string(),
        mode: CallMode::Receptionist,
        custom_parameters: Default::default(),
        clock: CallClock::starting_at(tokio::time::Instant::now()),
    };
    let mut agent = factory.start(&call, Arc::new(voice_node::metrics::Metrics::new()));
    agent.deliver(AgentEvent::Started(call.clone())).unwrap();
    let greeting = next_say(&mut agent).await;
    agent
        .deliver(AgentEvent::Played {
            id: greeting.id,
            interrupted: false,
        })
        .unwrap();

    let mut audio = std::fs::read(ai_support::fixtures().join("stt/01.ulaw")).unwrap();
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
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = next_say(&mut agent).await;
    // The model's words: the stream never finished, so only streaming could have said them
    // (a failed model turn falls back to the offline "I'm not sure about that" reply).
    assert_eq!(
        first.text.as_deref(),
        Some("On Saturdays we're open from ten to two.")
    );
    let t = first.timings;
    let (end, token, audio) = (
        t.speech_end_ms.unwrap(),
        t.first_token_ms.unwrap(),
        t.first_tts_byte_ms.unwrap(),
    );
    assert!(token <= audio, "{t:?}");
    // Stop hangover (500 ms) plus local work, far from the model's total timeout.
    assert!(
        audio - end < 2_000,
        "first audio {} ms after speech",
        audio - end
    );
}
