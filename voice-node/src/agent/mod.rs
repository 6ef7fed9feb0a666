//! The seam between a call's media session and whatever talks to the caller.
//!
//! The session sends typed [`AgentEvent`]s (call started, audio, DTMF, an utterance played, call
//! ended) and receives [`AgentAction`]s (say this, stop talking, hang up, record this turn). An
//! agent never sees a socket, JSON or a frame schedule, and the session never sees speech
//! recognition or dialogue: issue 5's AI pipeline is another [`CallAgent`] and another
//! [`AgentFactory`], and nothing in `media/` changes.
//!
//! Each agent runs in its own task ([`AgentHandle::spawn`]), so slow agent work never stalls the
//! socket: the session hands events over without waiting, and drops audio (counted) rather than
//! block if an agent falls more than [`MAX_QUEUED_AUDIO`] frames behind. Heavy synchronous work
//! (STT, embeddings) belongs in `spawn_blocking` inside the agent.
//!
//! The node's agent is `crate::ai::agent::AiAgent` (the offline AI pipeline) when its models are
//! installed; otherwise [`greeting_recorder::GreetingRecorder`], which greets, records what the
//! caller says as untranscribed turns, and says so.

pub mod greeting_recorder;
pub mod vad;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::domain::{CallMode, CallOutcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::media::AudioChunk;
use crate::metrics::Metrics;

/// Audio frames that may wait for an agent (~2 s) before the session starts dropping them.
pub const MAX_QUEUED_AUDIO: usize = 100;

/// The call's monotonic clock: milliseconds since the stream's `start`. Per-turn timings use it
/// (see `transcript_turns` in the schema), so their differences are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallClock {
    /// When `start` was accepted.
    origin: Instant,
}

impl CallClock {
    /// A clock starting at `origin`.
    pub fn starting_at(origin: Instant) -> Self {
        CallClock { origin }
    }

    /// Milliseconds from the start of the call to `at` (0 before it).
    pub fn ms_at(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u32::MAX)
    }

    /// Milliseconds since the start of the call.
    pub fn now_ms(&self) -> u32 {
        self.ms_at(Instant::now())
    }

    /// When the call started.
    pub fn origin(&self) -> Instant {
        self.origin
    }
}

/// Who spoke a transcript turn (the `speaker` column's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The person who called.
    Caller,
    /// callgate's agent.
    Agent,
    /// The owner, after a transfer.
    Owner,
}

impl Speaker {
    /// The database spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Speaker::Caller => "caller",
            Speaker::Agent => "agent",
            Speaker::Owner => "owner",
        }
    }
}

/// Pipeline timings of one turn, in call-clock ms ([`CallClock`]); `None` where a stage did not
/// happen. Latency of a reply = `first_audio_frame_ms - speech_end_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnTimings {
    /// End of the caller speech this turn answers (or is).
    pub speech_end_ms: Option<u32>,
    /// Speech recognition's final result.
    pub stt_final_ms: Option<u32>,
    /// The reply's first token.
    pub first_token_ms: Option<u32>,
    /// The reply's first synthesized byte.
    pub first_tts_byte_ms: Option<u32>,
    /// The reply's first frame sent to Twilio (filled in by the session).
    pub first_audio_frame_ms: Option<u32>,
}

/// Names an utterance; the session uses it as the Twilio mark name (`utt-N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtteranceId(pub u32);

impl UtteranceId {
    /// The mark name sent to Twilio.
    pub fn mark_name(self) -> String {
        format!("utt-{}", self.0)
    }

    /// The id a mark name stands for, if it is one of ours.
    pub fn from_mark_name(name: &str) -> Option<Self> {
        name.strip_prefix("utt-")?.parse().ok().map(UtteranceId)
    }
}

/// The audio of an utterance.
#[derive(Debug)]
pub enum SpeechAudio {
    /// All of it, already synthesized (cached prompts): frames are cut from the shared buffer
    /// without copying it.
    Clip(Arc<[u8]>),
    /// Chunks as a streaming TTS produces them (any sizes); the utterance ends when the sender
    /// is dropped.
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// Something the agent wants the caller to hear.
#[derive(Debug)]
pub struct Utterance {
    /// Chosen by the agent ([`AgentOutput::next_utterance_id`]); reported back in
    /// [`AgentEvent::Played`].
    pub id: UtteranceId,
    /// 8 kHz mu-law audio.
    pub audio: SpeechAudio,
    /// What is said, for the transcript: the session writes the agent turn once the first
    /// frame goes out, and marks it interrupted if the caller cut it short. `None` when the
    /// agent records the turn itself with [`AgentAction::Turn`]: a speech-to-speech model's
    /// transcript arrives after its audio starts.
    pub text: Option<String>,
    /// Timings known so far; the session adds `first_audio_frame_ms`.
    pub timings: TurnTimings,
}

/// A transcript turn the agent recorded (typically the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptTurn {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (or an honest placeholder when it was not transcribed).
    pub text: String,
    /// When the speech started and ended, call-clock ms.
    pub started_ms: u32,
    /// End of the speech, call-clock ms.
    pub ended_ms: u32,
    /// Stage timings.
    pub timings: TurnTimings,
}

