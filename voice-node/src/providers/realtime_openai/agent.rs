//! [`RealtimeAgent`]: a call run on an OpenAI Realtime session, with the cascaded agent behind
//! it.
//!
//! ```text
//! Started → Realtime configured for this call (tenant row / env)?
//!   no  → the offline agent, exactly as without this module
//!   yes → open the session (handshake, session.created, session.update) within deadlines
//!         fails → provider_failure on the call, the offline agent takes the call
//!         opens → a task owns the socket:
//!            caller audio → input_audio_buffer.append      response.audio.delta → Say (stream)
//!            speech_started while our audio plays → Interrupt + conversation.item.truncate
//!            transcripts → caller / agent turns            tool calls → receptionist flow
//! the session drops mid-call → provider_failure, Interrupt, the offline agent takes over
//! ```
//!
//! How much of an item the caller heard (`audio_end_ms` of the truncate) is worked out from the
//! session's [`AgentEvent::Playing`] (when the item's first frame went out) and
//! [`AgentEvent::Played`] (its mark came back: all of it was heard), capped by the audio the
//! item had: the player runs at most a few hundred ms ahead of real time, so time since the first
//! frame is what Twilio has played.
//!
//! The agent task itself stays thin (it forwards events to the socket's task), so the session's
//! back-pressure on audio works as for any agent, and a failure seen by the socket's task is
//! acted on at the next event (caller audio arrives every 20 ms).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shared::domain::{CallMode, CallOutcome};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::PROVIDER;
use super::client::{self, RealtimeSocket};
use super::protocol::{ClientEvent, ServerEvent, SessionConfig};
use crate::agent::greeting_recorder::{GreetingRecorder, GreetingRecorderFactory};
use crate::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, AgentOutput, CallAgent, CallClock,
    CallStarted, EndReason, InboundAudio, Speaker, SpeechAudio, TranscriptTurn, TransferRequest,
    TurnTimings, UtteranceId,
};
use crate::ai::agent::{AiAgent, AiAgentFactory};
use crate::ai::flow::hours::Openness;
use crate::ai::flow::receptionist::{ReceptionistFlow, ReceptionistSetup};
use crate::ai::flow::{After, Reply, context};
use crate::metrics::Metrics;
use crate::providers::TenantProviders;
use crate::providers::call::flow_action;
use crate::providers::fallback::{FailureRecorder, ProviderFailure};
use crate::providers::llm_openai::parse_action;
use crate::providers::{ProviderError, ProviderSource};

/// Chunks of model audio that may wait for the player (the model streams faster than real
/// time; a chunk is typically 20–100 ms, so this is minutes). The socket's task never waits on
/// the player: it must keep reading so a barge-in is seen at once.
const MAX_QUEUED_CHUNKS: usize = 4096;

/// How long the agent waits, after the call ended, for the socket's task to close the session
/// and report the outcome (the session gives agents 1 s).
const WRAP_UP: Duration = Duration::from_millis(700);

/// Knowledge-base entries put in the instructions (the rest would cost latency on every turn).
const MAX_KB_ENTRIES: i64 = 40;

/// What the instructions say in every call.
const BASE_INSTRUCTIONS: &str = "You are the phone receptionist of a small business. Speak \
in one or two short sentences that sound natural on the phone. Answer questions only from the \
knowledge base below; when it does not answer, say you don't know and offer to take a message. \
Use the tools: transfer_call when the caller asks for a department or a person, end_call when \
the caller is done, capture_lead once you have the caller's name, callback number, reason and \
urgency. When a tool's result has `say`, say exactly that and nothing else.";

/// The agents a Realtime call falls back to: the node's offline agents, built on demand and run
/// inline by [`RealtimeAgent`] (so they share its utterance ids and action channel).
pub trait OfflineAgents: Send + Sync + 'static {
    /// The agent.
    type Agent: CallAgent;
    /// One call's agent, not yet started (it will get [`AgentEvent::Started`]). `tenant`: the
    /// tenant's provider rows if the Realtime agent already read them (`None`: read them).
    fn agent(
        &self,
        call: &CallStarted,
        metrics: Arc<Metrics>,
        tenant: Option<TenantProviders>,
    ) -> Self::Agent;
}

