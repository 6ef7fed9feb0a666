//! [`AiAgent`]: the call agent of the offline pipeline, for every mode.
//!
//! Per call: a VAD (Silero, or energy without its model) cuts the caller's utterances (with
//! start/stop hangover) → Whisper transcribes each on the inference pool → the mode's flow
//! decides the reply (screening: classifier verdict; receptionist and forward-missed:
//! knowledge-base answer) → espeak-ng speaks it clause by clause with Piper (espeak-ng when
//! Piper is not installed; the first clause goes out while the rest is synthesized).
//! Caller speech of at least `barge_in_frames` over the agent's own speech interrupts it.
//! Whisper starts at a tentative end of turn (200 ms of silence) while the stop hangover runs;
//! its transcript is used only if the turn then ends with no more speech, so the caller hears
//! the reply sooner without being answered in a pause.
//! Every turn carries its timings (end of caller speech, STT final, reply text ready, first TTS
//! audio; the session adds the first frame sent).
//!
//! Without model files the node runs [`GreetingRecorder`](crate::agent::greeting_recorder)
//! instead ([`agent_factory`]), with a warning saying how to get them.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant as StdInstant;

use shared::domain::{CallMode, CallOutcome, ScreeningLabel};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AiModels;
use super::flow::receptionist::{ReceptionistFlow, ReceptionistSetup};
use super::flow::screening::{ScreeningFlow, ScreeningState};
use super::flow::{After, CapturedLead, Reply, clauses, context};
use super::kb::{self, KnowledgeBase};
use super::pool::InferencePool;
use super::screening::{self, ScreeningClassifier};
use super::vad_silero::CallVad;
use crate::agent::greeting_recorder::{
    GreetingRecorderFactory, PromptVoice, Prompts, RecorderConfig,
};
use crate::agent::vad::{VadConfig, VadTransition};
use crate::agent::{
    AgentAction, AgentEvent, AgentFactory, AgentHandle, AgentOutput, CallAgent, CallClock,
    CallStarted, EndReason, ScreeningAction, ScreeningVerdict, Speaker, SpeechAudio,
    TranscriptTurn, TransferRequest, TurnTimings, UtteranceId,
};
use crate::metrics::Metrics;
use crate::providers::ProviderSource;
use crate::providers::TenantProviders;
use crate::providers::call::{CallCloud, LlmTurn};
use crate::providers::realtime_openai::RealtimeAgentFactory;

/// Bytes of one 20 ms mu-law frame.
const FRAME: usize = 160;

/// Tuning of the AI agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AiAgentConfig {
    /// Voiced frames over the agent's speech that count as barge-in (10 = 200 ms): shorter
    /// noises and back-channel words ("mm-hm") do not interrupt.
    pub barge_in_frames: u32,
    /// The VAD's tuning (stop hangover 500 ms: a short pause inside a sentence does not end it).
    pub vad: VadConfig,
    /// While the caller talks longer than this, a partial transcript is made every this many
    /// ms of speech (logged; the final transcript replaces it).
    pub partial_every_ms: u32,
    /// How replies are voiced: `Espeak` means the Piper voice when it is installed, espeak-ng
    /// otherwise; `Tone` is for tests that must not depend on a synthesizer.
    pub voice: PromptVoice,
    /// Unvoiced frames after which the offline transcription starts, before the stop hangover
    /// has ended the turn (0: never). Waiting out the whole hangover before Whisper starts
    /// spent most of the 1.2 s voice-to-voice budget; started at a tentative end of turn, the
    /// transcript is ready when the turn really ends, and is thrown away if the caller goes
    /// on. Only the reply waits for the real end of turn, so a pause never gets answered.
    pub eager_stt_frames: u32,
}

impl Default for AiAgentConfig {
    fn default() -> Self {
        AiAgentConfig {
            barge_in_frames: 10,
            // 500 ms of silence ends a turn: the upper end of what the measurements suggest
            // (300–500 ms) since a phone caller pauses mid-sentence more than a reader does.
            vad: VadConfig {
                stop_frames: 25,
                ..VadConfig::default()
            },
            // Only long turns: a partial holds the inference pool for ~0.5 s, which the final
            // transcript of a short turn would wait for.
            partial_every_ms: 5_000,
            voice: PromptVoice::Espeak,
            // 200 ms: the trailing audio kept for Whisper (see `on_audio`) is all there by
            // then, so the eager cut is the cut the real end of turn makes.
            eager_stt_frames: 10,
        }
    }
}

/// A transcription started at a tentative end of turn ([`AiAgentConfig::eager_stt_frames`]).
/// A voiced frame discards it (the transcript would miss the caller's new words).
#[derive(Debug)]
struct EagerStt {
    /// Bytes of the utterance it transcribes: the real cut must be exactly these.
    covered: usize,
    /// The transcription, on the inference pool.
    task: tokio::task::JoinHandle<Option<String>>,
}