/// What the agent asks of the session.
#[derive(Debug)]
pub enum AgentAction {
    /// Queue an utterance after anything already queued.
    Say(Utterance),
    /// Barge-in: stop talking now (drop queued audio, `clear` Twilio's buffer).
    Interrupt,
    /// End the call with this outcome once queued speech has played. Sent in answer to
    /// [`AgentEvent::Ended`], it only sets the outcome.
    Hangup(CallOutcome),
    /// Persist a transcript turn.
    Turn(TranscriptTurn),
    /// Persist the call's screening verdict.
    Screening(ScreeningVerdict),
    /// Record something about the call (a `call_events` row), e.g. a cloud provider failure
    /// the call survived by falling back.
    Event(CallEvent),
    /// Put the caller through: once queued speech has played, the session replaces the call's
    /// TwiML with a `<Dial>` to the target over Twilio REST, and this stream ends. The outcome
    /// follows the dial (`transferred`, or back to the AI when nobody answers).
    Transfer(TransferRequest),
}

/// Where [`AgentAction::Transfer`] puts the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// E.164 number or SIP URI to dial.
    pub to: String,
    /// Who that is, for the call's event log ("Sales", "the owner").
    pub department: String,
}

/// A `call_events` row the agent asks for; the session adds the call and an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// `snake_case` kind (`provider_failure`).
    pub kind: &'static str,
    /// Details.
    pub payload: serde_json::Value,
}

/// What screening does with a caller (the `screening_results.action` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreeningAction {
    /// Put the caller through to the owner.
    Transfer,
    /// Take a message.
    TakeMessage,
    /// End the call politely.
    EndCall,
}

impl ScreeningAction {
    /// The database spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ScreeningAction::Transfer => "transfer",
            ScreeningAction::TakeMessage => "take_message",
            ScreeningAction::EndCall => "end_call",
        }
    }
}

/// A screening agent's conclusion about the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreeningVerdict {
    /// legit / marketing / spam / unknown.
    pub label: shared::domain::ScreeningLabel,
    /// One line for the inbox.
    pub intent: String,
    /// 0–1.
    pub confidence: f32,
    /// Internal reasoning, for admins.
    pub rationale: String,
    /// What was done with the caller.
    pub action: Option<ScreeningAction>,
}

/// Why a call's media ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Twilio sent `stop` (the caller hung up or the call was redirected).
    Stopped,
    /// The agent hung up.
    AgentHangup,
    /// The socket closed or dropped.
    SocketClosed,
    /// The peer broke the protocol.
    ProtocolError(String),
    /// The node's drain grace period ran out.
    NodeShutdown,
}

/// The call, as the agent first learns of it.
#[derive(Debug, Clone)]
pub struct CallStarted {
    /// Twilio's `CallSid`.
    pub call_sid: String,
    /// Twilio's `StreamSid`.
    pub stream_sid: String,
    /// The tenant (from the edge's stream token).
    pub tenant_id: String,
    /// The flow to run (from the stream token).
    pub mode: CallMode,
    /// Every `<Parameter>` of the stream except the token.
    pub custom_parameters: BTreeMap<String, String>,
    /// The call clock.
    pub clock: CallClock,
}

/// Caller audio with its timing.
#[derive(Debug, Clone, Copy)]
pub struct InboundAudio {
    /// One frame (or less) of mu-law.
    pub audio: AudioChunk,
    /// Twilio's stream timestamp in ms.
    pub timestamp_ms: u64,
    /// When the node read the frame from the socket.
    pub received_at: Instant,
}

/// What the session tells the agent, in order.
#[derive(Debug)]
pub enum AgentEvent {
    /// First event, once.
    Started(CallStarted),
    /// Caller audio, about 50 per second.
    Audio(InboundAudio),
    /// The caller pressed a key.
    Dtmf(char),
    /// An utterance finished playing (`interrupted: false`) or was cut short or never played
    /// because of a barge-in or the end of the call (`interrupted: true`).
    Played {
        /// Which utterance.
        id: UtteranceId,
        /// Whether the caller missed part of it.
        interrupted: bool,
    },
    /// The first frame of an utterance went out to Twilio at `first_frame_ms` (call clock).
    /// With [`AgentEvent::Played`] (the mark came back) it tells an agent how much of an
    /// utterance the caller has heard so far, which a speech-to-speech model must be told on a
    /// barge-in (OpenAI Realtime's `conversation.item.truncate`). Other agents ignore it.
    Playing {
        /// Which utterance.
        id: UtteranceId,
        /// When its first frame was sent, call-clock ms.
        first_frame_ms: u32,
    },
    /// An [`AgentAction::Transfer`] could not be started (no Twilio account, Twilio refused):
    /// the caller is still on the stream and the agent should go on (e.g. take a message).
    TransferFailed {
        /// Why, for logs.
        reason: String,
    },
    /// Last event, once: the call's media is over. The agent may still answer with
    /// [`AgentAction::Turn`] and [`AgentAction::Hangup`] (to set the outcome).
    Ended(EndReason),
}