impl OfflineAgents for AiAgentFactory {
    type Agent = AiAgent;
    fn agent(
        &self,
        call: &CallStarted,
        metrics: Arc<Metrics>,
        tenant: Option<TenantProviders>,
    ) -> AiAgent {
        AiAgentFactory::agent(self, call, metrics, tenant)
    }
}

impl OfflineAgents for GreetingRecorderFactory {
    type Agent = GreetingRecorder;
    fn agent(
        &self,
        call: &CallStarted,
        _metrics: Arc<Metrics>,
        _tenant: Option<TenantProviders>,
    ) -> GreetingRecorder {
        GreetingRecorder::new(Arc::clone(&self.prompts), self.config, call.clock)
    }
}

/// Starts a [`RealtimeAgent`] for every call.
#[derive(Debug)]
pub struct RealtimeAgentFactory<O> {
    /// The fallback (and the agent of calls without Realtime).
    offline: Arc<O>,
    /// Which calls use Realtime, and with which endpoint and key.
    providers: Arc<ProviderSource>,
    /// Tenant settings, departments, hours, knowledge base, leads.
    db: Option<PgPool>,
}

impl<O: OfflineAgents> RealtimeAgentFactory<O> {
    /// Calls use Realtime where `providers` says so, else (and on failure) `offline`'s agents.
    pub fn new(offline: O, providers: ProviderSource, db: Option<PgPool>) -> Self {
        RealtimeAgentFactory {
            offline: Arc::new(offline),
            providers: Arc::new(providers),
            db,
        }
    }
}

impl<O: OfflineAgents> AgentFactory for RealtimeAgentFactory<O> {
    fn start(&self, _call: &CallStarted, metrics: Arc<Metrics>) -> AgentHandle {
        let agent = RealtimeAgent {
            offline: Arc::clone(&self.offline),
            providers: Arc::clone(&self.providers),
            db: self.db.clone(),
            metrics: Arc::clone(&metrics),
            call: None,
            recorder: None,
            tenant_providers: None,
            mode: Mode::Starting,
        };
        AgentHandle::spawn(agent, metrics)
    }
}

/// Where a call's events go.
enum Mode<A> {
    /// Before [`AgentEvent::Started`].
    Starting,
    /// To the socket's task.
    Live(Live),
    /// To the offline agent.
    Offline(A),
}

/// The running Realtime session of a call.
struct Live {
    /// To the socket's task.
    commands: mpsc::UnboundedSender<Command>,
    /// The socket's task: `Err` when the session failed before the call ended.
    task: JoinHandle<Result<(), ProviderError>>,
}

/// What the agent hands the socket's task.
#[derive(Debug)]
enum Command {
    Audio(InboundAudio),
    Playing {
        id: UtteranceId,
        first_frame_ms: u32,
    },
    Played {
        id: UtteranceId,
    },
    TransferFailed(String),
    Ended(EndReason),
}

/// One call's agent; see the module docs.
pub struct RealtimeAgent<O: OfflineAgents> {
    /// Builds the fallback.
    offline: Arc<O>,
    /// Resolves the call's Realtime endpoint.
    providers: Arc<ProviderSource>,
    /// See [`RealtimeAgentFactory`].
    db: Option<PgPool>,
    /// Failure counts; handed to the fallback.
    metrics: Arc<Metrics>,
    /// The call, from `Started` (the fallback is started with it).
    call: Option<CallStarted>,
    /// Records `provider_failure` on the call.
    recorder: Option<FailureRecorder>,
    /// The tenant's provider rows as `Started` read them, until the fallback takes them.
    tenant_providers: Option<TenantProviders>,
    /// Where events go.
    mode: Mode<O::Agent>,
}

