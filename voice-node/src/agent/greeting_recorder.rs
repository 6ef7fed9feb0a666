//! `GreetingRecorder`: the agent every call gets until the AI pipeline (issue 5) lands.
//!
//! It is deliberately not a fake AI. It plays a greeting for the number's mode, cuts the
//! caller's speech into utterances with an energy VAD, records each one as a transcript turn
//! whose text says plainly that it was not transcribed, acknowledges it, treats caller speech
//! over its own (≥ 200 ms) as barge-in, and hangs up after a few turns or on `#` with the
//! outcome `message_taken`.
//!
//! Prompts are synthesized once per node with espeak-ng ([`crate::speech`]) and shared by every
//! call as `Arc<[u8]>`; without espeak-ng a short tone stands in (with a warning), so the node
//! still works on a bare machine.

use std::collections::HashSet;
use std::sync::Arc;

use shared::domain::{CallMode, CallOutcome};
use tokio::sync::OnceCell;

use super::vad::{EnergyVad, VadConfig, VadTransition};
use super::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, AgentOutput, CallAgent, CallClock,
    CallStarted, EndReason, Speaker, SpeechAudio, TranscriptTurn, TurnTimings, UtteranceId,
};
use crate::metrics::Metrics;

/// One of the recorder's fixed prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// First words of a call, per mode.
    Greeting(CallMode),
    /// After each caller utterance.
    Acknowledge,
    /// Before hanging up.
    Goodbye,
}

impl Prompt {
    /// What the prompt says (also its transcript text).
    pub fn text(self) -> &'static str {
        match self {
            Prompt::Greeting(CallMode::Screening) => {
                "Hello, you have reached a call screening assistant. Please say who you are and why you are calling."
            }
            Prompt::Greeting(CallMode::Receptionist) => {
                "Hello, thanks for calling. Please tell me how I can help, and I will pass it on."
            }
            Prompt::Greeting(CallMode::Forward) => {
                "Hello, nobody can take your call right now. Please leave a message after this greeting."
            }
            Prompt::Acknowledge => "Thank you. Anything else?",
            Prompt::Goodbye => "Thank you, your message has been recorded. Goodbye.",
        }
    }

    fn slot(self) -> usize {
        match self {
            Prompt::Greeting(CallMode::Screening) => 0,
            Prompt::Greeting(CallMode::Receptionist) => 1,
            Prompt::Greeting(CallMode::Forward) => 2,
            Prompt::Acknowledge => 3,
            Prompt::Goodbye => 4,
        }
    }
}

/// Where prompt audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptVoice {
    /// espeak-ng + sox, falling back to a tone when they are missing.
    Espeak,
    /// Tones only: tests and benchmarks that must not depend on espeak-ng timing.
    Tone,
}

/// The node's prompt audio, synthesized on first use and shared by every call.
#[derive(Debug)]
pub struct Prompts {
    /// How to make audio.
    voice: PromptVoice,
    /// One cell per [`Prompt`] (see `Prompt::slot`).
    cells: [OnceCell<Arc<[u8]>>; 5],
}

impl Prompts {
    /// An empty cache.
    pub fn new(voice: PromptVoice) -> Self {
        Prompts {
            voice,
            cells: Default::default(),
        }
    }

    /// The audio for `prompt`, synthesizing it on first use.
    pub async fn get(&self, prompt: Prompt) -> Arc<[u8]> {
        self.cells[prompt.slot()]
            .get_or_init(|| async move {
                match self.voice {
                    PromptVoice::Tone => tone(prompt),
                    PromptVoice::Espeak => match crate::speech::synthesize_mulaw(prompt.text()).await {
                        Ok(audio) => Arc::from(audio),
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot synthesize prompts; playing a tone instead");
                            tone(prompt)
                        }
                    },
                }
            })
            .await
            .clone()
    }

    /// Synthesizes every prompt now (at server start), so the first call does not wait.
    pub async fn warm_up(&self) {
        for prompt in [
            Prompt::Greeting(CallMode::Screening),
            Prompt::Greeting(CallMode::Receptionist),
            Prompt::Greeting(CallMode::Forward),
            Prompt::Acknowledge,
            Prompt::Goodbye,
        ] {
            self.get(prompt).await;
        }
    }
}

