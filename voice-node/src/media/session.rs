//! One call's Media Stream, from `connected` to the last write: the task that owns the call.
//!
//! ```text
//! connected → start (verify the edge's stream token) → loop {
//!     media → agent          dtmf → agent          mark echo → agent (utterance played)
//!     agent Say → player     agent Interrupt → clear    agent Turn → write queue
//!     pacing timer → frames out, a mark after each utterance
//! } until stop | socket closed | agent hung up (after its goodbye played) | drain deadline
//! → agent Ended → outcome, ended_at, duration → close the socket with a reason
//! ```
//!
//! The session sees typed [`StreamEvent`]s and writes [`Outgoing`] messages to a [`MediaSink`];
//! it never sees JSON or frames, so tests drive it over channels.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde_json::json;
use shared::domain::CallOutcome;
use shared::stream_token::{self, StreamTokenError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::player::{Pacing, Player, Step, UtteranceFinished, UtteranceStarted};
use super::turn_seq::TurnSeqs;
use super::{CloseCause, MediaSink, Outgoing, SinkError, StreamEvent};
use crate::agent::TransferRequest;
use crate::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, CallClock, CallStarted, DeliveryError,
    EndReason, InboundAudio, ScreeningVerdict, Speaker, TranscriptTurn,
};
use crate::drain::{self, DrainState};
use crate::metrics::Metrics;
use crate::store::writes::{CallEndedRow, CallEventRow, CallStartedRow, ScreeningRow, TurnRow};
use crate::store::{Write, WriteQueue};
use crate::twilio_rest::{CallUpdate, TwilioClient};

/// How long a socket may take to send `start` after the upgrade.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// After an agent hangs up and its last frame is out, how long to wait for the mark echoes
/// that say the goodbye was heard.
const GOODBYE_MARK_WAIT: Duration = Duration::from_secs(3);

/// The longest an agent's goodbye may take to play before the call is ended anyway.
const GOODBYE_MAX: Duration = Duration::from_secs(60);

/// After the REST hang-up, how long to wait for Twilio's `stop` before closing ourselves.
const STOP_AFTER_HANGUP_WAIT: Duration = Duration::from_secs(2);

/// After a transfer's REST update, how long to wait for Twilio's `stop` before closing.
const STOP_AFTER_TRANSFER_WAIT: Duration = Duration::from_secs(5);

/// How long the transferred caller's phone rings at the target before `/telephony/dial-result`
/// sends them back to the AI.
pub const TRANSFER_DIAL_TIMEOUT_S: u32 = 20;

/// How long an agent may take to wrap up after [`AgentEvent::Ended`].
const AGENT_WRAP_UP: Duration = Duration::from_secs(1);

/// What every session of a node shares.
pub struct SessionContext {
    /// This node (checked against the stream token's node).
    pub node_id: String,
    /// This node's region (written on the call row).
    pub region: String,
    /// `EDGE_SHARED_SECRET`.
    pub edge_shared_secret: Vec<u8>,
    /// Chooses each call's agent.
    pub agents: Arc<dyn AgentFactory>,
    /// Where writes go.
    pub store: WriteQueue,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The node's drain state: sessions close when it says [`DrainState::Closing`].
    pub drain: watch::Receiver<DrainState>,
    /// Outbound pacing.
    pub pacing: Pacing,
    /// Twilio REST (hang-up, transfer), when credentials are configured.
    pub twilio: Option<TwilioClient>,
    /// `PUBLIC_WEBHOOK_BASE_URL`: the edge's public URL, for a transfer's
    /// `<Dial action=…/telephony/dial-result>` (without it a missed transfer just ends).
    pub webhook_base_url: Option<String>,
    /// Where each stream's transcript numbering starts, so a reconnected call continues it.
    pub turn_seqs: TurnSeqs,
}

