//! The node's own latency per turn with cloud providers, at 200 concurrent calls.
//!
//! Each simulated call runs the real AI agent ([`AiAgentFactory`] with cloud STT, LLM and TTS,
//! Silero VAD when installed) fed 20 ms mu-law frames at Twilio's pace: a recorded sentence,
//! then silence until the answer, four times. The providers are local fakes speaking the real
//! protocols (Deepgram WebSocket, SSE chat completions, ElevenLabs `ulaw_8000`), each answering
//! after a fixed latency, on their own thread and runtime. Per turn it measures the time from
//! the frame that completes the VAD's stop hangover (the agent's last voiced frame, from the
//! turn's timings, plus the hangover) to the agent's first audio (`Say`), and subtracts the
//! three providers' fixed latencies: what is left is what the node adds (VAD, client work,
//! JSON/SSE parsing, the agent, scheduling under load). It also prints that time per stage,
//! the process's CPU and Silero's work (windows run, batch size, windows gated as silence).
//!
//! Measured 2026-11-21 on the 2-core dev VM, load average 1.8: 200 calls, 800 turns, added
//! p50 5 ms, p99 8 ms, max 47 ms (each stage ≤ 4 ms at p99); process CPU 43 % of a core, of
//! which Silero 26 % (mean batch 4.3, 34 % of windows gated). Before Silero moved off the
//! runtime workers (inline per frame, behind mutexed sessions): p99 4,105 ms.
//!
//! `CALLS=200 cargo bench -p voice-node --bench provider_overhead` (models from
//! `CALLGATE_MODELS_DIR` or `~/.cache/callgate/models`). `CALLS`, `TURNS` (per call) and
//! `LATENCY_MS` override the defaults; `RUST_LOG=voice_node=debug` shows the node's logs.

#[path = "../tests/ai_support/mod.rs"]
mod ai_support;
#[path = "../tests/provider_fakes/mod.rs"]
mod provider_fakes;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use provider_fakes::{Dg, FakeDeepgram, FakeHttp, Reply, chunk};
use serde_json::json;
use shared::domain::CallMode;
use support::{
    env_or, full_run, init_logging, load_average, percentile, process_cpu_seconds, runtime, sorted,
    start_call,
};
use tokio::time::Instant;
use voice_node::agent::greeting_recorder::PromptVoice;
use voice_node::agent::{AgentAction, AgentEvent, InboundAudio};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::pool::InferencePool;
use voice_node::media::AudioChunk;
use voice_node::providers::ProviderSource;

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

/// One answered turn, in ms.
#[derive(Debug, Clone, Copy)]
struct TurnMs {
    /// The frame that completed the stop hangover (last voiced frame + `stop_frames`) → the
    /// agent's first audio (`Say`).
    total: f64,
    /// Hangover complete → transcript final (the STT provider's latency plus its client).
    stt: f64,
    /// Transcript final → the reply's first token (KB lookup, the LLM's latency, its client).
    llm: f64,
    /// First token → first synthesized audio (the TTS provider's latency, its client).
    tts: f64,
    /// First audio → the `Say` seen by the session side (the agent's queue).
    say: f64,
}