/// How an agent acts: a cheap handle on the session's action channel.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    /// To the session.
    actions: mpsc::UnboundedSender<AgentAction>,
    /// Source of utterance ids, shared by clones.
    next_id: Arc<AtomicUsize>,
}

impl AgentOutput {
    /// A fresh utterance id.
    pub fn next_utterance_id(&self) -> UtteranceId {
        UtteranceId(self.next_id.fetch_add(1, Ordering::Relaxed) as u32)
    }

    /// Sends an action; `false` once the session is gone.
    pub fn send(&self, action: AgentAction) -> bool {
        self.actions.send(action).is_ok()
    }

    /// Queues `audio` with `text`, returning its id. The session writes its transcript turn.
    pub fn say(
        &self,
        audio: SpeechAudio,
        text: impl Into<String>,
        timings: TurnTimings,
    ) -> UtteranceId {
        self.queue(audio, Some(text.into()), timings)
    }

    /// Queues `audio` whose words are not known yet, returning its id. The agent writes the
    /// transcript turn itself ([`AgentAction::Turn`]) when the words arrive.
    pub fn say_untranscribed(&self, audio: SpeechAudio, timings: TurnTimings) -> UtteranceId {
        self.queue(audio, None, timings)
    }

    fn queue(&self, audio: SpeechAudio, text: Option<String>, timings: TurnTimings) -> UtteranceId {
        let id = self.next_utterance_id();
        self.send(AgentAction::Say(Utterance {
            id,
            audio,
            text,
            timings,
        }));
        id
    }
}

/// A call's agent: reacts to events, acts through [`AgentOutput`]. Runs in its own task.
pub trait CallAgent: Send + 'static {
    /// Handles one event. Returning slowly delays only this agent's later events.
    fn on_event(&mut self, event: AgentEvent, out: &AgentOutput)
    -> impl Future<Output = ()> + Send;
}

/// Chooses and starts the agent for a call (by mode, tenant, configuration).
pub trait AgentFactory: Send + Sync + 'static {
    /// Starts an agent for `call` and returns the session's handle on it. The session then sends
    /// [`AgentEvent::Started`] with the same `call`.
    fn start(&self, call: &CallStarted, metrics: Arc<Metrics>) -> AgentHandle;
}

/// The session's side of a running agent.
#[derive(Debug)]
pub struct AgentHandle {
    /// Events to the agent. Unbounded so control events (DTMF, played, ended) are never lost;
    /// audio is bounded by `queued_audio`.
    events: mpsc::UnboundedSender<AgentEvent>,
    /// The agent's actions.
    pub actions: mpsc::UnboundedReceiver<AgentAction>,
    /// Audio frames sent but not yet taken by the agent.
    queued_audio: Arc<AtomicUsize>,
    /// The agent task; awaited (briefly) at the end of the call.
    pub task: JoinHandle<()>,
}

/// Why an event was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The agent is more than [`MAX_QUEUED_AUDIO`] frames behind; the frame was dropped.
    Lagging,
    /// The agent task has ended.
    Gone,
}

impl AgentHandle {
    /// Runs `agent` in a new task.
    pub fn spawn<A: CallAgent>(mut agent: A, metrics: Arc<Metrics>) -> Self {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let (actions_tx, actions_rx) = mpsc::unbounded_channel();
        let queued_audio = Arc::new(AtomicUsize::new(0));
        let queued = Arc::clone(&queued_audio);
        let out = AgentOutput {
            actions: actions_tx,
            next_id: Arc::new(AtomicUsize::new(1)),
        };
        let task = tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if let AgentEvent::Audio(audio) = &event {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    metrics
                        .agent_event_latency
                        .observe(audio.received_at.elapsed());
                }
                let last = matches!(event, AgentEvent::Ended(_));
                agent.on_event(event, &out).await;
                if last {
                    break;
                }
            }
        });
        AgentHandle {
            events: events_tx,
            actions: actions_rx,
            queued_audio,
            task,
        }
    }

    /// Hands an event to the agent without waiting.
    pub fn deliver(&self, event: AgentEvent) -> Result<(), DeliveryError> {
        if matches!(event, AgentEvent::Audio(_)) {
            if self.queued_audio.load(Ordering::Relaxed) >= MAX_QUEUED_AUDIO {
                return Err(DeliveryError::Lagging);
            }
            self.queued_audio.fetch_add(1, Ordering::Relaxed);
        }
        self.events.send(event).map_err(|_| DeliveryError::Gone)
    }
}