impl std::fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionContext")
            .field("node_id", &self.node_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// How a session ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The call, once `start` was accepted.
    pub call_sid: Option<String>,
    /// Why it ended.
    pub reason: EndReason,
    /// The outcome written, for an accepted call.
    pub outcome: Option<CallOutcome>,
    /// The close frame we sent, if any.
    pub closed_with: Option<(u16, String)>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs one session to its end. `events` comes from the socket layer, `sink` goes back to it.
pub async fn run<S: MediaSink>(
    mut events: mpsc::Receiver<StreamEvent>,
    mut sink: S,
    ctx: Arc<SessionContext>,
) -> SessionSummary {
    let mut drain_rx = ctx.drain.clone();
    let start = match await_start(&mut events, &mut drain_rx).await {
        Ok(start) => start,
        Err(ending) => {
            let closed_with = send_close(&mut sink, ending.close).await;
            return SessionSummary {
                call_sid: None,
                reason: ending.reason,
                outcome: None,
                closed_with,
            };
        }
    };
    let claims = match accept_start(&start, &ctx) {
        Ok(claims) => claims,
        Err(message) => {
            tracing::warn!(call_sid = %start.call_sid, node = %ctx.node_id, reason = %message, "stream refused on start");
            let code = 1008;
            let _ = sink
                .send(Outgoing::Close {
                    code,
                    reason: &message,
                })
                .await;
            return SessionSummary {
                call_sid: None,
                reason: EndReason::ProtocolError(message.clone()),
                outcome: None,
                closed_with: Some((code, message)),
            };
        }
    };
    // A reconnected stream (same CallSid) numbers its turns after the ones already written.
    let first_seq = ctx.turn_seqs.first_seq(&start.call_sid).await;
    let call = Call::begin(&start, claims, &ctx, first_seq);
    call.run(events, sink, drain_rx).await
}

/// Waits for `start` (after an optional `connected`).
async fn await_start(
    events: &mut mpsc::Receiver<StreamEvent>,
    drain_rx: &mut watch::Receiver<DrainState>,
) -> Result<Box<shared::media_stream::Start>, Ending> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Ending::policy(format!(
                    "no start message within {} s", START_TIMEOUT.as_secs()
                )));
            }
            _ = drain::closing(drain_rx) => return Err(Ending::of(EndReason::NodeShutdown)),
        };
        match event {
            Some(StreamEvent::Connected) => {}
            Some(StreamEvent::Start(start)) => return Ok(start),
            Some(StreamEvent::Stop) => return Err(Ending::of(EndReason::Stopped)),
            Some(StreamEvent::Closed(cause)) => return Err(Ending::from_cause(cause)),
            None => return Err(Ending::gone()),
            Some(other) => {
                return Err(Ending::policy(format!(
                    "{} before start",
                    event_name(&other)
                )));
            }
        }
    }
}

fn event_name(event: &StreamEvent) -> &'static str {
    match event {
        StreamEvent::Connected => "connected",
        StreamEvent::Start(_) => "start",
        StreamEvent::Media { .. } => "media",
        StreamEvent::Dtmf(_) => "dtmf",
        StreamEvent::Mark(_) => "mark",
        StreamEvent::Stop => "stop",
        StreamEvent::Closed(_) => "close",
    }
}

/// Why a session ends, and the close frame to send for it (`None`: the socket is gone).
struct Ending {
    /// Why.
    reason: EndReason,
    /// Code and reason of our close frame.
    close: Option<(u16, String)>,
}

impl Ending {
    /// The usual close frame for `reason`.
    fn of(reason: EndReason) -> Self {
        let close = match &reason {
            EndReason::Stopped => Some((1000, "stream stopped".to_owned())),
            EndReason::AgentHangup => Some((1000, "call ended".to_owned())),
            EndReason::SocketClosed => Some((1000, "closed".to_owned())),
            EndReason::NodeShutdown => Some((1001, "node shutting down".to_owned())),
            EndReason::ProtocolError(message) => Some((1008, message.clone())),
        };
        Ending { reason, close }
    }

    /// A policy violation (1008) described by `message`.
    fn policy(message: String) -> Self {
        Ending::of(EndReason::ProtocolError(message))
    }

    /// The connection dropped: nothing to close.
    fn gone() -> Self {
        Ending {
            reason: EndReason::SocketClosed,
            close: None,
        }
    }

    /// What the socket layer reported.
    fn from_cause(cause: CloseCause) -> Self {
        match cause {
            // Answer the peer's close frame.
            CloseCause::PeerClosed => Ending::of(EndReason::SocketClosed),
            CloseCause::Disconnected(_) => Ending::gone(),
            CloseCause::Protocol(violation) => Ending {
                reason: EndReason::ProtocolError(violation.to_string()),
                close: Some((violation.close_code(), violation.to_string())),
            },
        }
    }
}