/// What every AI call of the node shares.
#[derive(Debug)]
struct Shared {
    /// The models.
    models: Arc<AiModels>,
    /// Where inference runs.
    pool: InferencePool,
    /// The tenant's KB and examples; `None` in tests without a database.
    db: Option<PgPool>,
    /// Tuning.
    config: AiAgentConfig,
    /// The knowledge base of every call when the node has no database (benches, tests): the
    /// tenant's own rows replace it whenever a database is configured.
    fixed_kb: Option<KnowledgeBase>,
    /// How eager transcription went over all calls (benches and tests read it).
    eager: EagerCounters,
}

/// Counters behind [`EagerSttStats`].
#[derive(Debug, Default)]
struct EagerCounters {
    /// Transcriptions started at a tentative end of turn.
    started: AtomicU64,
    /// Of those, used for the turn.
    used: AtomicU64,
    /// Of those, thrown away because the caller went on.
    discarded: AtomicU64,
}

/// How eager transcription ([`AiAgentConfig::eager_stt_frames`]) went over a factory's calls:
/// the bench reports how often the early start paid off, tests check it happened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EagerSttStats {
    /// Transcriptions started at a tentative end of turn.
    pub started: u64,
    /// Of those, used as the turn's transcript.
    pub used: u64,
    /// Of those, thrown away because the caller spoke again.
    pub discarded: u64,
}

/// Starts an [`AiAgent`] for every call.
#[derive(Debug, Clone)]
pub struct AiAgentFactory {
    /// Shared by the calls.
    shared: Arc<Shared>,
    /// Cloud providers per tenant / from the environment (offline when none is configured).
    providers: Arc<ProviderSource>,
}

impl AiAgentFactory {
    /// A factory over loaded models.
    pub fn new(
        models: Arc<AiModels>,
        pool: InferencePool,
        db: Option<PgPool>,
        config: AiAgentConfig,
    ) -> Self {
        AiAgentFactory {
            shared: Arc::new(Shared {
                models,
                pool,
                db,
                config,
                fixed_kb: None,
                eager: EagerCounters::default(),
            }),
            providers: Arc::new(ProviderSource::offline()),
        }
    }

    /// Calls without a database answer from `kb` (a bench or test has no tenant rows to load).
    pub fn with_knowledge_base(mut self, kb: KnowledgeBase) -> Self {
        self.shared = Arc::new(Shared {
            models: Arc::clone(&self.shared.models),
            pool: self.shared.pool.clone(),
            db: self.shared.db.clone(),
            config: self.shared.config,
            fixed_kb: Some(kb),
            eager: EagerCounters::default(),
        });
        self
    }

    /// Eager transcriptions over this factory's calls so far.
    pub fn eager_stt_stats(&self) -> EagerSttStats {
        let c = &self.shared.eager;
        EagerSttStats {
            started: c.started.load(Ordering::Relaxed),
            used: c.used.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
        }
    }

    /// Calls use the cloud providers `source` finds (the tenant's settings, else its
    /// environment defaults), falling back to the offline models when one fails.
    pub fn with_providers(mut self, source: ProviderSource) -> Self {
        self.providers = Arc::new(source);
        self
    }
}

impl AiAgentFactory {
    /// One call's agent, not started yet: [`AgentFactory::start`] spawns it; the Realtime agent
    /// runs it inline as its fallback, handing over the tenant's provider rows it already read
    /// (`tenant`; `None`: the agent reads them at `Started`).
    pub fn agent(
        &self,
        call: &CallStarted,
        metrics: Arc<Metrics>,
        tenant: Option<TenantProviders>,
    ) -> AiAgent {
        let mut agent = AiAgent::new(Arc::clone(&self.shared), call);
        agent.cloud = CallCloud::new(Arc::clone(&self.providers), metrics, &call.call_sid)
            .with_tenant_providers(tenant);
        agent
    }
}

impl AgentFactory for AiAgentFactory {
    fn start(&self, call: &CallStarted, metrics: Arc<Metrics>) -> AgentHandle {
        AgentHandle::spawn(self.agent(call, Arc::clone(&metrics), None), metrics)
    }
}

/// The node's agent factory: the AI agent when the models are installed, otherwise the
/// greeting recorder with a warning (the node still answers calls). Either runs behind the
/// Realtime agent, which takes the calls the tenant's settings or `CALLGATE_REALTIME_*` send to
/// OpenAI Realtime and hands every other call (and a failed Realtime session) to it.
pub async fn agent_factory(db: Option<PgPool>) -> Arc<dyn AgentFactory> {
    let pool = InferencePool::for_this_machine();
    let providers = ProviderSource::from_env();
    match AiModels::load_from_env(&pool).await {
        Ok(models) => Arc::new(RealtimeAgentFactory::new(
            AiAgentFactory::new(models, pool, db.clone(), AiAgentConfig::default())
                .with_providers(providers.clone()),
            providers,
            db,
        )),
        Err(err) => {
            tracing::warn!(
                error = %err,
                "offline AI models unavailable: calls get the greeting recorder (no speech \
                 recognition); run `cargo xtask models` and set CALLGATE_MODELS_DIR"
            );
            let prompts = Arc::new(Prompts::new(PromptVoice::Espeak));
            let warm = Arc::clone(&prompts);
            tokio::spawn(async move { warm.warm_up().await });
            Arc::new(RealtimeAgentFactory::new(
                GreetingRecorderFactory {
                    prompts,
                    config: RecorderConfig::default(),
                },
                providers,
                db,
            ))
        }
    }
}