impl<O: OfflineAgents> std::fmt::Debug for RealtimeAgent<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Starting => "starting",
            Mode::Live(_) => "realtime",
            Mode::Offline(_) => "offline",
        };
        f.debug_struct("RealtimeAgent")
            .field("call_sid", &self.call.as_ref().map(|c| c.call_sid.as_str()))
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl<O: OfflineAgents> RealtimeAgent<O> {
    async fn start(&mut self, call: CallStarted, out: &AgentOutput) {
        let recorder = FailureRecorder::new(out.clone(), Arc::clone(&self.metrics), &call.call_sid);
        self.recorder = Some(recorder.clone());
        self.call = Some(call.clone());
        let tenant: Option<Uuid> = call.tenant_id.parse().ok();
        // Screening stays cascaded: its verdict comes from the classifier and the tenant's policy
        // (the cascaded agent reads the provider rows itself).
        if call.mode == CallMode::Screening {
            self.go_offline(out, false).await;
            return;
        }
        let rows = self
            .providers
            .tenant_providers(self.db.as_ref(), tenant)
            .await;
        let config = self.providers.realtime_for_call(&rows);
        // The fallback resolves its providers from the same rows.
        self.tenant_providers = Some(rows);
        let Some(config) = config else {
            self.go_offline(out, false).await;
            return;
        };
        let setup = load_setup(self.db.as_ref(), tenant, &call).await;
        let knowledge = load_knowledge(self.db.as_ref(), tenant).await;
        let session =
            SessionConfig::phone(instructions(call.mode, &setup, &knowledge), &config.voice);
        let opened = config
            .open(&session, |e| recorder.retried(PROVIDER, "realtime", e))
            .await;
        match opened {
            Ok(socket) => {
                tracing::info!(call_sid = %call.call_sid, model = %config.model, "call runs on OpenAI Realtime");
                let mut flow = ReceptionistFlow::new(setup);
                let greeting = flow.start();
                let conversation = Conversation {
                    out: out.clone(),
                    clock: call.clock,
                    call_sid: call.call_sid.clone(),
                    tenant,
                    db: self.db.clone(),
                    flow,
                    items: HashMap::new(),
                    by_utterance: HashMap::new(),
                    function_names: HashMap::new(),
                    caller_speech: HashMap::new(),
                    audio_origin_ms: None,
                    speech_end_ms: None,
                    tool_outputs_pending: false,
                    after: None,
                    after_armed: false,
                    outcome: None,
                    caller_turns: 0,
                };
                let (commands, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(conversation.run(socket, rx, greeting));
                self.mode = Mode::Live(Live { commands, task });
            }
            Err(error) => {
                recorder.failed(&ProviderFailure {
                    provider: PROVIDER,
                    stage: "realtime",
                    error: &error,
                    fallback: "offline",
                });
                self.go_offline(out, false).await;
            }
        }
    }

    /// Hands the call to the offline agent (which greets the caller). `mid_call`: the model's
    /// audio still queued at the session is cleared first.
    async fn go_offline(&mut self, out: &AgentOutput, mid_call: bool) {
        let Some(call) = self.call.clone() else {
            return;
        };
        if mid_call {
            out.send(AgentAction::Interrupt);
        }
        let mut agent = self.offline.agent(
            &call,
            Arc::clone(&self.metrics),
            self.tenant_providers.take(),
        );
        agent.on_event(AgentEvent::Started(call), out).await;
        self.mode = Mode::Offline(agent);
    }

    /// If the socket's task has ended (the session failed), records it and falls back.
    async fn check_session(&mut self, out: &AgentOutput) {
        let Mode::Live(live) = &mut self.mode else {
            return;
        };
        if !live.task.is_finished() {
            return;
        }
        let error = match (&mut live.task).await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => ProviderError::Closed {
                code: 1000,
                reason: "the session ended before the call".into(),
            },
            Err(join) => ProviderError::Protocol(format!("the session's task failed: {join}")),
        };
        if let Some(recorder) = &self.recorder {
            recorder.failed(&ProviderFailure {
                provider: PROVIDER,
                stage: "realtime",
                error: &error,
                fallback: "offline",
            });
        }
        self.go_offline(out, true).await;
    }
}