/// Points `timer` at `deadline` when it is not already there. A timer whose deadline is `None`
/// keeps its old one: its `select!` branch is disabled meanwhile.
fn rearm(timer: Pin<&mut tokio::time::Sleep>, deadline: Option<Instant>) {
    if let Some(at) = deadline
        && timer.deadline() != at
    {
        timer.reset(at);
    }
}

/// Sends a close frame; returns it when it went out.
async fn send_close<S: MediaSink>(
    sink: &mut S,
    close: Option<(u16, String)>,
) -> Option<(u16, String)> {
    let (code, reason) = close?;
    sink.send(Outgoing::Close {
        code,
        reason: &reason,
    })
    .await
    .ok()?;
    Some((code, reason))
}

/// Checks `start`: the edge's stream token, its call, and the media format. The error is the
/// close reason.
fn accept_start(
    start: &shared::media_stream::Start,
    ctx: &SessionContext,
) -> Result<stream_token::StreamClaims, String> {
    let Some(token) = start.custom_parameters.get("token") else {
        ctx.metrics.stream_tokens_refused.inc();
        return Err("refused: stream token missing".into());
    };
    let claims = stream_token::verify(
        token,
        &ctx.edge_shared_secret,
        now_unix(),
        Some(&ctx.node_id),
    )
    .map_err(|err| {
        ctx.metrics.stream_tokens_refused.inc();
        match err {
            StreamTokenError::Expired { .. } => "refused: stream token expired".to_owned(),
            StreamTokenError::BadSignature => {
                "refused: stream token signature does not match (tampered or another key)"
                    .to_owned()
            }
            StreamTokenError::Malformed => "refused: stream token malformed".to_owned(),
            StreamTokenError::WrongNode { token_node } => {
                format!(
                    "refused: stream token is for node {token_node}, not {}",
                    ctx.node_id
                )
            }
        }
    })?;
    if claims.call_sid != start.call_sid {
        ctx.metrics.stream_tokens_refused.inc();
        return Err("refused: stream token is for another call".into());
    }
    if !start.media_format.is_mulaw_8k_mono() {
        return Err(format!(
            "refused: unsupported media format {}/{}/{}",
            start.media_format.encoding,
            start.media_format.sample_rate,
            start.media_format.channels
        ));
    }
    Ok(claims)
}

/// Decrements the active-call gauge when the call ends, however it ends.
struct ActiveCall(Arc<Metrics>);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.active_calls.dec();
    }
}

/// An accepted call.
struct Call {
    /// Shared node context.
    ctx: Arc<SessionContext>,
    /// Twilio's `CallSid`.
    call_sid: String,
    /// Twilio's `StreamSid` (node event keys are made from it).
    stream_sid: String,
    /// Milliseconds since `start`.
    clock: CallClock,
    /// Wall time at `start`, so call-clock times become timestamps.
    wall_start: DateTime<Utc>,
    /// The agent.
    agent: AgentHandle,
    /// Outbound audio.
    player: Player,
    /// Next transcript sequence number.
    next_seq: u32,
    /// Next node event number (idempotency keys).
    next_event: u32,
    /// The outcome the agent gave.
    outcome: Option<CallOutcome>,
    /// A transfer the agent asked for, started once its words have played.
    pending_transfer: Option<TransferRequest>,
    /// Set once Twilio accepted the transfer: the call goes on without this stream, so the
    /// session neither hangs it up nor writes its end (the dial's result and Twilio's status
    /// callback do).
    transferred: Option<TransferRequest>,
    /// Held for the call's lifetime.
    _active: ActiveCall,
}

impl Call {
    fn begin(
        start: &shared::media_stream::Start,
        claims: stream_token::StreamClaims,
        ctx: &Arc<SessionContext>,
        first_seq: u32,
    ) -> Self {
        let metrics = Arc::clone(&ctx.metrics);
        metrics.active_calls.inc();
        let active = ActiveCall(Arc::clone(&metrics));
        let clock = CallClock::starting_at(Instant::now());
        let wall_start = Utc::now();
        let mut custom_parameters: BTreeMap<String, String> = start.custom_parameters.clone();
        custom_parameters.remove("token");
        let param = |name: &str| custom_parameters.get(name).cloned().unwrap_or_default();
        ctx.store.push(Write::CallStarted(CallStartedRow {
            call_sid: start.call_sid.clone(),
            tenant_id: claims.tenant_id.clone(),
            mode: claims.mode,
            from_number: param("from"),
            to_number: param("to"),
            node_id: ctx.node_id.clone(),
            region: ctx.region.clone(),
            at: wall_start,
        }));
        tracing::info!(call_sid = %start.call_sid, tenant = %claims.tenant_id, mode = %claims.mode, node = %ctx.node_id, "call started");
        let started = CallStarted {
            call_sid: start.call_sid.clone(),
            stream_sid: start.stream_sid.clone(),
            tenant_id: claims.tenant_id,
            mode: claims.mode,
            custom_parameters,
            clock,
        };
        let agent = ctx.agents.start(&started, metrics);
        let _ = agent.deliver(AgentEvent::Started(started));
        Call {
            ctx: Arc::clone(ctx),
            call_sid: start.call_sid.clone(),
            stream_sid: start.stream_sid.clone(),
            clock,
            wall_start,
            agent,
            player: Player::new(ctx.pacing, clock),
            next_seq: first_seq,
            next_event: 0,
            outcome: None,
            pending_transfer: None,
            transferred: None,
            _active: active,
        }
    }