/// The mode's dialogue.
#[derive(Debug)]
enum Flow {
    Screening(ScreeningFlow),
    Receptionist(ReceptionistFlow),
}

/// One call's AI agent; see the module docs.
#[derive(Debug)]
pub struct AiAgent {
    /// Models, pool, database, tuning.
    shared: Arc<Shared>,
    /// The call clock.
    clock: CallClock,
    /// For logs.
    call_sid: String,
    /// The tenant, when its id parses.
    tenant: Option<Uuid>,
    /// The dialogue.
    flow: Flow,
    /// The tenant's KB, loaded at the first question.
    kb: Option<KnowledgeBase>,
    /// The classifier with the tenant's own examples, built at the first introduction.
    classifier: Option<ScreeningClassifier>,
    /// Cuts utterances: Silero when the node loaded it, the energy VAD otherwise.
    vad: CallVad,
    /// The last few frames before speech starts (the VAD reports a start a few frames late).
    preroll: VecDeque<u8>,
    /// Mu-law of the current utterance.
    utterance: Vec<u8>,
    /// Bytes of `utterance` up to its last voiced frame (the rest is stop hangover).
    voiced_len: usize,
    /// Utterance bytes already covered by a partial transcript.
    partial_at: usize,
    /// Call-clock ms when the current utterance started.
    speech_started_ms: u32,
    /// Call-clock ms of the end of the last voiced frame.
    last_voiced_end_ms: u32,
    /// The transcript started at the tentative end of the current utterance, if any.
    eager: Option<EagerStt>,
    /// Utterances said and not yet played out.
    talking: HashSet<UtteranceId>,
    /// Barge-in already signalled for the current talk.
    barged_in: bool,
    /// Set once the flow has said goodbye.
    outcome: Option<CallOutcome>,
    /// Caller utterances transcribed.
    caller_turns: u32,
    /// The call's cloud providers (each falls back to the offline model above when it fails).
    cloud: CallCloud,
}

impl AiAgent {
    fn new(shared: Arc<Shared>, call: &CallStarted) -> Self {
        let vad = super::vad_silero::call_vad(shared.models.silero.as_ref(), shared.config.vad);
        AiAgent {
            clock: call.clock,
            call_sid: call.call_sid.clone(),
            tenant: call.tenant_id.parse().ok(),
            flow: match call.mode {
                // Replaced by the tenant's setup at `Started` ([`AiAgent::load_flow`]).
                CallMode::Screening => Flow::Screening(ScreeningFlow::default()),
                CallMode::Receptionist | CallMode::Forward => {
                    Flow::Receptionist(ReceptionistFlow::default())
                }
            },
            kb: None,
            classifier: None,
            vad,
            preroll: VecDeque::new(),
            utterance: Vec::new(),
            voiced_len: 0,
            partial_at: 0,
            speech_started_ms: 0,
            last_voiced_end_ms: 0,
            eager: None,
            talking: HashSet::new(),
            barged_in: false,
            outcome: None,
            caller_turns: 0,
            cloud: CallCloud::new(
                Arc::new(ProviderSource::offline()),
                Arc::new(Metrics::new()),
                &call.call_sid,
            ),
            shared,
        }
    }