impl<O: OfflineAgents> CallAgent for RealtimeAgent<O> {
    async fn on_event(&mut self, event: AgentEvent, out: &AgentOutput) {
        if let AgentEvent::Started(call) = event {
            self.start(call, out).await;
            return;
        }
        self.check_session(out).await;
        match &mut self.mode {
            Mode::Starting => {}
            Mode::Offline(agent) => agent.on_event(event, out).await,
            Mode::Live(live) => {
                let command = match event {
                    AgentEvent::Audio(audio) => Command::Audio(audio),
                    AgentEvent::Playing { id, first_frame_ms } => {
                        Command::Playing { id, first_frame_ms }
                    }
                    AgentEvent::Played { id, .. } => Command::Played { id },
                    AgentEvent::TransferFailed { reason } => Command::TransferFailed(reason),
                    AgentEvent::Ended(reason) => Command::Ended(reason),
                    AgentEvent::Dtmf(_) | AgentEvent::Started(_) => return,
                };
                let ended = matches!(command, Command::Ended(_));
                let _ = live.commands.send(command);
                if ended {
                    match tokio::time::timeout(WRAP_UP, &mut live.task).await {
                        Ok(Ok(Err(error))) => {
                            tracing::warn!(error = %error, "Realtime session failed as the call ended");
                        }
                        Ok(_) => {}
                        Err(_) => tracing::warn!("Realtime session did not close in time"),
                    }
                }
            }
        }
    }
}

/// One assistant audio item of the session, as played to the caller.
#[derive(Debug)]
struct AudioItem {
    /// The utterance it is played as.
    utterance: UtteranceId,
    /// To the player; dropped when the item's audio is complete (or cut).
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Mu-law bytes received (8 per ms).
    bytes: usize,
    /// When its first frame went out ([`AgentEvent::Playing`]).
    first_frame_ms: Option<u32>,
    /// Its mark came back: the caller heard all of it (or it was cleared).
    played: bool,
    /// Cut by a barge-in after this many ms were heard.
    heard_ms: Option<u32>,
    /// The turn's timings (for the transcript row).
    timings: TurnTimings,
}

/// The socket's side of a Realtime call (runs in its own task).
struct Conversation {
    out: AgentOutput,
    clock: CallClock,
    call_sid: String,
    tenant: Option<Uuid>,
    db: Option<PgPool>,
    /// Tool calls run through the same transitions as the cascaded agent's.
    flow: ReceptionistFlow,
    /// Assistant audio items by `item_id`.
    items: HashMap<String, AudioItem>,
    /// The item each utterance plays.
    by_utterance: HashMap<UtteranceId, String>,
    /// Function names by `call_id` (beta servers name the function only in the item).
    function_names: HashMap<String, String>,
    /// Caller speech per user item: (start, end), call-clock ms.
    caller_speech: HashMap<String, (u32, u32)>,
    /// Call-clock ms where the input audio buffer starts (the server's offsets count from it).
    audio_origin_ms: Option<u32>,
    /// The end of the caller speech the next response answers.
    speech_end_ms: Option<u32>,
    /// Tool results were sent: ask for a response once the current one is done.
    tool_outputs_pending: bool,
    /// What the flow committed to (transfer, hang up) once its words have been said.
    after: Option<After>,
    /// The response saying those words is under way.
    after_armed: bool,
    /// Set when the flow hung up.
    outcome: Option<CallOutcome>,
    /// Caller turns transcribed.
    caller_turns: u32,
}

type Writer = futures_util::stream::SplitSink<RealtimeSocket, Message>;

