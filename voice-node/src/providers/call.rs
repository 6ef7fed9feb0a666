//! One call's cloud providers as the AI agent uses them: each method either returns the
//! provider's answer or `None`, in which case the agent runs the offline model exactly as it
//! would without providers. A provider that failed (after its retries) is recorded on the call
//! ([`FailureRecorder`]) and not asked again for the rest of the call: the caller should wait
//! on one timeout, not on one per turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::fallback::{FailureRecorder, ProviderFailure};
use super::llm_openai::{ChatRole, LlmAction, Urgency};

use super::{
    CallProviders, ChatMessage, ProviderError, ProviderSource, TenantProviders, TextToSpeech,
};
use crate::agent::{AgentOutput, ScreeningVerdict};
use crate::ai::flow::lead;
use crate::ai::flow::receptionist::FlowAction;
use crate::metrics::Metrics;

/// Turns of conversation kept for the model (older ones are dropped: replies stay fast and
/// cheap, and a phone call's context is short).
const HISTORY_TURNS: usize = 12;

/// What the receptionist model is told.
const RECEPTIONIST_PROMPT: &str = "You are the phone receptionist of a small business. Answer \
the caller in one or two short sentences that sound natural when spoken, using only the \
knowledge-base context given. If the context does not answer the question, reply exactly \
UNKNOWN. Use the tools when the caller asks to be put through (transfer_call), is done \
(end_call), or wants a callback and has given their details (capture_lead).";

/// The model's way of saying the knowledge base has no answer (the flow then offers to take a
/// message, as it does offline).
const UNKNOWN: &str = "UNKNOWN";

/// A stage's provider, shared with the tasks that synthesize later clauses.
#[derive(Debug, Default)]
struct Tripped {
    stt: AtomicBool,
    tts: AtomicBool,
    llm: AtomicBool,
}

/// The cloud side of one call.
#[derive(Debug)]
pub struct CallCloud {
    /// Where this call's providers come from.
    source: Arc<ProviderSource>,
    /// Resolved at the call's start.
    providers: Arc<CallProviders>,
    /// Stages whose provider failed on this call.
    tripped: Arc<Tripped>,
    /// Counts failures and retries.
    metrics: Arc<Metrics>,
    /// For logs.
    call_sid: String,
    /// Set at the call's start (it needs the agent's output to record events).
    recorder: Option<FailureRecorder>,
    /// The conversation so far, for the receptionist model.
    history: Vec<ChatMessage>,
    /// The tenant's provider rows when the Realtime agent already read them before handing the
    /// call over ([`Self::with_tenant_providers`]): a call start reads them once.
    tenant_providers: Option<TenantProviders>,
}

/// The model's contribution to a receptionist turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmTurn {
    /// Speak this answer (the flow decides what follows, as for a knowledge-base answer).
    Answer(String),
    /// The knowledge base has nothing: the flow's "let me take a message" path.
    NoAnswer,
    /// The model chose an action; the flow runs it through its own transitions.
    Action(FlowAction),
}

/// A cloud voice for one utterance's clauses (cheap to clone into the synthesis task).
#[derive(Debug, Clone)]
pub struct CloudVoice {
    tts: TextToSpeech,
    recorder: FailureRecorder,
    tripped: Arc<Tripped>,
}

impl CloudVoice {
    /// `text` as 8 kHz mu-law from the cloud voice, or `None` (failure recorded) so the caller
    /// synthesizes it offline.
    pub async fn synthesize(&self, text: &str) -> Option<Vec<u8>> {
        if self.tripped.tts.load(Ordering::Relaxed) {
            return None;
        }
        let name = self.tts.name();
        let result = self
            .tts
            .synthesize(text, |e| self.recorder.retried(name, "tts", e))
            .await;
        match result {
            Ok(audio) => Some(audio),
            Err(err) => {
                // Several clause tasks may fail at once: record the first only.
                if !self.tripped.tts.swap(true, Ordering::Relaxed) {
                    self.recorder.failed(&ProviderFailure {
                        provider: name,
                        stage: "tts",
                        error: &err,
                        fallback: "offline",
                    });
                }
                None
            }
        }
    }
}