    /// Speaks `text` clause by clause: the first clause is synthesized now and queued as a
    /// stream; the rest follow from a task, stopping if the caller barges in.
    async fn speak(&mut self, text: &str, mut timings: TurnTimings, out: &AgentOutput) {
        let parts = clauses(text);
        let Some((first, rest)) = parts.split_first() else {
            return;
        };
        let voice = self.cloud.voice();
        let first_audio = match &voice {
            Some(v) => v.synthesize(first).await,
            None => None,
        };
        let first_audio = match first_audio {
            Some(audio) => audio,
            None => synthesize(&self.shared, first).await,
        };
        timings.first_tts_byte_ms = Some(self.clock.now_ms());
        let (tx, rx) = mpsc::channel(8);
        let _ = tx.send(first_audio).await;
        let id = out.say(SpeechAudio::Stream(rx), text, timings);
        self.talking.insert(id);
        let rest: Vec<String> = rest.to_vec();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            for clause in rest {
                let cloud = match &voice {
                    Some(v) => v.synthesize(&clause).await,
                    None => None,
                };
                let audio = match cloud {
                    Some(audio) => audio,
                    None => synthesize(&shared, &clause).await,
                };
                if tx.send(audio).await.is_err() {
                    break; // interrupted: nobody is listening
                }
            }
        });
    }

    /// Asks the model for its part in a receptionist turn. With `leads` (the flow speaks the
    /// model's words first), the reply streams: its first clause is synthesized and said as
    /// soon as it is complete, while the rest still streams, so the caller hears the answer
    /// after the first clause rather than the whole reply. Returns the model's turn and the
    /// clause already said, if any. A clause that is the model's "no answer" word is never said.
    async fn model_turn(
        &mut self,
        text: &str,
        kb_answer: Option<&str>,
        leads: bool,
        speech_end_ms: u32,
        stt_final_ms: u32,
        out: &AgentOutput,
    ) -> (Option<LlmTurn>, Option<String>) {
        if !leads {
            return (
                self.cloud.receptionist_turn(text, kb_answer, None).await,
                None,
            );
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let voice = self.cloud.voice();
        let shared = Arc::clone(&self.shared);
        let clock = self.clock;
        let cloud = &mut self.cloud;
        let model = async move {
            let turn = cloud.receptionist_turn(text, kb_answer, Some(&tx)).await;
            drop(tx);
            turn
        };
        let first = async move {
            let mut streamed = String::new();
            let mut first_token_ms = None;
            while let Some(delta) = rx.recv().await {
                first_token_ms.get_or_insert_with(|| clock.now_ms());
                streamed.push_str(&delta);
                let Some(clause) = first_clause(&streamed) else {
                    continue;
                };
                if crate::providers::call::is_no_answer(&clause) {
                    return None;
                }
                let cloud = match &voice {
                    Some(v) => v.synthesize(&clause).await,
                    None => None,
                };
                let audio = match cloud {
                    Some(audio) => audio,
                    None => synthesize(&shared, &clause).await,
                };
                let timings = TurnTimings {
                    speech_end_ms: Some(speech_end_ms),
                    stt_final_ms: Some(stt_final_ms),
                    first_token_ms,
                    first_tts_byte_ms: Some(clock.now_ms()),
                    ..TurnTimings::default()
                };
                let (audio_tx, audio_rx) = mpsc::channel(1);
                let _ = audio_tx.send(audio).await;
                let id = out.say(SpeechAudio::Stream(audio_rx), clause.clone(), timings);
                return Some((clause, id));
            }
            None
        };
        let (model, first) = tokio::join!(model, first);
        match first {
            Some((clause, id)) => {
                self.talking.insert(id);
                (model, Some(clause))
            }
            None => (model, None),
        }
    }

    /// Says a flow's reply, then does what it commits to: store a confirmed lead, hang up, or
    /// transfer (the session starts the transfer once the words have played).
    async fn reply(&mut self, reply: Reply, timings: TurnTimings, out: &AgentOutput) {
        self.speak(&reply.text, timings, out).await;
        self.commit(reply, out).await;
    }

    /// Does what a reply commits to once its words are queued.
    async fn commit(&mut self, reply: Reply, out: &AgentOutput) {
        if let Some(lead) = &reply.lead {
            self.store_lead(lead).await;
        }
        match reply.after {
            After::Listen => {}
            After::Hangup(outcome) => {
                self.outcome = Some(outcome);
                out.send(AgentAction::Hangup(outcome));
            }
            After::Transfer(target) => {
                out.send(AgentAction::Transfer(TransferRequest {
                    to: target.to,
                    department: target.department,
                }));
            }
        }
    }

    /// Replaces the default flow with one set up for the tenant and this call (departments,
    /// hours, policy, allow list, how the call got here). Without a database the stream's
    /// parameters still say the caller ID and whether this follows a failed transfer.
    async fn load_flow(&mut self, call: &CallStarted) {
        let db = self.shared.db.clone();
        match (&mut self.flow, db, self.tenant) {
            (Flow::Screening(flow), Some(db), Some(tenant)) => {
                match context::screening_setup(&db, tenant, call).await {
                    Ok(setup) => *flow = ScreeningFlow::new(setup),
                    Err(err) => {
                        tracing::warn!(call_sid = %self.call_sid, error = %err, "could not load the screening setup; using defaults");
                    }
                }
            }
            (Flow::Receptionist(flow), db, tenant) => {
                let loaded = match (db, tenant) {
                    (Some(db), Some(tenant)) => {
                        context::receptionist_setup(&db, tenant, call, jiff::Timestamp::now())
                            .await
                            .inspect_err(|err| {
                                tracing::warn!(call_sid = %self.call_sid, error = %err, "could not load the receptionist setup; using defaults");
                            })
                            .ok()
                    }
                    _ => None,
                };
                *flow = ReceptionistFlow::new(loaded.unwrap_or_else(|| ReceptionistSetup {
                    caller_id: context::caller_id(call),
                    entry: context::entry_of(call),
                    ..ReceptionistSetup::default()
                }));
            }
            (Flow::Screening(_), _, _) => {}
        }
    }

    /// Stores a lead the caller confirmed and queues its e-mail and owner SMS.
    async fn store_lead(&self, lead: &CapturedLead) {
        let (Some(db), Some(tenant)) = (&self.shared.db, self.tenant) else {
            tracing::warn!(call_sid = %self.call_sid, "lead confirmed but the node has no database: not stored");
            return;
        };
        match crate::jobs::lead_notify::store_call_lead(db, tenant, &self.call_sid, lead).await {
            Ok(Some(lead_id)) => {
                tracing::info!(call_sid = %self.call_sid, lead = %lead_id, urgency = lead.urgency.as_str(), "lead stored");
            }
            Ok(None) => {
                tracing::debug!(call_sid = %self.call_sid, "lead already stored for this call")
            }
            Err(err) => tracing::error!(call_sid = %self.call_sid, error = %err, "lead not stored"),
        }
    }

    async fn transcribe(&self, mulaw: Vec<u8>) -> Option<String> {
        if let Some(text) = self.cloud.transcribe(&mulaw).await {
            return Some(text);
        }
        transcribe_offline(Arc::clone(&self.shared), self.call_sid.clone(), mulaw).await
    }

    /// Starts transcribing the utterance so far (as the end of turn would cut it) while the
    /// stop hangover runs: see [`AiAgentConfig::eager_stt_frames`]. Offline STT only: a cloud
    /// STT streams, and a second request per turn would be billed.
    fn start_eager_stt(&mut self) {
        if self.cloud.has_stt() {
            return;
        }
        let covered = self.turn_len();
        let audio = self.utterance[..covered].to_vec();
        let task = tokio::spawn(transcribe_offline(
            Arc::clone(&self.shared),
            self.call_sid.clone(),
            audio,
        ));
        self.shared.eager.started.fetch_add(1, Ordering::Relaxed);
        self.eager = Some(EagerStt { covered, task });
    }

    /// Bytes of the current utterance an end of turn keeps: up to its last voiced frame and
    /// 200 ms of the silence after it (the rest is stop hangover, longer after a short
    /// utterance). The eager transcription cuts the same, so its transcript can stand for
    /// the turn's.
    fn turn_len(&self) -> usize {
        (self.voiced_len + 10 * FRAME).min(self.utterance.len())
    }

    /// Drops the eager transcript, if any (the caller went on, or it covers other audio than
    /// the turn's cut).
    fn discard_eager_stt(&mut self) {
        if let Some(eager) = self.eager.take() {
            // The pool job itself finishes; only its result is thrown away.
            eager.task.abort();
            self.shared.eager.discarded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(call_sid = %self.call_sid, "caller went on: eager transcript discarded");
        }
    }
}