impl Conversation {
    async fn run(
        mut self,
        socket: RealtimeSocket,
        mut commands: mpsc::UnboundedReceiver<Command>,
        greeting: Reply,
    ) -> Result<(), ProviderError> {
        let (mut write, mut read) = socket.split();
        self.say(&mut write, &greeting.text).await?;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Ended(reason)) => {
                        let _ = write.close().await;
                        self.out.send(AgentAction::Hangup(self.outcome(&reason)));
                        return Ok(());
                    }
                    Some(command) => self.on_command(command, &mut write).await?,
                    None => {
                        let _ = write.close().await;
                        return Ok(());
                    }
                },
                event = client::next_event(&mut read) => match event? {
                    Some(event) => self.on_server(event, &mut write).await?,
                    None => {
                        return Err(ProviderError::Closed {
                            code: 1000,
                            reason: "the server closed the session".into(),
                        });
                    }
                },
            }
        }
    }

    /// Asks the model to say `text` (the greeting, the flow's words after a failed transfer).
    async fn say(&mut self, write: &mut Writer, text: &str) -> Result<(), ProviderError> {
        let event = ClientEvent::ResponseCreate {
            response: Some(json!({
                "instructions": format!("Say exactly this to the caller, then listen: \"{text}\""),
            })),
        };
        client::send(write, &event).await
    }

    async fn on_command(
        &mut self,
        command: Command,
        write: &mut Writer,
    ) -> Result<(), ProviderError> {
        match command {
            Command::Audio(audio) => {
                if self.audio_origin_ms.is_none() {
                    let frame_ms = (audio.audio.as_slice().len() / 8) as u32;
                    self.audio_origin_ms =
                        Some(self.clock.ms_at(audio.received_at).saturating_sub(frame_ms));
                }
                let event = ClientEvent::Append {
                    audio: BASE64.encode(audio.audio.as_slice()),
                };
                client::send(write, &event).await?;
            }
            Command::Playing { id, first_frame_ms } => {
                if let Some(item) = self.item_of(id) {
                    item.first_frame_ms = Some(first_frame_ms);
                }
            }
            Command::Played { id } => {
                if let Some(item) = self.item_of(id) {
                    item.played = true;
                }
            }
            Command::TransferFailed(reason) => {
                tracing::info!(call_sid = %self.call_sid, reason = %reason, "transfer failed; taking details instead");
                let reply = self.flow.transfer_failed();
                self.say(write, &reply.text).await?;
            }
            Command::Ended(_) => {}
        }
        Ok(())
    }

    fn item_of(&mut self, id: UtteranceId) -> Option<&mut AudioItem> {
        let item_id = self.by_utterance.get(&id)?;
        self.items.get_mut(item_id)
    }

    /// Call-clock ms of an input-buffer offset.
    fn buffer_ms(&self, offset_ms: u64) -> u32 {
        let origin = self.audio_origin_ms.unwrap_or(0);
        let at = origin.saturating_add(u32::try_from(offset_ms).unwrap_or(u32::MAX));
        at.min(self.clock.now_ms())
    }

    async fn on_server(
        &mut self,
        event: ServerEvent,
        write: &mut Writer,
    ) -> Result<(), ProviderError> {
        match event {
            ServerEvent::Error { error } => {
                tracing::warn!(
                    call_sid = %self.call_sid,
                    kind = %error.kind,
                    code = error.code.as_deref().unwrap_or(""),
                    message = %error.message,
                    "Realtime error event; the session goes on"
                );
            }
            ServerEvent::SpeechStarted {
                audio_start_ms,
                item_id,
            } => {
                let start = self.buffer_ms(audio_start_ms);
                self.caller_speech.insert(item_id, (start, start));
                self.barge_in(write).await?;
            }
            ServerEvent::SpeechStopped {
                audio_end_ms,
                item_id,
            } => {
                let end = self.buffer_ms(audio_end_ms);
                self.caller_speech.entry(item_id).or_insert((end, end)).1 = end;
                self.speech_end_ms = Some(end);
            }
            ServerEvent::OutputItemAdded { item } => {
                if let (Some(call_id), Some(name)) = (item.call_id, item.name) {
                    self.function_names.insert(call_id, name);
                }
            }
            ServerEvent::AudioDelta { item_id, delta } => self.on_audio(item_id, &delta),
            ServerEvent::AudioDone { item_id } => {
                if let Some(item) = self.items.get_mut(&item_id) {
                    item.tx = None;
                }
            }
            ServerEvent::AudioTranscriptDone {
                item_id,
                transcript,
            } => self.agent_turn(&item_id, transcript),
            ServerEvent::FunctionCallArgumentsDone {
                call_id,
                name,
                arguments,
            } => {
                let name = name
                    .or_else(|| self.function_names.get(&call_id).cloned())
                    .unwrap_or_default();
                let output = match parse_action(&name, &arguments) {
                    Ok(action) => {
                        let reply = self.flow.apply(flow_action(action));
                        self.carry_out(reply).await
                    }
                    Err(err) => {
                        tracing::warn!(call_sid = %self.call_sid, error = %err, "unusable tool call");
                        json!({ "error": err.to_string() })
                    }
                };
                client::send(write, &ClientEvent::function_output(&call_id, &output)).await?;
                self.tool_outputs_pending = true;
            }
            ServerEvent::ResponseDone { response } => {
                tracing::debug!(call_sid = %self.call_sid, status = %response.status, "response done");
                if self.tool_outputs_pending {
                    self.tool_outputs_pending = false;
                    self.after_armed = self.after.is_some();
                    client::send(write, &ClientEvent::ResponseCreate { response: None }).await?;
                } else if self.after_armed {
                    self.after_armed = false;
                    if let Some(after) = self.after.take() {
                        self.commit(after);
                    }
                }
            }
            ServerEvent::InputTranscript {
                item_id,
                transcript,
            } => self.caller_turn(&item_id, transcript).await,
            ServerEvent::SessionCreated {}
            | ServerEvent::SessionUpdated {}
            | ServerEvent::ResponseCreated { .. }
            | ServerEvent::Truncated { .. }
            | ServerEvent::Other => {}
        }
        Ok(())
    }

    /// A chunk of the model's audio: the first of an item starts an utterance.
    fn on_audio(&mut self, item_id: String, delta: &str) {
        let Ok(audio) = BASE64.decode(delta) else {
            tracing::warn!(call_sid = %self.call_sid, "audio delta is not base64; skipped");
            return;
        };
        if !self.items.contains_key(&item_id) {
            let now = self.clock.now_ms();
            let timings = TurnTimings {
                speech_end_ms: self.speech_end_ms.take(),
                first_token_ms: Some(now),
                first_tts_byte_ms: Some(now),
                ..TurnTimings::default()
            };
            let (tx, rx) = mpsc::channel(MAX_QUEUED_CHUNKS);
            // No text: the transcript arrives later and is recorded as the turn then.
            let utterance = self.out.say_untranscribed(SpeechAudio::Stream(rx), timings);
            self.by_utterance.insert(utterance, item_id.clone());
            self.items.insert(
                item_id.clone(),
                AudioItem {
                    utterance,
                    tx: Some(tx),
                    bytes: 0,
                    first_frame_ms: None,
                    played: false,
                    heard_ms: None,
                    timings,
                },
            );
        }
        let Some(item) = self.items.get_mut(&item_id) else {
            return;
        };
        let Some(tx) = &item.tx else {
            return; // cut by a barge-in: the rest is never played
        };
        item.bytes += audio.len();
        if tx.try_send(audio).is_err() {
            tracing::warn!(call_sid = %self.call_sid, "model audio dropped: the player is too far behind");
        }
    }

    /// The caller started talking: if the model's audio is playing (or queued), stop it and
    /// tell the server how much of each item the caller heard.
    async fn barge_in(&mut self, write: &mut Writer) -> Result<(), ProviderError> {
        let now = self.clock.now_ms();
        let mut cut = Vec::new();
        for (item_id, item) in &mut self.items {
            if item.played || item.heard_ms.is_some() {
                continue;
            }
            let audio_ms = u32::try_from(item.bytes / 8).unwrap_or(u32::MAX);
            let heard = item
                .first_frame_ms
                .map_or(0, |first| now.saturating_sub(first).min(audio_ms));
            item.heard_ms = Some(heard);
            item.tx = None;
            cut.push((item_id.clone(), item.utterance, heard));
        }
        if cut.is_empty() {
            return Ok(());
        }
        self.out.send(AgentAction::Interrupt);
        for (item_id, utterance, heard) in cut {
            tracing::debug!(call_sid = %self.call_sid, item_id, utterance = utterance.0, heard_ms = heard, "barge-in: truncating");
            let event = ClientEvent::Truncate {
                item_id,
                content_index: 0,
                audio_end_ms: heard,
            };
            client::send(write, &event).await?;
        }
        Ok(())
    }

    fn agent_turn(&mut self, item_id: &str, transcript: String) {
        let text = transcript.trim().to_owned();
        if text.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let (started_ms, ended_ms, timings) = match self.items.get(item_id) {
            Some(item) => {
                let start = item.first_frame_ms.unwrap_or(now);
                let audio_ms = u32::try_from(item.bytes / 8).unwrap_or(u32::MAX);
                let heard = item.heard_ms.unwrap_or(audio_ms);
                let timings = TurnTimings {
                    first_audio_frame_ms: item.first_frame_ms,
                    ..item.timings
                };
                (start, start.saturating_add(heard), timings)
            }
            None => (now, now, TurnTimings::default()),
        };
        self.out.send(AgentAction::Turn(TranscriptTurn {
            speaker: Speaker::Agent,
            text,
            started_ms,
            ended_ms,
            timings,
        }));
    }

    async fn caller_turn(&mut self, item_id: &str, transcript: String) {
        let text = transcript.trim().to_owned();
        if text.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let (started_ms, ended_ms) = self
            .caller_speech
            .get(item_id)
            .copied()
            .unwrap_or((now, now));
        self.caller_turns += 1;
        self.out.send(AgentAction::Turn(TranscriptTurn {
            speaker: Speaker::Caller,
            text: text.clone(),
            started_ms,
            ended_ms,
            timings: TurnTimings {
                speech_end_ms: Some(ended_ms),
                stt_final_ms: Some(now),
                ..TurnTimings::default()
            },
        }));
        // While the flow reads a lead back, the caller's answer confirms (or corrects) it; the
        // model does the talking, the flow only decides when the lead is confirmed.
        if self.flow.is_taking_details()
            && let Some(reply) = self.flow.on_caller(&text, None)
            && let Some(lead) = &reply.lead
        {
            self.store_lead(lead).await;
        }
    }

    /// Stores what the flow's reply commits to and returns the tool's result for the model.
    async fn carry_out(&mut self, reply: Reply) -> Value {
        if let Some(lead) = &reply.lead {
            self.store_lead(lead).await;
        }
        let then = match &reply.after {
            After::Listen => "listen",
            After::Hangup(_) => "end_call",
            After::Transfer(_) => "transfer",
        };
        if !matches!(reply.after, After::Listen) {
            self.after = Some(reply.after);
        }
        json!({ "say": reply.text, "then": then })
    }

    /// Transfers or hangs up once the flow's words were said (the session waits for them to
    /// play before it acts).
    fn commit(&mut self, after: After) {
        for item in self.items.values_mut() {
            item.tx = None;
        }
        match after {
            After::Listen => {}
            After::Hangup(outcome) => {
                self.outcome = Some(outcome);
                self.out.send(AgentAction::Hangup(outcome));
            }
            After::Transfer(target) => {
                self.out.send(AgentAction::Transfer(TransferRequest {
                    to: target.to,
                    department: target.department,
                }));
            }
        }
    }

    async fn store_lead(&self, lead: &crate::ai::flow::CapturedLead) {
        let (Some(db), Some(tenant)) = (&self.db, self.tenant) else {
            tracing::warn!(call_sid = %self.call_sid, "lead confirmed but the node has no database: not stored");
            return;
        };
        match crate::jobs::lead_notify::store_call_lead(db, tenant, &self.call_sid, lead).await {
            Ok(_) => tracing::info!(call_sid = %self.call_sid, "lead stored"),
            Err(err) => tracing::error!(call_sid = %self.call_sid, error = %err, "lead not stored"),
        }
    }

    fn outcome(&self, reason: &EndReason) -> CallOutcome {
        self.outcome.unwrap_or(if self.flow.lead_confirmed() {
            CallOutcome::MessageTaken
        } else if self.caller_turns > 0 {
            CallOutcome::Completed
        } else if matches!(reason, EndReason::Stopped | EndReason::SocketClosed) {
            CallOutcome::Abandoned
        } else {
            CallOutcome::Failed
        })
    }
}

