//! Offline voice-to-voice latency per turn: from the true end of the caller's speech to the
//! agent's first audio frame, through the real AI agent with the offline models only.
//!
//! Each simulated call runs [`AiAgentFactory`] (Silero VAD, Whisper tiny.en, MiniLM, Piper; no
//! cloud provider) fed 20 ms mu-law frames at Twilio's pace: line noise ([`NoiseFloor`]), then
//! a committed real-speech fixture per turn, then noise until the answer. Calls alternate
//! between receptionist mode with a small knowledge base (questions it answers, and requests
//! that lead to taking a message) and screening mode (an introduction, then a message). A turn
//! is measured from the fixture's last voiced frame as sent (not the VAD's decision, which
//! comes a hangover later) to the first chunk of the reply's audio (the session sends it as
//! the first frame at once). The stages come from the turn's timings: VAD (true end → end of
//! turn decided: the detector's tail plus the stop hangover), STT (→ transcript), reply
//! (→ the flow's text: KB lookup, classifier), TTS (→ the first clause synthesized).
//!
//! The target is p50 < 1.2 s for one call at a time (per-call latency); `CALLS=4`
//! shows it under concurrency on the same 2 cores.
//!
//! Measured 2026-11-21 17:41–17:46 UTC on the 2-core dev VM (Intel Xeon Processor) while a CI
//! build shared it (load average 2.5–3.2), 1 call, 24 turns, back to back:
//! - before eager STT: p50 1,881 ms, p95 2,133 ms, max 2,236 ms (VAD 619, STT 1,099, reply 9,
//!   TTS 176 ms at p50);
//! - with Whisper started at 200 ms of silence: p50 1,586 ms, p95 1,998 ms, max 2,013 ms (VAD
//!   618, STT after the end of turn 752, reply 14, TTS 160 ms; 36 started, 24 used, 12
//!   discarded at commas).
//! - 4 concurrent calls (load 3.1–3.4): p50 2,171 ms, p95 3,363 ms, 183 frames dropped.
//!
//! The target (p50 < 1.2 s) is missed on this busy machine: Whisper tiny.en takes ~1 s per
//! utterance under that load and the stop hangover still costs ~300 ms after the eager start.
//!
//! `cargo bench -p voice-node --bench offline_voice_to_voice` (models from
//! `CALLGATE_MODELS_DIR` or `~/.cache/callgate/models`). `CALLS` (concurrent calls) and
//! `TURNS` (in all) override the defaults; `RUST_LOG=voice_node=debug` shows the node's logs.
//! Without `--bench` (`cargo test --all-targets`) it is a smoke run: one call, two turns.

#[path = "../tests/ai_support/mod.rs"]
mod ai_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use shared::domain::CallMode;
use support::{
    cpu_model, env_or, full_run, init_logging, load_average, percentile, runtime, sorted,
    start_call,
};
use tokio::time::Instant;
use voice_node::agent::{
    AgentAction, AgentEvent, DeliveryError, EndReason, InboundAudio, SpeechAudio,
};
use voice_node::ai::agent::{AiAgentConfig, AiAgentFactory};
use voice_node::ai::kb::KnowledgeBase;
use voice_node::ai::pool::InferencePool;
use voice_node::media::AudioChunk;
use voice_node::simulate::caller_audio::{NoiseFloor, Utterance};

/// Line noise between the agent's answer and the caller's next sentence (600 ms: a caller
/// takes a moment to answer).
const GAP_FRAMES: usize = 30;

/// A turn with no answer this long after the end of speech is counted unanswered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The receptionist's knowledge base: fixture 02 and 06 are close to its questions, the other
/// requests are not (the flow then takes a message).
const KB: &[(&str, &str)] = &[
    (
        "What time do you open on Saturday?",
        "On Saturdays we open at ten in the morning and close at two.",
    ),
    (
        "I was charged twice, can I get a refund?",
        "Sorry about that. Double charges are refunded within five business days.",
    ),
    (
        "Where are you located?",
        "We are at 12 Harbour Street, next to the post office.",
    ),
];

/// One answered turn, in ms.
#[derive(Debug, Clone, Copy)]
struct TurnMs {
    /// True end of speech → first chunk of the reply's audio.
    total: f64,
    /// True end of speech → the VAD's end of turn (its tail + stop hangover).
    vad: f64,
    /// End of turn → transcript final.
    stt: f64,
    /// Transcript → the reply's text.
    reply: f64,
    /// Reply text → the first clause's audio.
    tts: f64,
}

/// What one call measured.
#[derive(Debug, Default)]
struct CallResult {
    /// Answered turns.
    turns: Vec<TurnMs>,
    /// Turns that got no answer within [`ANSWER_TIMEOUT`].
    unanswered: usize,
    /// Answers that came while the caller was still saying the sentence (the VAD cut it at a
    /// pause): not measured, reported.
    early: usize,
    /// Frames the agent was too far behind to take.
    dropped_frames: usize,
}