/// Transcribes 8 kHz mu-law with Whisper on the inference pool; `None` (logged) on failure.
/// A free function so an eager transcription can run in its own task.
async fn transcribe_offline(
    shared: Arc<Shared>,
    call_sid: String,
    mulaw: Vec<u8>,
) -> Option<String> {
    let models = Arc::clone(&shared.models);
    let t0 = StdInstant::now();
    let seconds = mulaw.len() as f32 / 8000.0;
    let result = shared
        .pool
        .run(move || {
            let samples = super::audio::phone_to_whisper(&mulaw);
            models.transcriber.transcribe(&samples)
        })
        .await;
    match result {
        Ok(Ok(text)) => {
            tracing::debug!(
                call_sid = %call_sid,
                audio_s = seconds,
                ms = t0.elapsed().as_millis() as u64,
                "transcribed"
            );
            Some(text)
        }
        Ok(Err(err)) => {
            tracing::warn!(call_sid = %call_sid, error = %err, "speech recognition failed");
            None
        }
        Err(err) => {
            tracing::warn!(call_sid = %call_sid, error = %err, "speech recognition job failed");
            None
        }
    }
}

impl AiAgent {
    /// The caller finished an utterance: transcribe (or take the eager transcript of exactly
    /// this audio), record, answer.
    async fn on_utterance(&mut self, mulaw: Vec<u8>, eager: Option<EagerStt>, out: &AgentOutput) {
        let speech_end_ms = self.last_voiced_end_ms;
        let eager_text = match eager {
            Some(eager) => {
                self.shared.eager.used.fetch_add(1, Ordering::Relaxed);
                eager.task.await.ok()
            }
            None => None,
        };
        let text = match eager_text {
            Some(text) => text,
            None => self.transcribe(mulaw).await,
        };
        let Some(text) = text else {
            return;
        };
        let stt_final_ms = self.clock.now_ms();
        if !has_words(&text) {
            return;
        }
        self.caller_turns += 1;
        out.send(AgentAction::Turn(TranscriptTurn {
            speaker: Speaker::Caller,
            text: text.clone(),
            started_ms: self.speech_started_ms,
            ended_ms: speech_end_ms,
            timings: TurnTimings {
                speech_end_ms: Some(speech_end_ms),
                stt_final_ms: Some(stt_final_ms),
                ..TurnTimings::default()
            },
        }));
        if self.outcome.is_some() {
            return;
        }
        // The first clause of the model's answer, if it was already spoken while streaming.
        let mut spoken_first: Option<String> = None;
        let reply = match &self.flow {
            Flow::Screening(flow) if flow.wants_verdict() => {
                let verdict = self.classify(&text).await;
                let Flow::Screening(flow) = &mut self.flow else {
                    return;
                };
                let (reply, action) = flow.on_introduction(verdict.label, verdict.confidence);
                tracing::info!(
                    call_sid = %self.call_sid,
                    label = %verdict.label,
                    confidence = verdict.confidence,
                    "caller screened"
                );
                out.send(AgentAction::Screening(ScreeningVerdict {
                    action: Some(action),
                    ..verdict
                }));
                Some(reply)
            }
            Flow::Screening(_) => {
                let Flow::Screening(flow) = &mut self.flow else {
                    return;
                };
                flow.on_caller(&text)
            }
            Flow::Receptionist(flow) => {
                let wants_answer = flow.wants_answer();
                let leads = wants_answer && answer_leads_reply(flow, &text);
                let answer = if wants_answer {
                    self.kb_answer(&text).await
                } else {
                    None
                };
                // With a model: it words the answer from the KB entry, or picks a tool. When
                // the flow would speak the model's words first, their first clause is spoken
                // as it streams in.
                let model = if wants_answer && self.cloud.has_llm() {
                    let (model, first) = self
                        .model_turn(
                            &text,
                            answer.as_deref(),
                            leads,
                            speech_end_ms,
                            stt_final_ms,
                            out,
                        )
                        .await;
                    spoken_first = first;
                    model
                } else {
                    None
                };
                let Flow::Receptionist(flow) = &mut self.flow else {
                    return;
                };
                match model {
                    Some(LlmTurn::Action(action)) => Some(flow.apply(action)),
                    Some(LlmTurn::Answer(words)) => flow.on_caller(&text, Some(&words)),
                    Some(LlmTurn::NoAnswer) => flow.on_caller(&text, None),
                    None => flow.on_caller(&text, answer.as_deref()),
                }
            }
        };
        let Some(reply) = reply else {
            return;
        };
        if let Some(first) = spoken_first {
            // The rest of the reply continues the clause already playing (a tool call after
            // some words, or a failed stream, speaks the flow's whole reply after it).
            let rest = reply
                .text
                .strip_prefix(first.as_str())
                .unwrap_or(&reply.text)
                .trim()
                .to_owned();
            self.speak(&rest, TurnTimings::default(), out).await;
            self.commit(reply, out).await;
            return;
        }
        let timings = TurnTimings {
            speech_end_ms: Some(speech_end_ms),
            stt_final_ms: Some(stt_final_ms),
            first_token_ms: Some(self.clock.now_ms()),
            ..TurnTimings::default()
        };
        self.reply(reply, timings, out).await;
    }