    async fn run<S: MediaSink>(
        mut self,
        mut events: mpsc::Receiver<StreamEvent>,
        mut sink: S,
        mut drain_rx: watch::Receiver<DrainState>,
    ) -> SessionSummary {
        sink.bind_stream(&self.stream_sid);
        let Ending { reason, close } = self.main_loop(&mut events, &mut sink, &mut drain_rx).await;
        if let EndReason::ProtocolError(message) = &reason {
            self.event("session_error", json!({ "message": message }));
        }
        // Close a broken or refused socket at once; a hung-up call first ends at Twilio. A
        // transferred call is not hung up: it lives on in its `<Dial>`.
        let hang_up = reason == EndReason::AgentHangup && self.transferred.is_none();
        let mut closed_with = None;
        if !hang_up {
            closed_with = send_close(&mut sink, close.clone()).await;
        }
        self.wrap_up(&reason).await;
        if hang_up {
            self.hang_up_at_twilio(&mut events).await;
            closed_with = send_close(&mut sink, close).await;
        }
        tracing::info!(call_sid = %self.call_sid, reason = ?reason, outcome = ?self.outcome, "call ended");
        SessionSummary {
            call_sid: Some(self.call_sid.clone()),
            reason,
            outcome: self.outcome,
            closed_with,
        }
    }