/// The receptionist's setup for the call (defaults, with a warning, when it cannot be read).
async fn load_setup(
    db: Option<&PgPool>,
    tenant: Option<Uuid>,
    call: &CallStarted,
) -> ReceptionistSetup {
    if let (Some(db), Some(tenant)) = (db, tenant) {
        match context::receptionist_setup(db, tenant, call, jiff::Timestamp::now()).await {
            Ok(setup) => return setup,
            Err(err) => {
                tracing::warn!(call_sid = %call.call_sid, error = %err, "could not load the receptionist setup; using defaults");
            }
        }
    }
    ReceptionistSetup {
        caller_id: context::caller_id(call),
        entry: context::entry_of(call),
        ..ReceptionistSetup::default()
    }
}

/// The tenant's enabled knowledge-base entries (question, answer), oldest first.
async fn load_knowledge(db: Option<&PgPool>, tenant: Option<Uuid>) -> Vec<(String, String)> {
    let (Some(db), Some(tenant)) = (db, tenant) else {
        return Vec::new();
    };
    sqlx::query_as(
        "SELECT question, answer FROM kb_entries WHERE tenant_id = $1 AND enabled
         ORDER BY created_at, id LIMIT $2",
    )
    .bind(tenant)
    .bind(MAX_KB_ENTRIES)
    .fetch_all(db)
    .await
    .unwrap_or_else(|err| {
        tracing::warn!(%tenant, error = %err, "could not load the knowledge base for Realtime");
        Vec::new()
    })
}