    /// Classifies the caller's introduction (with the tenant's own examples).
    async fn classify(&mut self, text: &str) -> ScreeningVerdict {
        if let Some(verdict) = self.cloud.screen(text).await {
            return verdict;
        }
        if self.classifier.is_none() {
            let base = self.shared.models.classifier.clone();
            let extra = match (&self.shared.db, self.tenant) {
                (Some(db), Some(tenant)) => {
                    let models = Arc::clone(&self.shared.models);
                    let pool = self.shared.pool.clone();
                    screening::load_tenant_examples(db, tenant, |texts| {
                        let models = Arc::clone(&models);
                        let pool = pool.clone();
                        async move { embed_on_pool(&pool, models, texts).await }
                    })
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "could not load the tenant's screening examples");
                        Vec::new()
                    })
                }
                _ => Vec::new(),
            };
            self.classifier = Some(base.with_extra(extra));
        }
        let classifier = self
            .classifier
            .clone()
            .unwrap_or_else(|| self.shared.models.classifier.clone());
        let models = Arc::clone(&self.shared.models);
        let owned = text.to_owned();
        match self
            .shared
            .pool
            .run(move || classifier.classify(&models.embedder, &owned))
            .await
        {
            Ok(Ok(v)) => ScreeningVerdict {
                label: v.label,
                intent: v.intent,
                confidence: v.confidence,
                rationale: v.rationale,
                action: None,
            },
            Ok(Err(err)) => unknown_verdict(&err.to_string()),
            Err(err) => unknown_verdict(&err.to_string()),
        }
    }

    /// The tenant's KB answer to `question`, if any is close enough.
    async fn kb_answer(&mut self, question: &str) -> Option<String> {
        if self.kb.is_none() {
            let loaded = match (&self.shared.db, self.tenant) {
                (Some(db), Some(tenant)) => {
                    let models = Arc::clone(&self.shared.models);
                    let pool = self.shared.pool.clone();
                    kb::load_for_tenant(db, tenant, |texts| {
                        let models = Arc::clone(&models);
                        let pool = pool.clone();
                        async move { embed_on_pool(&pool, models, texts).await }
                    })
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "could not load the tenant's knowledge base");
                        KnowledgeBase::default()
                    })
                }
                _ => self.shared.fixed_kb.clone().unwrap_or_default(),
            };
            self.kb = Some(loaded);
        }
        let kb = self.kb.as_ref()?;
        if kb.is_empty() {
            return None;
        }
        let query = embed_on_pool(
            &self.shared.pool,
            Arc::clone(&self.shared.models),
            vec![question.to_owned()],
        )
        .await
        .ok()?
        .pop()?;
        let found = kb.answer(&query);
        tracing::debug!(
            call_sid = %self.call_sid,
            similarity = kb.nearest(&query).map(|m| m.similarity),
            answered = found.is_some(),
            "knowledge base lookup"
        );
        found.map(|m| m.entry.answer.clone())
    }

    /// A partial transcript of a long utterance still in progress.
    async fn partial(&mut self) {
        if self.cloud.has_stt() {
            return; // logs only; not worth the offline model's CPU when the cloud transcribes
        }
        let audio = self.utterance.clone();
        self.partial_at = audio.len();
        if let Some(text) = self.transcribe(audio).await {
            tracing::debug!(call_sid = %self.call_sid, partial = %text, "partial transcript");
        }
    }

    async fn on_audio(&mut self, frame: &[u8], frame_end_ms: u32, out: &AgentOutput) {
        let start_frames = self.shared.config.vad.start_frames as usize;
        let transition = self.vad.push(frame).await;
        let voiced = self.vad.hangover().voiced_run() > 0;
        if voiced {
            self.last_voiced_end_ms = frame_end_ms;
        }
        match transition {
            VadTransition::SpeechStarted => {
                self.speech_started_ms =
                    frame_end_ms.saturating_sub(self.shared.config.vad.start_frames * 20);
                self.utterance.clear();
                self.utterance.extend(self.preroll.drain(..));
                self.utterance.extend_from_slice(frame);
                self.voiced_len = self.utterance.len();
                self.partial_at = 0;
            }
            VadTransition::SpeechEnded => {
                self.utterance.extend_from_slice(frame);
                self.utterance.truncate(self.turn_len());
                let utterance = std::mem::take(&mut self.utterance);
                // The eager transcript stands only for exactly this audio.
                let eager = self.eager.take_if(|e| e.covered == utterance.len());
                self.discard_eager_stt();
                self.on_utterance(utterance, eager, out).await;
            }
            VadTransition::None if self.vad.hangover().is_speaking() => {
                self.utterance.extend_from_slice(frame);
                let eager_at = self.shared.config.eager_stt_frames;
                if voiced {
                    self.voiced_len = self.utterance.len();
                    self.discard_eager_stt();
                } else if eager_at > 0 && self.vad.hangover().silent_run() == eager_at {
                    self.start_eager_stt();
                }
                let every = self.shared.config.partial_every_ms as usize * 8;
                if self.utterance.len() - self.partial_at >= every {
                    self.partial().await;
                }
            }
            VadTransition::None => {
                self.preroll.extend(frame);
                while self.preroll.len() > (start_frames + 2) * FRAME {
                    self.preroll.pop_front();
                }
            }
        }
        if !self.talking.is_empty()
            && !self.barged_in
            && self.vad.hangover().voiced_run() >= self.shared.config.barge_in_frames
        {
            self.barged_in = true;
            out.send(AgentAction::Interrupt);
        }
    }

    async fn on_ended(&mut self, reason: EndReason, out: &AgentOutput) {
        // A message often ends with the caller hanging up mid-sentence: keep it.
        let taking_message = matches!(
            &self.flow,
            Flow::Screening(f) if f.state == ScreeningState::TakingMessage
        ) || matches!(
            &self.flow,
            Flow::Receptionist(f) if f.is_taking_details()
        );
        if matches!(&self.flow, Flow::Receptionist(f) if f.lead_confirmed())
            && self.outcome.is_none()
        {
            self.outcome = Some(CallOutcome::MessageTaken);
        }
        if self.vad.hangover().is_speaking() && self.utterance.len() >= 25 * FRAME {
            let audio = std::mem::take(&mut self.utterance);
            let end_ms = self.last_voiced_end_ms;
            if let Some(text) = self.transcribe(audio).await.filter(|t| has_words(t)) {
                self.caller_turns += 1;
                out.send(AgentAction::Turn(TranscriptTurn {
                    speaker: Speaker::Caller,
                    text,
                    started_ms: self.speech_started_ms,
                    ended_ms: end_ms,
                    timings: TurnTimings {
                        speech_end_ms: Some(end_ms),
                        stt_final_ms: Some(self.clock.now_ms()),
                        ..TurnTimings::default()
                    },
                }));
                if taking_message && self.outcome.is_none() {
                    self.outcome = Some(CallOutcome::MessageTaken);
                }
            }
        }
        let outcome = self
            .outcome
            .unwrap_or(if taking_message && self.caller_turns > 1 {
                CallOutcome::MessageTaken
            } else if self.caller_turns > 0 {
                CallOutcome::Completed
            } else if matches!(reason, EndReason::Stopped | EndReason::SocketClosed) {
                CallOutcome::Abandoned
            } else {
                CallOutcome::Failed
            });
        out.send(AgentAction::Hangup(outcome));
    }
}

