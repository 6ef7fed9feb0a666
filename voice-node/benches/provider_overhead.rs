//! The node's own latency per turn with cloud providers, at 200 concurrent calls.
//!
//! Each simulated call runs the real AI agent ([`AiAgentFactory`] with cloud STT, LLM and TTS)
//! fed 20 ms mu-law frames at Twilio's pace: one second of speech, then silence. The providers
//! are local fakes speaking the real protocols (Deepgram WebSocket, SSE chat completions,
//! ElevenLabs `ulaw_8000`), each answering after a fixed latency, on their own thread and
//! runtime. Per turn it measures the time from the frame that completes the VAD's stop
//! hangover to the agent's first audio (`Say`), and subtracts the three providers' fixed
//! latencies: what is left is what the node adds (client work, JSON/SSE parsing, the agent,
//! scheduling under load).
//!
//! `cargo bench -p voice-node --bench provider_overhead` (models from `CALLGATE_MODELS_DIR`
//! or `~/.cache/callgate/models`). `CALLS`, `TURNS` and `LATENCY_MS` override the defaults.

#[path = "../tests/ai_support/mod.rs"]
mod ai_support;
#[path = "../tests/provider_fakes/mod.rs"]
mod provider_fakes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use provider_fakes::{Dg, FakeDeepgram, FakeHttp, Reply, chunk};
use serde_json::json;
use shared::domain::CallMode;
use tokio::time::Instant;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, CallClock, CallStarted, InboundAudio,
};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::media::AudioChunk;
use voice_node::metrics::Metrics;
use voice_node::providers::ProviderSource;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the three fake providers on their own runtime (so their work is not billed to the
/// node's), returning their base URLs.
fn start_fakes(latency: Duration) -> (String, String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let deepgram = FakeDeepgram::start_with_latency(
                vec![Dg::Transcribe(vec!["When do you open?".into()])],
                latency,
            )
            .await;
            let llm = FakeHttp::start().await;
            // The whole SSE stream in one write, after the fixed latency.
            let stream = [
                chunk(json!({ "role": "assistant", "content": "" })),
                chunk(json!({ "content": "We open at nine" })),
                chunk(json!({ "content": " on weekdays." })),
                "data: [DONE]\n\n".to_owned(),
            ]
            .concat();
            llm.on(
                "/v1/chat/completions",
                vec![Reply::Delayed(latency, Box::new(Reply::Sse(vec![stream])))],
            )
            .await;
            let tts = FakeHttp::start().await;
            tts.on(
                "/v1/text-to-speech/bench/stream",
                vec![Reply::Delayed(
                    latency,
                    Box::new(Reply::Bytes(vec![vec![0x7F; 1600]])),
                )],
            )
            .await;
            tx.send((deepgram.base.clone(), llm.base.clone(), tts.base.clone()))
                .unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Frame `i` of the recorded speech, or silence.
fn frame(speech: &[u8], loud: bool, i: usize) -> AudioChunk {
    let mut bytes = vec![0xFFu8; 160];
    if loud && let Some(part) = speech.chunks(160).nth(i) {
        bytes[..part.len()].copy_from_slice(part);
    }
    AudioChunk::new(&bytes)
}

/// One call: greeting, then `turns` question/answer turns; returns each turn's latency in ms.
async fn run_call(
    speech: Arc<Vec<u8>>,
    factory: Arc<AiAgentFactory>,
    n: usize,
    turns: usize,
    stop_frames: usize,
) -> Vec<f64> {
    let call = CallStarted {
        call_sid: format!("CA{n:032}"),
        stream_sid: format!("MZ{n:032}"),
        tenant_id: "bench".into(),
        mode: CallMode::Receptionist,
        custom_parameters: BTreeMap::new(),
        clock: CallClock::starting_at(Instant::now()),
    };
    let mut agent: AgentHandle = factory.start(&call, Arc::new(Metrics::new()));
    let _ = agent.deliver(AgentEvent::Started(call.clone()));
    let speech_frames = speech.len().div_ceil(160);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut t = 0;
    let mut latencies = Vec::new();
    // The greeting (its Say) first.
    let mut turn = 0;
    let mut phase_frames = 0usize;
    let mut waiting_since: Option<Instant> = None;
    let mut greeted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                t += 1;
                // The recorded speech, then silence until the answer starts.
                let loud = greeted && waiting_since.is_none() && phase_frames < speech_frames;
                let chunk = frame(&speech, loud, phase_frames);
                let _ = agent.deliver(AgentEvent::Audio(InboundAudio {
                    audio: chunk,
                    timestamp_ms: (t * 20) as u64,
                    received_at: Instant::now(),
                }));
                if greeted && waiting_since.is_none() {
                    phase_frames += 1;
                    if phase_frames == speech_frames + stop_frames {
                        waiting_since = Some(Instant::now());
                    }
                }
            }
            action = agent.actions.recv() => match action {
                Some(AgentAction::Say(utterance)) => {
                    let id = utterance.id;
                    drop(utterance);
                    let _ = agent.deliver(AgentEvent::Played { id, interrupted: false });
                    if !greeted {
                        greeted = true;
                    } else if let Some(since) = waiting_since.take() {
                        latencies.push(since.elapsed().as_secs_f64() * 1000.0);
                        turn += 1;
                        phase_frames = 0;
                        if turn == turns {
                            break;
                        }
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    let _ = agent.deliver(AgentEvent::Ended(voice_node::agent::EndReason::Stopped));
    latencies
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let calls = env_or("CALLS", 200);
    let turns = env_or("TURNS", 4);
    let latency = Duration::from_millis(env_or("LATENCY_MS", 200) as u64);
    let (deepgram, llm, tts) = start_fakes(latency);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let vars: BTreeMap<&str, String> = [
            ("CALLGATE_STT_PROVIDER", "deepgram".to_owned()),
            ("CALLGATE_STT_BASE_URL", deepgram),
            ("CALLGATE_STT_API_KEY", "dg".to_owned()),
            ("CALLGATE_LLM_PROVIDER", "openai".to_owned()),
            ("CALLGATE_LLM_BASE_URL", format!("{llm}/v1")),
            ("CALLGATE_TTS_PROVIDER", "elevenlabs".to_owned()),
            ("CALLGATE_TTS_BASE_URL", tts),
            ("CALLGATE_TTS_API_KEY", "xi".to_owned()),
            ("CALLGATE_TTS_VOICE", "bench".to_owned()),
        ]
        .into_iter()
        .collect();
        let source = ProviderSource::from_lookup(|k| vars.get(k).cloned());
        let config = AiAgentConfig {
            voice: PromptVoice::Tone,
            ..AiAgentConfig::default()
        };
        let stop_frames = config.vad.stop_frames as usize;
        let factory = Arc::new(
            AiAgentFactory::new(ai_support::models(), InferencePool::new(1), None, config)
                .with_providers(source),
        );
        // Real speech: the VAD may be Silero, which does not take a tone for a voice.
        let speech = Arc::new(std::fs::read(ai_support::fixtures().join("stt/01.ulaw")).unwrap());
        let started = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..calls {
            let factory = Arc::clone(&factory);
            let speech = Arc::clone(&speech);
            // Calls arrive over one second, not in lockstep.
            let offset = Duration::from_micros((n as u64 * 1_000_000) / calls.max(1) as u64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                run_call(speech, factory, n, turns, stop_frames).await
            }));
        }
        let mut turn_ms = Vec::new();
        for task in tasks {
            turn_ms.extend(task.await.unwrap());
        }
        let fixed = latency.as_secs_f64() * 1000.0 * 3.0;
        let mut added: Vec<f64> = turn_ms.iter().map(|ms| ms - fixed).collect();
        added.sort_by(f64::total_cmp);
        let mut total = turn_ms.clone();
        total.sort_by(f64::total_cmp);
        println!(
            "provider_overhead: {calls} concurrent calls, {} turns, providers' fixed latency {} ms × 3 (STT, LLM, TTS), {:.1} s",
            added.len(),
            latency.as_millis(),
            started.elapsed().as_secs_f64()
        );
        println!(
            "  turn (end of caller speech → first agent audio): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&total, 0.5),
            percentile(&total, 0.99)
        );
        println!(
            "  node's own added latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 20 ms)",
            percentile(&added, 0.5),
            percentile(&added, 0.99),
            added.last().copied().unwrap_or_default()
        );
    });
}