/// The session's instructions: the receptionist's rules, the mode, the departments the
/// `transfer_call` tool accepts, whether the business is open, and the knowledge base. (The
/// cascaded agent's prompt is not reused: it asks the model to answer `UNKNOWN`, which a
/// speech model would say aloud.)
pub fn instructions(mode: CallMode, setup: &ReceptionistSetup, kb: &[(String, String)]) -> String {
    let mut text = BASE_INSTRUCTIONS.to_owned();
    if mode == CallMode::Forward {
        text.push_str(" The owner could not answer this call; you take it for them.");
    }
    if setup.departments.is_empty() {
        text.push_str(" For transfer_call, the only department is \"owner\".");
    } else {
        let names: Vec<&str> = setup.departments.iter().map(|d| d.name.as_str()).collect();
        text.push_str(&format!(
            " For transfer_call, the departments are: {}, or \"owner\".",
            names.join(", ")
        ));
    }
    if let Openness::Closed { opens } = &setup.openness {
        text.push_str(" The business is closed now");
        if let Some(opens) = opens {
            text.push_str(&format!("; it opens {opens}"));
        }
        text.push('.');
    }
    if !kb.is_empty() {
        text.push_str("\n\nKnowledge base:");
        for (question, answer) in kb {
            text.push_str(&format!("\nQ: {question}\nA: {answer}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::flow::receptionist::Department;

    #[test]
    fn instructions_name_departments_hours_and_the_knowledge_base() {
        let setup = ReceptionistSetup {
            departments: vec![Department {
                name: "Billing".into(),
                transfer_to: "+15550100".into(),
                keywords: vec![],
            }],
            openness: Openness::Closed {
                opens: Some("tomorrow at 9 AM".into()),
            },
            ..ReceptionistSetup::default()
        };
        let kb = vec![("When are you open?".to_owned(), "Nine to five.".to_owned())];
        let text = instructions(CallMode::Forward, &setup, &kb);
        assert!(text.contains("Billing"), "{text}");
        assert!(text.contains("opens tomorrow at 9 AM"), "{text}");
        assert!(
            text.contains("Q: When are you open?\nA: Nine to five."),
            "{text}"
        );
        assert!(text.contains("could not answer"), "{text}");
    }
}