impl CallAgent for AiAgent {
    async fn on_event(&mut self, event: AgentEvent, out: &AgentOutput) {
        match event {
            AgentEvent::Started(call) => {
                self.cloud
                    .resolve(self.shared.db.as_ref(), self.tenant, out)
                    .await;
                self.load_flow(&call).await;
                let greeting = match &mut self.flow {
                    Flow::Screening(f) => f.start(),
                    Flow::Receptionist(f) => f.start(),
                };
                if matches!(&self.flow, Flow::Screening(f) if f.skipped_screening()) {
                    // Allow-listed: put through unscreened, and the inbox says why.
                    out.send(AgentAction::Screening(ScreeningVerdict {
                        label: ScreeningLabel::Legit,
                        intent: "contact on the allow list".into(),
                        confidence: 1.0,
                        rationale: "the caller's number is on the tenant's allow list".into(),
                        action: Some(ScreeningAction::Transfer),
                    }));
                }
                self.reply(greeting, TurnTimings::default(), out).await;
            }
            AgentEvent::TransferFailed { reason } => {
                tracing::info!(call_sid = %self.call_sid, reason = %reason, "transfer failed; taking details instead");
                let reply = match &mut self.flow {
                    Flow::Screening(f) => f.transfer_failed(),
                    Flow::Receptionist(f) => f.transfer_failed(),
                };
                self.reply(reply, TurnTimings::default(), out).await;
            }
            AgentEvent::Audio(audio) => {
                let frame_end_ms = self.clock.ms_at(audio.received_at);
                self.on_audio(audio.audio.as_slice(), frame_end_ms, out)
                    .await;
            }
            AgentEvent::Dtmf(_) | AgentEvent::Playing { .. } => {}
            AgentEvent::Played { id, .. } => {
                self.talking.remove(&id);
                if self.talking.is_empty() {
                    self.barged_in = false;
                }
            }
            AgentEvent::Ended(reason) => self.on_ended(reason, out).await,
        }
    }
}