/// One call: greeting, then `turns` question/answer turns; returns each turn's latencies.
async fn run_call(
    speech: Arc<Vec<u8>>,
    factory: Arc<AiAgentFactory>,
    n: usize,
    turns: usize,
    stop_frames: usize,
) -> Vec<TurnMs> {
    let (call, mut agent) = start_call(factory.as_ref(), n, CallMode::Receptionist);
    let speech_frames = speech.len().div_ceil(160);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut t = 0;
    let mut latencies = Vec::new();
    // The greeting (its Say) first.
    let mut turn = 0;
    let mut phase_frames = 0usize;
    // Speech and the stop hangover were sent: silence until the answer.
    let mut waiting = false;
    let mut greeted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                t += 1;
                // The recorded speech, then silence until the answer starts.
                let loud = greeted && !waiting && phase_frames < speech_frames;
                let chunk = frame(&speech, loud, phase_frames);
                let _ = agent.deliver(AgentEvent::Audio(InboundAudio {
                    audio: chunk,
                    timestamp_ms: (t * 20) as u64,
                    received_at: Instant::now(),
                }));
                if greeted && !waiting {
                    phase_frames += 1;
                    if phase_frames == speech_frames + stop_frames {
                        waiting = true;
                    }
                }
            }
            action = agent.actions.recv() => match action {
                Some(AgentAction::Say(utterance)) => {
                    let id = utterance.id;
                    let timings = utterance.timings;
                    drop(utterance);
                    let _ = agent.deliver(AgentEvent::Played { id, interrupted: false });
                    let said_ms = call.clock.now_ms();
                    if !greeted {
                        greeted = true;
                    } else if let Some(end) = timings.speech_end_ms {
                        // Measured from where the VAD really ended the turn (the agent's last
                        // voiced frame + the stop hangover), not from where the recording
                        // ends: its trailing quiet and the detector's tail move that point.
                        waiting = false;
                        let hangover_done = f64::from(end + stop_frames as u32 * 20);
                        let at = |ms: Option<u32>| ms.map_or(f64::from(said_ms), f64::from);
                        let (stt, token, tts) = (
                            at(timings.stt_final_ms),
                            at(timings.first_token_ms),
                            at(timings.first_tts_byte_ms),
                        );
                        latencies.push(TurnMs {
                            total: f64::from(said_ms) - hangover_done,
                            stt: stt - hangover_done,
                            llm: token - stt,
                            tts: tts - token,
                            say: f64::from(said_ms) - tts,
                        });
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

fn main() {
    init_logging();
    // Without `--bench`: a smoke run of a few calls (see `support::full_run`; the full run
    // takes 35 s quiet and 15 min in a debug build on a busy machine).
    let full = full_run();
    let calls = env_or("CALLS", if full { 200 } else { 4 });
    let turns = env_or("TURNS", if full { 4 } else { 2 });
    let latency = Duration::from_millis(env_or("LATENCY_MS", 200) as u64);
    let (deepgram, llm, tts) = start_fakes(latency);
    runtime().block_on(async move {
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
        let models = ai_support::models();
        let factory = Arc::new(
            AiAgentFactory::new(Arc::clone(&models), InferencePool::new(1), None, config)
                .with_providers(source),
        );
        // Real speech: the VAD may be Silero, which does not take a tone for a voice.
        let speech = Arc::new(std::fs::read(ai_support::fixtures().join("stt/01.ulaw")).unwrap());
        let load0 = load_average();
        let cpu0 = process_cpu_seconds();
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
        let mut turn_ms: Vec<TurnMs> = Vec::new();
        for task in tasks {
            turn_ms.extend(task.await.unwrap());
        }
        // Every turn must have been answered; a bench that silently measured fewer turns
        // would report a rosier p99.
        assert_eq!(
            turn_ms.len(),
            calls * turns,
            "{} of {} turns got no agent audio",
            calls * turns - turn_ms.len(),
            calls * turns
        );
        let elapsed = started.elapsed().as_secs_f64();
        let cpu_s = process_cpu_seconds() - cpu0;
        let fixed = latency.as_secs_f64() * 1000.0;
        let sorted = |stage: &dyn Fn(&TurnMs) -> f64| sorted(&turn_ms, stage);
        let total = sorted(&|t| t.total);
        let added = sorted(&|t| t.total - 3.0 * fixed);
        println!(
            "provider_overhead: {calls} concurrent calls, {} turns, providers' fixed latency {} ms × 3 (STT, LLM, TTS), {elapsed:.1} s; load average {load0} → {}",
            added.len(),
            latency.as_millis(),
            load_average()
        );
        println!(
            "  turn (VAD end of turn → first agent audio): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&total, 0.5),
            percentile(&total, 0.99)
        );
        println!(
            "  node's own added latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 20 ms)",
            percentile(&added, 0.5),
            percentile(&added, 0.99),
            added.last().copied().unwrap_or_default()
        );
        // Where the added time goes, stage by stage (each minus its provider's latency).
        for (name, stage, provider) in [
            ("stt (hangover done → final)", sorted(&|t| t.stt), fixed),
            ("llm (final → first token)", sorted(&|t| t.llm), fixed),
            ("tts (first token → audio)", sorted(&|t| t.tts), fixed),
            ("say (audio → Say received)", sorted(&|t| t.say), 0.0),
        ] {
            println!(
                "    {name:<30} added p50 {:>7.1} ms, p99 {:>7.1} ms",
                percentile(&stage, 0.5) - provider,
                percentile(&stage, 0.99) - provider
            );
        }
        println!(
            "  process CPU {cpu_s:.1} s over {elapsed:.1} s ({:.0} % of one core)",
            cpu_s / elapsed * 100.0
        );
        if let Some(silero) = &models.silero {
            let s = silero.stats();
            println!(
                "  silero: {} windows run in {} batches (mean {:.1}), {} gated as silence ({:.0} %), {:.1} s in the network ({:.0} % of one core)",
                s.windows,
                s.batches,
                s.windows as f64 / s.batches.max(1) as f64,
                s.gated,
                s.gated as f64 * 100.0 / (s.windows + s.gated).max(1) as f64,
                s.busy_us as f64 / 1e6,
                s.busy_us as f64 / 1e4 / elapsed
            );
        }
    });
}