impl CallCloud {
    /// A call with providers from `source`, not resolved yet (offline until [`Self::resolve`]).
    pub fn new(source: Arc<ProviderSource>, metrics: Arc<Metrics>, call_sid: &str) -> Self {
        CallCloud {
            source,
            providers: Arc::new(CallProviders::default()),
            tripped: Arc::default(),
            metrics,
            call_sid: call_sid.to_owned(),
            recorder: None,
            history: Vec::new(),
            tenant_providers: None,
        }
    }

    /// Resolves from `tenant` (rows already read for this call) instead of reading them again.
    pub fn with_tenant_providers(mut self, tenant: Option<TenantProviders>) -> Self {
        self.tenant_providers = tenant;
        self
    }

    /// Looks up the tenant's providers (else the node's environment) at the call's start,
    /// unless they were handed over already read.
    pub async fn resolve(&mut self, db: Option<&PgPool>, tenant: Option<Uuid>, out: &AgentOutput) {
        self.recorder = Some(FailureRecorder::new(
            out.clone(),
            Arc::clone(&self.metrics),
            &self.call_sid,
        ));
        let rows = match self.tenant_providers.take() {
            Some(rows) => rows,
            None => self.source.tenant_providers(db, tenant).await,
        };
        let providers = self.source.for_call(&rows);
        if !providers.is_offline() {
            tracing::info!(
                call_sid = %self.call_sid,
                stt = providers.stt.as_ref().map_or("offline", |p| p.name()),
                tts = providers.tts.as_ref().map_or("offline", |p| p.name()),
                llm = providers.llm.as_ref().map_or("offline", |p| p.model()),
                "cloud providers for this call"
            );
        }
        self.providers = Arc::new(providers);
    }

    /// Whether utterances go to a cloud recognizer (then partial transcripts are skipped: they
    /// would spend the offline model's CPU for nothing).
    pub fn has_stt(&self) -> bool {
        self.providers.stt.is_some() && !self.tripped.stt.load(Ordering::Relaxed)
    }

    /// Whether a model writes the receptionist's answers and screens callers.
    pub fn has_llm(&self) -> bool {
        self.providers.llm.is_some() && !self.tripped.llm.load(Ordering::Relaxed)
    }

    fn failed(&self, provider: &str, stage: &'static str, error: &ProviderError) {
        if let Some(recorder) = &self.recorder {
            recorder.failed(&ProviderFailure {
                provider,
                stage,
                error,
                fallback: "offline",
            });
        }
    }

    fn retried(&self, provider: &str, stage: &'static str, error: &ProviderError) {
        if let Some(recorder) = &self.recorder {
            recorder.retried(provider, stage, error);
        }
    }

    /// The cloud transcript of an utterance, or `None` to use Whisper.
    pub async fn transcribe(&self, mulaw: &[u8]) -> Option<String> {
        let stt = self.providers.stt.as_ref().filter(|_| self.has_stt())?;
        match stt
            .transcribe(mulaw, |e| self.retried(stt.name(), "stt", e))
            .await
        {
            Ok(text) => Some(text),
            Err(err) => {
                self.tripped.stt.store(true, Ordering::Relaxed);
                self.failed(stt.name(), "stt", &err);
                None
            }
        }
    }

    /// The cloud voice, if any and still working.
    pub fn voice(&self) -> Option<CloudVoice> {
        let tts = self.providers.tts.clone()?;
        if self.tripped.tts.load(Ordering::Relaxed) {
            return None;
        }
        Some(CloudVoice {
            tts,
            recorder: self.recorder.clone()?,
            tripped: Arc::clone(&self.tripped),
        })
    }