/// A short sine tone standing in for speech: 440 Hz, length growing with the prompt's text
/// (≈ 10 ms per character, 0.3–1.5 s) so pacing and marks behave as with real speech.
fn tone(prompt: Prompt) -> Arc<[u8]> {
    let ms = (prompt.text().len() * 10).clamp(300, 1500);
    let samples = ms * 8;
    (0..samples)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
            shared::mulaw::encode(s as i16)
        })
        .collect()
}

/// The recorder's tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecorderConfig {
    /// Caller utterances before the goodbye.
    pub max_turns: u32,
    /// Voiced frames over the agent's speech that count as barge-in (10 = 200 ms).
    pub barge_in_frames: u32,
    /// The VAD's tuning.
    pub vad: VadConfig,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            max_turns: 3,
            barge_in_frames: 10,
            vad: VadConfig::default(),
        }
    }
}

/// Starts a [`GreetingRecorder`] for every call, whatever the mode (the greeting differs).
#[derive(Debug, Clone)]
pub struct GreetingRecorderFactory {
    /// Shared prompt audio.
    pub prompts: Arc<Prompts>,
    /// Tuning for every call.
    pub config: RecorderConfig,
}

impl AgentFactory for GreetingRecorderFactory {
    fn start(&self, call: &CallStarted, metrics: Arc<Metrics>) -> AgentHandle {
        AgentHandle::spawn(
            GreetingRecorder::new(Arc::clone(&self.prompts), self.config, call.clock),
            metrics,
        )
    }
}

/// The minimal agent; see the module docs.
#[derive(Debug)]
pub struct GreetingRecorder {
    /// Shared prompt audio.
    prompts: Arc<Prompts>,
    /// Tuning.
    config: RecorderConfig,
    /// The call's clock, for turn times.
    clock: CallClock,
    /// The call's mode, known from `Started`.
    mode: CallMode,
    /// Cuts the caller's utterances.
    vad: EnergyVad,
    /// Call-clock ms when the current caller utterance started.
    speech_started_ms: u32,
    /// Call-clock ms of the end of the last voiced frame.
    last_voiced_end_ms: u32,
    /// Utterances said and not yet reported played: while non-empty the agent is talking.
    talking: HashSet<UtteranceId>,
    /// Whether barge-in was already signalled for the current talk.
    barged_in: bool,
    /// Caller utterances recorded.
    turns: u32,
    /// Set once the goodbye is queued.
    outcome: Option<CallOutcome>,
}

impl GreetingRecorder {
    /// A recorder for one call.
    pub fn new(prompts: Arc<Prompts>, config: RecorderConfig, clock: CallClock) -> Self {
        GreetingRecorder {
            prompts,
            config,
            clock,
            mode: CallMode::Screening,
            vad: EnergyVad::new(config.vad),
            speech_started_ms: 0,
            last_voiced_end_ms: 0,
            talking: HashSet::new(),
            barged_in: false,
            turns: 0,
            outcome: None,
        }
    }

    async fn say(&mut self, prompt: Prompt, timings: TurnTimings, out: &AgentOutput) {
        let audio = self.prompts.get(prompt).await;
        let id = out.say(SpeechAudio::Clip(audio), prompt.text(), timings);
        self.talking.insert(id);
    }

    fn record_utterance(&self, out: &AgentOutput) {
        let ms = self
            .last_voiced_end_ms
            .saturating_sub(self.speech_started_ms);
        let text = format!(
            "[caller speech, {:.1} s — not transcribed: the speech pipeline is not installed]",
            f64::from(ms) / 1000.0
        );
        out.send(AgentAction::Turn(TranscriptTurn {
            speaker: Speaker::Caller,
            text,
            started_ms: self.speech_started_ms,
            ended_ms: self.last_voiced_end_ms,
            timings: TurnTimings {
                speech_end_ms: Some(self.last_voiced_end_ms),
                ..TurnTimings::default()
            },
        }));
    }

