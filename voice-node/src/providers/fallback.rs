//! The fallback chain's memory: when a cloud provider fails and the call carries on with the
//! next provider (in the end the offline models), the failure is recorded on the call — a
//! `provider_failure` row in `call_events`, written by the session through the node's write
//! queue — and counted in `/metrics`, so an operator sees a degraded call rather than a
//! silently worse one.

use std::sync::Arc;

use serde_json::json;

use super::ProviderError;
use crate::agent::{AgentAction, AgentOutput, CallEvent};
use crate::metrics::Metrics;

/// The `call_events.kind` of a provider failure.
pub const EVENT_KIND: &str = "provider_failure";

/// One provider failure the call survived.
#[derive(Debug)]
pub struct ProviderFailure<'a> {
    /// `deepgram`, `elevenlabs`, `openai`, …
    pub provider: &'a str,
    /// `stt`, `tts`, `llm` or `screening`.
    pub stage: &'static str,
    /// What went wrong.
    pub error: &'a ProviderError,
    /// What the call used instead (`offline`, or the next provider).
    pub fallback: &'static str,
}

impl ProviderFailure<'_> {
    /// The event row's payload. The error text never holds a key (keys travel in headers and
    /// are never echoed into errors).
    pub fn payload(&self) -> serde_json::Value {
        json!({
            "provider": self.provider,
            "stage": self.stage,
            "error_kind": self.error.kind(),
            "error": self.error.to_string(),
            "fallback": self.fallback,
        })
    }
}

/// Records the provider failures of one call.
#[derive(Debug, Clone)]
pub struct FailureRecorder {
    /// To the session, which writes the event row.
    out: AgentOutput,
    /// `callgate_provider_failures_total`, `callgate_provider_retries_total`.
    metrics: Arc<Metrics>,
    /// For logs.
    call_sid: Arc<str>,
}

impl FailureRecorder {
    /// A recorder for the call whose actions go to `out`.
    pub fn new(out: AgentOutput, metrics: Arc<Metrics>, call_sid: &str) -> Self {
        FailureRecorder {
            out,
            metrics,
            call_sid: call_sid.into(),
        }
    }

    /// Logs, counts and records `failure` on the call.
    pub fn failed(&self, failure: &ProviderFailure<'_>) {
        self.metrics.provider_failures.inc();
        tracing::warn!(
            call_sid = %self.call_sid,
            provider = failure.provider,
            stage = failure.stage,
            error = %failure.error,
            fallback = failure.fallback,
            "provider failed; the call carries on with the fallback"
        );
        self.out.send(AgentAction::Event(CallEvent {
            kind: EVENT_KIND,
            payload: failure.payload(),
        }));
    }

    /// Counts a retried attempt (the request may still succeed).
    pub fn retried(&self, provider: &str, stage: &'static str, error: &ProviderError) {
        self.metrics.provider_retries.inc();
        tracing::debug!(call_sid = %self.call_sid, provider, stage, error = %error, "retrying provider");
    }
}