    async fn main_loop<S: MediaSink>(
        &mut self,
        events: &mut mpsc::Receiver<StreamEvent>,
        sink: &mut S,
        drain_rx: &mut watch::Receiver<DrainState>,
    ) -> Ending {
        // When the player next needs attention; `None` while it is idle.
        let mut wake: Option<Instant> = None;
        // Set when the agent hangs up: the latest the call may go on.
        let mut hangup_deadline: Option<Instant> = None;
        // Set once a transfer is under way: Twilio's `stop` is due by then.
        let mut transfer_deadline: Option<Instant> = None;
        // The timers and the drain watch live across iterations, re-armed only when their
        // deadline changes: built afresh in every `select!`, each inbound frame (50 a second
        // per call) would register and drop three timer entries and a watch waiter.
        let far = Instant::now() + Duration::from_secs(86_400);
        let drain = drain::closing(drain_rx);
        let pacing = tokio::time::sleep_until(far);
        let hangup_timer = tokio::time::sleep_until(far);
        let transfer_timer = tokio::time::sleep_until(far);
        tokio::pin!(drain, pacing, hangup_timer, transfer_timer);
        loop {
            if let Some(deadline) = hangup_deadline {
                if self.player.is_quiet() {
                    if let Some(ending) = self.after_goodbye(&mut transfer_deadline).await {
                        return ending;
                    }
                    hangup_deadline = None;
                    continue;
                }
                if wake.is_none() {
                    // Everything is sent; only mark echoes are awaited.
                    hangup_deadline = Some(deadline.min(Instant::now() + GOODBYE_MARK_WAIT));
                }
            }
            rearm(pacing.as_mut(), wake);
            rearm(hangup_timer.as_mut(), hangup_deadline);
            rearm(transfer_timer.as_mut(), transfer_deadline);
            tokio::select! {
                biased;
                () = &mut drain => return Ending::of(EndReason::NodeShutdown),
                () = &mut hangup_timer, if hangup_deadline.is_some() => {
                    if let Some(ending) = self.after_goodbye(&mut transfer_deadline).await {
                        return ending;
                    }
                    hangup_deadline = None;
                }
                () = &mut transfer_timer, if transfer_deadline.is_some() => {
                    // Twilio took the call but never stopped the stream: close it ourselves.
                    return Ending {
                        reason: EndReason::AgentHangup,
                        close: Some((1000, "call transferred".into())),
                    };
                }
                event = events.recv() => match event {
                    Some(StreamEvent::Media { audio, timestamp_ms, received_at }) => {
                        let delivered = self.agent.deliver(AgentEvent::Audio(InboundAudio {
                            audio,
                            timestamp_ms,
                            received_at,
                        }));
                        if delivered == Err(DeliveryError::Lagging) {
                            self.ctx.metrics.agent_frames_dropped.inc();
                        }
                    }
                    Some(StreamEvent::Dtmf(digit)) => {
                        let _ = self.agent.deliver(AgentEvent::Dtmf(digit));
                    }
                    Some(StreamEvent::Mark(name)) => {
                        if let Some(finished) = self.player.on_mark(&name) {
                            self.utterance_finished(finished);
                        }
                    }
                    Some(StreamEvent::Stop) => return Ending::of(EndReason::Stopped),
                    Some(StreamEvent::Closed(cause)) => return Ending::from_cause(cause),
                    Some(StreamEvent::Connected | StreamEvent::Start(_)) => {
                        tracing::debug!(call_sid = %self.call_sid, "ignoring a repeated connected/start");
                    }
                    None => return Ending::gone(),
                },
                action = self.agent.actions.recv() => match action {
                    Some(AgentAction::Say(utterance)) => {
                        if hangup_deadline.is_none() {
                            self.player.enqueue(utterance);
                            wake = Some(Instant::now());
                        }
                    }
                    Some(AgentAction::Interrupt) => {
                        if let Err(err) = self.interrupt(sink).await {
                            return sink_failed(&self.call_sid, &err);
                        }
                        wake = Some(Instant::now());
                    }
                    Some(AgentAction::Hangup(outcome)) => {
                        self.outcome = Some(outcome);
                        hangup_deadline.get_or_insert(Instant::now() + GOODBYE_MAX);
                    }
                    Some(AgentAction::Turn(turn)) => self.write_turn(turn),
                    Some(AgentAction::Screening(verdict)) => self.write_screening(verdict),
                    Some(AgentAction::Event(e)) => self.event(e.kind, e.payload),
                    Some(AgentAction::Transfer(request)) => {
                        if self.transferred.is_none() && self.pending_transfer.is_none() {
                            self.event(
                                "transfer_attempt",
                                json!({ "department": request.department, "to": request.to }),
                            );
                            self.pending_transfer = Some(request);
                            hangup_deadline.get_or_insert(Instant::now() + GOODBYE_MAX);
                        }
                    }
                    None => {
                        tracing::error!(call_sid = %self.call_sid, "agent task ended before the call");
                        return Ending {
                            reason: EndReason::ProtocolError("agent failed".into()),
                            close: Some((1011, "agent failed".into())),
                        };
                    }
                },
                () = &mut pacing, if wake.is_some() => {
                    match self.pump(sink).await {
                        Ok(next) => wake = next,
                        Err(err) => return sink_failed(&self.call_sid, &err),
                    }
                }
            }
        }
    }

    /// Sends every frame and mark that is due (one batch, one socket write); returns when the
    /// player next needs attention.
    async fn pump<S: MediaSink>(&mut self, sink: &mut S) -> Result<Option<Instant>, SinkError> {
        let now = Instant::now();
        let next = loop {
            match self.player.step(now, &mut self.next_seq) {
                Step::Send {
                    frame,
                    late,
                    started,
                } => {
                    if let Some(started) = started {
                        self.utterance_started(started);
                    }
                    sink.send(Outgoing::Media(&frame)).await?;
                    self.ctx.metrics.frames_out.inc();
                    if late {
                        self.ctx.metrics.frames_late.inc();
                    }
                }
                Step::Mark(id) => sink.send(Outgoing::Mark(&id.mark_name())).await?,
                Step::WaitUntil(at) => break Some(at),
                Step::Idle => break None,
            }
        };
        sink.flush().await?;
        Ok(next)
    }