    async fn finish(&mut self, out: &AgentOutput, timings: TurnTimings) {
        if self.outcome.is_some() {
            return;
        }
        self.outcome = Some(CallOutcome::MessageTaken);
        self.say(Prompt::Goodbye, timings, out).await;
        out.send(AgentAction::Hangup(CallOutcome::MessageTaken));
    }
}

impl CallAgent for GreetingRecorder {
    async fn on_event(&mut self, event: AgentEvent, out: &AgentOutput) {
        match event {
            AgentEvent::Started(call) => {
                self.mode = call.mode;
                self.say(Prompt::Greeting(self.mode), TurnTimings::default(), out)
                    .await;
            }
            AgentEvent::Audio(audio) => {
                let frame_end_ms = self.clock.ms_at(audio.received_at);
                let transition = self.vad.push(audio.audio.as_slice());
                if self.vad.voiced_run() > 0 {
                    self.last_voiced_end_ms = frame_end_ms;
                }
                match transition {
                    VadTransition::SpeechStarted => {
                        let run_ms = self.config.vad.start_frames * 20;
                        self.speech_started_ms = frame_end_ms.saturating_sub(run_ms);
                    }
                    VadTransition::SpeechEnded if self.outcome.is_none() => {
                        self.record_utterance(out);
                        self.turns += 1;
                        let timings = TurnTimings {
                            speech_end_ms: Some(self.last_voiced_end_ms),
                            ..TurnTimings::default()
                        };
                        if self.turns >= self.config.max_turns {
                            self.finish(out, timings).await;
                        } else {
                            self.say(Prompt::Acknowledge, timings, out).await;
                        }
                    }
                    VadTransition::SpeechEnded | VadTransition::None => {}
                }
                if !self.talking.is_empty()
                    && !self.barged_in
                    && self.outcome.is_none()
                    && self.vad.voiced_run() >= self.config.barge_in_frames
                {
                    self.barged_in = true;
                    out.send(AgentAction::Interrupt);
                }
            }
            AgentEvent::Dtmf('#') => {
                let timings = TurnTimings {
                    speech_end_ms: Some(self.clock.now_ms()),
                    ..TurnTimings::default()
                };
                self.finish(out, timings).await;
            }
            // The recorder never asks for a transfer.
            AgentEvent::Dtmf(_)
            | AgentEvent::TransferFailed { .. }
            | AgentEvent::Playing { .. } => {}
            AgentEvent::Played { id, .. } => {
                self.talking.remove(&id);
                if self.talking.is_empty() {
                    self.barged_in = false;
                }
            }
            AgentEvent::Ended(reason) => {
                if self.vad.is_speaking() && self.outcome.is_none() {
                    self.record_utterance(out);
                    self.turns += 1;
                }
                let outcome = self.outcome.unwrap_or(if self.turns > 0 {
                    CallOutcome::MessageTaken
                } else if matches!(reason, EndReason::Stopped | EndReason::SocketClosed) {
                    // The caller hung up before saying anything.
                    CallOutcome::Abandoned
                } else {
                    // Cut by us (protocol error, node shutdown).
                    CallOutcome::Failed
                });
                out.send(AgentAction::Hangup(outcome));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tone_prompts_are_cached_and_shared() {
        let prompts = Prompts::new(PromptVoice::Tone);
        let a = prompts.get(Prompt::Acknowledge).await;
        let b = prompts.get(Prompt::Acknowledge).await;
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.len() >= 2400);
    }

    #[test]
    fn every_prompt_has_its_own_slot() {
        let mut slots: Vec<usize> = [
            Prompt::Greeting(CallMode::Screening),
            Prompt::Greeting(CallMode::Receptionist),
            Prompt::Greeting(CallMode::Forward),
            Prompt::Acknowledge,
            Prompt::Goodbye,
        ]
        .iter()
        .map(|p| p.slot())
        .collect();
        slots.dedup();
        assert_eq!(slots, vec![0, 1, 2, 3, 4]);
    }
}