    /// The model's screening verdict, or `None` to use the offline classifier.
    pub async fn screen(&self, introduction: &str) -> Option<ScreeningVerdict> {
        let llm = self.providers.llm.as_ref().filter(|_| self.has_llm())?;
        match llm
            .screen(introduction, |e| self.retried("openai", "screening", e))
            .await
        {
            Ok(verdict) => Some(verdict),
            Err(err) => {
                self.tripped.llm.store(true, Ordering::Relaxed);
                self.failed("openai", "screening", &err);
                None
            }
        }
    }

    /// The model's part in a receptionist turn, given the knowledge base's best answer (if one
    /// was similar enough); `None` to run the offline flow as is. With `deltas`, the reply's
    /// text goes there as it streams (the agent speaks its first clause before the end).
    pub async fn receptionist_turn(
        &mut self,
        caller: &str,
        kb_answer: Option<&str>,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Option<LlmTurn> {
        let llm = self.providers.llm.clone().filter(|_| self.has_llm())?;
        let context = match kb_answer {
            Some(answer) => format!("Knowledge-base context: {answer}"),
            None => "Knowledge-base context: (no entry matches this question)".to_owned(),
        };
        let mut messages = vec![
            ChatMessage::new(ChatRole::System, RECEPTIONIST_PROMPT),
            ChatMessage::new(ChatRole::System, context),
        ];
        messages.extend(self.history.iter().cloned());
        messages.push(ChatMessage::new(ChatRole::User, caller));
        let reply = match llm
            .chat(&messages, deltas, |e| self.retried("openai", "llm", e))
            .await
        {
            Ok(reply) => reply,
            Err(err) => {
                self.tripped.llm.store(true, Ordering::Relaxed);
                self.failed("openai", "llm", &err);
                return None;
            }
        };
        self.history.push(ChatMessage::new(ChatRole::User, caller));
        self.history
            .push(ChatMessage::new(ChatRole::Assistant, reply.text.clone()));
        let excess = self.history.len().saturating_sub(HISTORY_TURNS * 2);
        self.history.drain(..excess);
        if let Some(action) = reply.actions.into_iter().next() {
            return Some(LlmTurn::Action(flow_action(action)));
        }
        let text = reply.text.trim();
        if is_no_answer(text) {
            Some(LlmTurn::NoAnswer)
        } else {
            Some(LlmTurn::Answer(text.to_owned()))
        }
    }
}

/// Whether the model's text says the knowledge base has no answer (empty, or its `UNKNOWN`
/// word): such text is never spoken.
pub fn is_no_answer(text: &str) -> bool {
    let word = text.trim_matches(|c: char| !c.is_alphanumeric());
    word.is_empty() || word == UNKNOWN
}

/// A model's tool call as the receptionist flow's action.
pub fn flow_action(action: LlmAction) -> FlowAction {
    match action {
        LlmAction::Transfer { department } => FlowAction::Transfer { department },
        LlmAction::EndCall { .. } => FlowAction::EndCall,
        LlmAction::CaptureLead {
            name,
            callback_number,
            reason,
            urgency,
        } => FlowAction::CaptureLead {
            name: Some(name),
            callback_number: Some(callback_number),
            reason: Some(reason),
            urgency: Some(match urgency {
                Urgency::Low => lead::Urgency::Low,
                Urgency::Normal => lead::Urgency::Normal,
                Urgency::High => lead::Urgency::High,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_map_onto_flow_actions() {
        assert_eq!(
            flow_action(LlmAction::Transfer {
                department: "Billing".into()
            }),
            FlowAction::Transfer {
                department: "Billing".into()
            }
        );
        assert_eq!(
            flow_action(LlmAction::EndCall {
                reason: "done".into()
            }),
            FlowAction::EndCall
        );
        assert!(matches!(
            flow_action(LlmAction::CaptureLead {
                name: "Ann".into(),
                callback_number: "5550100".into(),
                reason: "leak".into(),
                urgency: Urgency::High,
            }),
            FlowAction::CaptureLead {
                urgency: Some(lead::Urgency::High),
                ..
            }
        ));
    }
}