    /// Barge-in: drop queued audio and, when Twilio holds some of ours, `clear` it.
    async fn interrupt<S: MediaSink>(&mut self, sink: &mut S) -> Result<(), SinkError> {
        let cut = self.player.interrupt();
        self.ctx.metrics.frames_dropped.add(cut.dropped_frames);
        if cut.clear_needed {
            sink.send(Outgoing::Clear).await?;
            self.ctx.metrics.clears_sent.inc();
            self.event("barge_in", json!({ "dropped_frames": cut.dropped_frames }));
        }
        for finished in cut.finished {
            self.utterance_finished(finished);
        }
        Ok(())
    }

    fn utterance_started(&mut self, started: UtteranceStarted) {
        let timings = started.timings;
        self.ctx.metrics.observe_turn(&timings);
        let first_frame_ms = timings.first_audio_frame_ms.unwrap_or(0);
        let _ = self.agent.deliver(AgentEvent::Playing {
            id: started.id,
            first_frame_ms,
        });
        let Some(text) = started.text else {
            // The agent records this turn itself once it has the words (see `Utterance::text`).
            return;
        };
        let at = self.wall_at(first_frame_ms);
        self.ctx.store.push(Write::Turn(TurnRow {
            call_sid: self.call_sid.clone(),
            seq: started.seq,
            speaker: Speaker::Agent,
            text,
            started_at: at,
            ended_at: None,
            interrupted: false,
            timings,
        }));
    }

    fn utterance_finished(&mut self, finished: UtteranceFinished) {
        if let Some(seq) = finished.seq {
            self.ctx.store.push(Write::AgentTurnEnded {
                call_sid: self.call_sid.clone(),
                seq,
                ended_at: self.wall_at(self.clock.now_ms()),
                interrupted: finished.interrupted,
            });
        }
        let _ = self.agent.deliver(AgentEvent::Played {
            id: finished.id,
            interrupted: finished.interrupted,
        });
    }