/// Where a call is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Noise until the greeting is said.
    Greeting,
    /// Noise for `left` more frames before sentence `next`.
    Gap { left: usize, next: usize },
    /// Sending sentence `i`, frame `frame`.
    Speaking { i: usize, frame: usize },
    /// Noise until the answer to sentence `i`, whose speech ended at `end`.
    Waiting { i: usize, end: Instant },
}

/// One call in `mode`: greeting, then each of `sentences` as a turn, until they are all said or
/// the agent ends the call (hang-up or transfer after its reply).
async fn run_call(
    factory: &AiAgentFactory,
    mode: CallMode,
    sentences: &[Arc<Utterance>],
    n: usize,
    stop_ms: u32,
) -> CallResult {
    let (call, mut agent) = start_call(factory, n, mode);
    let mut noise = NoiseFloor::new(n as u64 + 7);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut phase = Phase::Greeting;
    let mut ended = false;
    let mut result = CallResult::default();
    let mut t = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                t += 1;
                let (bytes, next_phase) = match phase {
                    Phase::Speaking { i, frame } => {
                        let s = &sentences[i];
                        let bytes = s.frame(frame).to_vec();
                        let next = if frame + 1 == s.frames() {
                            // Speech ended at the last voiced frame, already sent.
                            let after = (s.frames() - 1 - s.last_speech_frame) as u32;
                            Phase::Waiting {
                                i,
                                end: Instant::now() - Duration::from_millis(u64::from(after) * 20),
                            }
                        } else {
                            Phase::Speaking { i, frame: frame + 1 }
                        };
                        (bytes, next)
                    }
                    Phase::Gap { left: 0, next } => {
                        if ended || next == sentences.len() {
                            break;
                        }
                        (noise.frame().to_vec(), Phase::Speaking { i: next, frame: 0 })
                    }
                    Phase::Gap { left, next } => {
                        (noise.frame().to_vec(), Phase::Gap { left: left - 1, next })
                    }
                    Phase::Waiting { end, .. } if end.elapsed() > ANSWER_TIMEOUT => {
                        result.unanswered += 1;
                        break;
                    }
                    other => (noise.frame().to_vec(), other),
                };
                let event = AgentEvent::Audio(InboundAudio {
                    audio: AudioChunk::new(&bytes),
                    timestamp_ms: t * 20,
                    received_at: Instant::now(),
                });
                match agent.deliver(event) {
                    Ok(()) => {}
                    Err(DeliveryError::Lagging) => result.dropped_frames += 1,
                    Err(DeliveryError::Gone) => break,
                }
                phase = next_phase;
            }
            action = agent.actions.recv() => match action {
                Some(AgentAction::Say(mut utterance)) => {
                    // The first chunk is the first frame the session would send.
                    match &mut utterance.audio {
                        SpeechAudio::Stream(rx) => {
                            let _ = rx.recv().await;
                        }
                        SpeechAudio::Clip(_) => {}
                    }
                    let first_audio = Instant::now();
                    let (id, timings) = (utterance.id, utterance.timings);
                    drop(utterance);
                    let _ = agent.deliver(AgentEvent::Played { id, interrupted: false });
                    match phase {
                        Phase::Greeting => phase = Phase::Gap { left: GAP_FRAMES, next: 0 },
                        Phase::Waiting { i, end } => {
                            let ms = |at: Instant| at.saturating_duration_since(call.clock.origin()).as_secs_f64() * 1000.0;
                            let end_ms = ms(end);
                            let first_ms = ms(first_audio);
                            let at = |v: Option<u32>| v.map_or(first_ms, f64::from);
                            let decided = timings
                                .speech_end_ms
                                .map_or(first_ms, |e| f64::from(e + stop_ms));
                            let (stt, token, tts) = (
                                at(timings.stt_final_ms),
                                at(timings.first_token_ms),
                                at(timings.first_tts_byte_ms),
                            );
                            result.turns.push(TurnMs {
                                total: first_ms - end_ms,
                                vad: decided - end_ms,
                                stt: stt - decided,
                                reply: token - stt,
                                tts: tts - token,
                            });
                            phase = Phase::Gap { left: GAP_FRAMES, next: i + 1 };
                        }
                        // An answer while the caller is mid-sentence (or to a part of it).
                        _ => result.early += 1,
                    }
                }
                Some(AgentAction::Hangup(_) | AgentAction::Transfer(_)) => ended = true,
                Some(_) => {}
                None => break,
            },
        }
    }
    let _ = agent.deliver(AgentEvent::Ended(EndReason::Stopped));
    result
}

/// What caller `worker`'s call number `c` says, and in which mode: receptionist calls ask
/// questions the KB answers and make requests it does not; screening calls introduce
/// themselves and leave a message.
fn call_plan(fixtures: &[Arc<Utterance>], c: usize) -> (CallMode, Vec<Arc<Utterance>>) {
    let f = |i: usize| Arc::clone(&fixtures[i - 1]);
    if c.is_multiple_of(2) {
        let order = [2, 6, 5, 8];
        let rotated: Vec<_> = (0..order.len())
            .map(|k| f(order[(k + c / 2) % order.len()]))
            .collect();
        (CallMode::Receptionist, rotated)
    } else {
        let intros = [1, 3, 4, 7];
        (
            CallMode::Screening,
            vec![f(intros[(c / 2) % intros.len()]), f(5)],
        )
    }
}