/// A stand-in for the model's words when asking the flow how it would use them.
const MODEL_WORDS: &str = "\u{1}model words\u{1}";

/// Whether the flow's reply to `caller` would start with the model's answer (an FAQ answer),
/// rather than ignore it (a farewell, a transfer by keyword): only then may the answer be
/// spoken before the flow has seen it whole. Asked of a copy of the flow.
fn answer_leads_reply(flow: &ReceptionistFlow, caller: &str) -> bool {
    flow.clone()
        .on_caller(caller, Some(MODEL_WORDS))
        .is_some_and(|reply| reply.text.starts_with(MODEL_WORDS))
}

/// The first complete clause of streamed text (as [`clauses`] cuts it), once what follows
/// shows it is complete or it ends a sentence.
fn first_clause(streamed: &str) -> Option<String> {
    let parts = clauses(streamed);
    let first = parts.first()?;
    if parts.len() > 1 || streamed.trim_end().ends_with(['.', '?', '!', ';']) {
        Some(first.clone())
    } else {
        None
    }
}

/// Embeds `texts` on the pool.
async fn embed_on_pool(
    pool: &InferencePool,
    models: Arc<AiModels>,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, super::embed::EmbedError> {
    pool.run(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        models.embedder.embed_batch(&refs)
    })
    .await
    .map_err(|e| super::embed::EmbedError::Config(e.to_string()))?
}

fn unknown_verdict(error: &str) -> ScreeningVerdict {
    ScreeningVerdict {
        label: ScreeningLabel::Unknown,
        intent: "could not classify".into(),
        confidence: 0.0,
        rationale: format!("classifier failed: {error}"),
        action: None,
    }
}

/// Whether a transcript has real words (Whisper writes "[BLANK_AUDIO]", "(music)" or "..." for
/// noise).
fn has_words(text: &str) -> bool {
    let t = text.trim();
    !(t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || !t.chars().any(char::is_alphanumeric))
}

/// 8 kHz mu-law for `text`: Piper (on the inference pool) when installed, else espeak-ng, or a
/// tone when neither works (or in tests).
async fn synthesize(ctx: &Arc<Shared>, text: &str) -> Vec<u8> {
    if ctx.config.voice == PromptVoice::Espeak {
        if ctx.models.piper.is_some() {
            let models = Arc::clone(&ctx.models);
            let owned = text.to_owned();
            let piper = ctx
                .pool
                .run(move || models.piper.as_ref().map(|p| p.synthesize_mulaw(&owned)))
                .await;
            match piper {
                Ok(Some(Ok(audio))) => return audio,
                Ok(Some(Err(err))) => tracing::warn!(error = %err, "Piper failed; using espeak-ng"),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "Piper job failed; using espeak-ng"),
            }
        }
        match crate::speech::synthesize_mulaw(text).await {
            Ok(audio) => return audio,
            Err(err) => tracing::warn!(error = %err, "cannot synthesize speech; playing a tone"),
        }
    }
    let ms = (text.len() * 10).clamp(300, 3000);
    (0..ms * 8)
        .map(|i| {
            let t = i as f64 / 8000.0;
            shared::mulaw::encode(((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_transcripts_are_not_turns() {
        assert!(!has_words("[BLANK_AUDIO]"));
        assert!(!has_words(" ... "));
        assert!(!has_words("(music)"));
        assert!(has_words("Hi, it's Ann."));
    }
}