    fn write_turn(&mut self, turn: TranscriptTurn) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ctx.store.push(Write::Turn(TurnRow {
            call_sid: self.call_sid.clone(),
            seq,
            speaker: turn.speaker,
            text: turn.text,
            started_at: self.wall_at(turn.started_ms),
            ended_at: Some(self.wall_at(turn.ended_ms)),
            interrupted: false,
            timings: turn.timings,
        }));
    }

    fn write_screening(&mut self, verdict: ScreeningVerdict) {
        self.ctx.store.push(Write::Screening(ScreeningRow {
            call_sid: self.call_sid.clone(),
            verdict,
        }));
    }

    /// Records a node event (non-critical: shed first when the queue is long).
    fn event(&mut self, kind: &'static str, payload: serde_json::Value) {
        let key = format!("node:{}:{}", self.stream_sid, self.next_event);
        self.next_event += 1;
        self.ctx.store.push(Write::Event(CallEventRow {
            call_sid: self.call_sid.clone(),
            kind,
            payload,
            idempotency_key: key,
            at: Utc::now(),
        }));
    }

    fn wall_at(&self, ms: u32) -> DateTime<Utc> {
        self.wall_start + chrono::Duration::milliseconds(i64::from(ms))
    }

    /// The media is over: settle utterances, let the agent finish, write the call's end.
    async fn wrap_up(&mut self, reason: &EndReason) {
        let rest = self.player.finish();
        self.ctx.metrics.frames_dropped.add(rest.dropped_frames);
        for finished in rest.finished {
            self.utterance_finished(finished);
        }
        let _ = self.agent.deliver(AgentEvent::Ended(reason.clone()));
        let _ = tokio::time::timeout(AGENT_WRAP_UP, &mut self.agent.task).await;
        let mut agent_outcome = None;
        while let Ok(action) = self.agent.actions.try_recv() {
            match action {
                AgentAction::Turn(turn) => self.write_turn(turn),
                AgentAction::Screening(verdict) => self.write_screening(verdict),
                AgentAction::Event(e) => self.event(e.kind, e.payload),
                AgentAction::Hangup(outcome) => agent_outcome = Some(outcome),
                AgentAction::Say(_) | AgentAction::Interrupt | AgentAction::Transfer(_) => {}
            }
        }
        self.agent.task.abort();
        self.ctx
            .turn_seqs
            .session_ended(&self.call_sid, self.next_seq);
        if self.transferred.is_some() {
            // Not over: `transferred` or back to the AI once the dial reports.
            self.outcome = None;
            return;
        }
        let outcome = self.outcome.or(agent_outcome).unwrap_or(match reason {
            EndReason::ProtocolError(_) | EndReason::NodeShutdown => CallOutcome::Failed,
            _ => CallOutcome::Abandoned,
        });
        self.outcome = Some(outcome);
        let elapsed_ms = self.clock.now_ms();
        self.ctx.store.push(Write::CallEnded(CallEndedRow {
            call_sid: self.call_sid.clone(),
            outcome: Some(outcome),
            ended_at: self.wall_at(elapsed_ms),
            duration_s: elapsed_ms / 1000,
            call_over: matches!(reason, EndReason::Stopped | EndReason::AgentHangup),
        }));
    }

    /// The agent's last words before a hang-up or transfer have played. A hang-up ends the
    /// session; a transfer is started over REST and the session waits for Twilio's `stop`
    /// (`None`), or, when it cannot start, the agent hears [`AgentEvent::TransferFailed`] and
    /// the call goes on (`None`).
    async fn after_goodbye(&mut self, transfer_deadline: &mut Option<Instant>) -> Option<Ending> {
        let Some(request) = self.pending_transfer.take() else {
            return Some(Ending::of(EndReason::AgentHangup));
        };
        match self.transfer_at_twilio(&request).await {
            Ok(()) => {
                tracing::info!(call_sid = %self.call_sid, department = %request.department, "call transferred");
                self.event(
                    "transfer_started",
                    json!({ "department": request.department }),
                );
                self.transferred = Some(request);
                *transfer_deadline = Some(Instant::now() + STOP_AFTER_TRANSFER_WAIT);
            }
            Err(reason) => {
                tracing::warn!(call_sid = %self.call_sid, department = %request.department, reason = %reason, "transfer could not start");
                self.event(
                    "transfer_failed",
                    json!({ "department": request.department, "reason": reason }),
                );
                self.outcome = None;
                let _ = self.agent.deliver(AgentEvent::TransferFailed { reason });
            }
        }
        None
    }

    /// Replaces the call's TwiML with `<Dial action=…/telephony/dial-result timeout=20>` to the
    /// target (twilio.md §6), so the edge decides what a missed dial does.
    async fn transfer_at_twilio(&self, request: &TransferRequest) -> Result<(), String> {
        let Some(twilio) = &self.ctx.twilio else {
            return Err(
                "no Twilio account configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)".into(),
            );
        };
        let twiml = transfer_twiml(request, self.ctx.webhook_base_url.as_deref());
        twilio
            .update_call(&self.call_sid, &CallUpdate::Twiml(twiml))
            .await
            .map_err(|e| e.to_string())
    }

    /// Ends the call at Twilio (REST) before the socket closes, then waits briefly for `stop`.
    async fn hang_up_at_twilio(&mut self, events: &mut mpsc::Receiver<StreamEvent>) {
        let Some(twilio) = self.ctx.twilio.clone() else {
            tracing::debug!(call_sid = %self.call_sid, "no Twilio credentials: ending the call by closing the stream");
            return;
        };
        if let Err(err) = twilio.hang_up(&self.call_sid).await {
            tracing::warn!(call_sid = %self.call_sid, error = %err, "REST hang-up failed; closing the stream");
            return;
        }
        let deadline = Instant::now() + STOP_AFTER_HANGUP_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(StreamEvent::Stop | StreamEvent::Closed(_))) | Ok(None) | Err(_) => return,
                Ok(Some(_)) => {}
            }
        }
    }
}

/// The TwiML that transfers a call: a `<Dial>` to a number or SIP URI whose `action` reports
/// the result to the edge (`?transfer=1` marks it as the node's transfer, not forward mode).
pub fn transfer_twiml(request: &TransferRequest, webhook_base_url: Option<&str>) -> String {
    use shared::twiml::{Dial, Method, Number, Sip, VoiceResponse};
    let mut dial = Dial::new().timeout(TRANSFER_DIAL_TIMEOUT_S);
    if let Some(base) = webhook_base_url {
        dial = dial
            .action(format!(
                "{}/telephony/dial-result?transfer=1",
                base.trim_end_matches('/')
            ))
            .method(Method::Post);
    }
    let dial = if shared::routing::is_sip_uri(&request.to) {
        dial.sip(Sip::new(&request.to))
    } else {
        dial.number(Number::new(&request.to))
    };
    VoiceResponse::new().dial(dial).to_xml()
}

/// Writing to the socket failed: the peer is gone.
fn sink_failed(call_sid: &str, err: &SinkError) -> Ending {
    tracing::info!(call_sid, error = %err, "media socket gone");
    Ending::gone()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