fn main() {
    init_logging();
    // Without `--bench`: a smoke run of one call, two turns (see `support::full_run`).
    let full = full_run();
    let calls = env_or("CALLS", 1).max(1);
    let turns = env_or("TURNS", if full { 36 } else { 2 });
    runtime().block_on(async move {
        let models = ai_support::models();
        let config = AiAgentConfig::default();
        let stop_ms = config.vad.stop_frames * 20;
        let kb = KnowledgeBase::from_pairs(&models.embedder, KB).expect("KB embeds");
        let pool = InferencePool::for_this_machine();
        // Whisper's and Piper's first runs are slow (allocation, kernels): not a caller's.
        let warm = Arc::clone(&models);
        pool.run(move || {
            let _ = warm.transcriber.transcribe(&vec![0.0; 16_000]);
            if let Some(piper) = &warm.piper {
                let _ = piper.synthesize_mulaw("Hello.");
            }
        })
        .await
        .unwrap();
        let factory = Arc::new(
            AiAgentFactory::new(Arc::clone(&models), pool, None, config).with_knowledge_base(kb),
        );
        let dir = ai_support::fixtures().join("stt");
        let fixtures: Arc<Vec<Arc<Utterance>>> = Arc::new(
            (1..=8)
                .map(|i| {
                    let path = dir.join(format!("{i:02}.ulaw"));
                    Arc::new(Utterance::from_file(&path).expect("fixture"))
                })
                .collect(),
        );
        let load0 = load_average();
        let started = Instant::now();
        let per_worker = turns.div_ceil(calls);
        let mut tasks = Vec::new();
        for w in 0..calls {
            let factory = Arc::clone(&factory);
            let fixtures = Arc::clone(&fixtures);
            tasks.push(tokio::spawn(async move {
                // Calls start staggered, not in lockstep.
                tokio::time::sleep(Duration::from_millis(w as u64 * 700)).await;
                let mut done = CallResult::default();
                let mut c = w;
                while done.turns.len() < per_worker && done.unanswered == 0 {
                    let (mode, mut sentences) = call_plan(&fixtures, c);
                    sentences.truncate(per_worker - done.turns.len());
                    let r = run_call(&factory, mode, &sentences, c * 1000 + w, stop_ms).await;
                    done.turns.extend(r.turns);
                    done.unanswered += r.unanswered;
                    done.early += r.early;
                    done.dropped_frames += r.dropped_frames;
                    c += calls;
                }
                done
            }));
        }
        let mut all = CallResult::default();
        for task in tasks {
            let r = task.await.unwrap();
            all.turns.extend(r.turns);
            all.unanswered += r.unanswered;
            all.early += r.early;
            all.dropped_frames += r.dropped_frames;
        }
        // Every turn must be answered: a bench that measured only the quick ones would flatter.
        assert_eq!(all.unanswered, 0, "{} turns got no answer", all.unanswered);
        assert!(
            all.turns.len() >= turns,
            "only {} of {turns} turns measured ({} answered early)",
            all.turns.len(),
            all.early
        );
        let elapsed = started.elapsed().as_secs_f64();
        let sorted = |stage: &dyn Fn(&TurnMs) -> f64| sorted(&all.turns, stage);
        let total = sorted(&|t| t.total);
        println!(
            "offline_voice_to_voice: {calls} concurrent call(s), {} turns, {elapsed:.1} s; load average {load0} → {}; {} × {} cores; {}",
            total.len(),
            load_average(),
            cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        );
        println!(
            "  end of caller speech → first agent audio: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (target p50 < 1200 ms)",
            percentile(&total, 0.5),
            percentile(&total, 0.95),
            total.last().copied().unwrap_or_default()
        );
        for (name, stage) in [
            ("vad (true end → end of turn)", sorted(&|t| t.vad)),
            ("stt (end of turn → final)", sorted(&|t| t.stt)),
            ("reply (final → reply text)", sorted(&|t| t.reply)),
            ("tts (text → first audio)", sorted(&|t| t.tts)),
        ] {
            println!(
                "    {name:<30} p50 {:>6.0} ms, p95 {:>6.0} ms",
                percentile(&stage, 0.5),
                percentile(&stage, 0.95)
            );
        }
        println!(
            "  answered mid-sentence (not measured): {}; audio frames dropped (agent lagging): {}",
            all.early, all.dropped_frames
        );
        let eager = factory.eager_stt_stats();
        println!(
            "  eager STT (started at {} ms of silence): {} started, {} used, {} discarded (caller went on)",
            config.eager_stt_frames * 20,
            eager.started,
            eager.used,
            eager.discarded
        );
    });
}
