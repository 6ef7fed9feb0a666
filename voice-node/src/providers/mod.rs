//! Cloud AI providers behind the same seams as the offline pipeline ([`crate::ai`]): the node
//! speaks each provider's real wire protocol and falls back to the offline models when a
//! provider fails, so an outage degrades the call instead of dropping it.
//!
//! - [`llm_openai`]: any OpenAI-compatible chat-completions endpoint (OpenAI, Groq, llama.cpp,
//!   vLLM), streamed over SSE, with tools (transfer, end call, lead capture) and screening as a
//!   structured output.
//! - [`stt_deepgram`]: Deepgram live transcription over WebSocket.
//! - [`tts_elevenlabs`] and [`tts_openai`]: text to 8 kHz mu-law.
//! - [`realtime_openai`]: speech to speech on OpenAI Realtime (replaces STT, LLM and TTS for a
//!   call), falling back to the cascaded agent when the session cannot open or drops.
//! - [`retry`]: per-request timeouts and retries with exponential backoff and jitter.
//! - [`fallback`]: how a failure is recorded on the call (event row + metric).
//! - [`call`]: one call's providers as the agent uses them (answer, or `None` → offline).
//! - [`settings`]: which providers a call uses: the tenant's `tenant_provider_settings`, else the
//!   environment, else none (offline).
//!
//! One error type ([`ProviderError`]) crosses this boundary: the agent only needs to know that a
//! provider failed and why, in words an operator can act on.

pub mod call;
pub mod fallback;
pub mod llm_openai;
pub mod realtime_openai;
pub mod retry;
pub mod settings;
pub mod stt_deepgram;
pub mod tts_elevenlabs;
pub mod tts_openai;

use std::time::Duration;

pub use fallback::{FailureRecorder, ProviderFailure};
pub use llm_openai::{ChatMessage, LlmAction, LlmReply, OpenAiChat, Urgency};
pub use retry::RetryPolicy;
pub use settings::{CallProviders, ProviderSource, SpeechToText, TenantProviders, TextToSpeech};

/// Longest slice of a provider's error body kept in an error (they can be whole HTML pages).
const BODY_SNIPPET: usize = 200;

/// A cloud provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached (DNS, refused, TLS, reset before an answer).
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// The provider answered with an HTTP error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body (providers explain the error there).
        body: String,
    },
    /// No answer (headers, handshake or first message) within the first-byte timeout.
    #[error("no answer within {0:?}")]
    FirstByteTimeout(Duration),
    /// The request did not finish within the total timeout.
    #[error("did not finish within {0:?}")]
    TotalTimeout(Duration),
    /// The provider answered something this client does not understand.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// A WebSocket provider closed the stream with an error code.
    #[error("stream closed with code {code}: {reason}")]
    Closed {
        /// The close code (1000 is a normal close and never an error).
        code: u16,
        /// The reason the provider gave.
        reason: String,
    },
    /// The configuration cannot work (missing key, bad URL).
    #[error("configuration: {0}")]
    Config(String),
}

impl ProviderError {
    /// Whether trying again may succeed: rate limits, server errors and connection failures.
    /// Timeouts are not retried: a provider that hangs once tends to hang again, and the caller
    /// is waiting, so the chain falls back instead.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) => true,
            ProviderError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// A short stable name for metrics and event payloads.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Connect(_) => "connect",
            ProviderError::Status { .. } => "status",
            ProviderError::FirstByteTimeout(_) => "first_byte_timeout",
            ProviderError::TotalTimeout(_) => "total_timeout",
            ProviderError::Protocol(_) => "protocol",
            ProviderError::Closed { .. } => "closed",
            ProviderError::Config(_) => "config",
        }
    }

    /// From a reqwest error before any answer arrived.
    fn from_send(err: &reqwest::Error) -> Self {
        // Only the error's kind and source: reqwest errors carry the URL, which has no secret
        // here (keys travel in headers), but the chain is what an operator needs.
        ProviderError::Connect(error_chain(err))
    }

    /// An error status with the start of its body.
    async fn from_status(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        ProviderError::Status {
            status,
            body: snippet(&body),
        }
    }
}

/// `err` and its sources, joined.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The first [`BODY_SNIPPET`] characters of `body`, on one line.
fn snippet(body: &str) -> String {
    body.chars()
        .take(BODY_SNIPPET)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `base` without trailing slashes, joined to `path` (which starts with `/`).
fn join_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The shared HTTP client of the providers: connection pooling across calls, a connect timeout
/// (the per-request timeouts are in [`RetryPolicy`]).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// A WebSocket handshake failure (Deepgram, Realtime): an HTTP status (bad key, rate limit),
/// which the retry policy judges like any HTTP answer, or no connection.
pub(crate) fn ws_handshake_error(err: tokio_tungstenite::tungstenite::Error) -> ProviderError {
    use tokio_tungstenite::tungstenite;
    match err {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            ProviderError::Status {
                status: response.status().as_u16(),
                body: snippet(&body),
            }
        }
        other => ProviderError::Connect(error_chain(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_rate_limits_server_errors_and_connect_failures() {
        let status = |s| ProviderError::Status {
            status: s,
            body: String::new(),
        };
        assert!(status(429).is_retryable());
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(ProviderError::Connect("refused".into()).is_retryable());
        assert!(!ProviderError::FirstByteTimeout(Duration::from_secs(1)).is_retryable());
        assert!(!ProviderError::Protocol("x".into()).is_retryable());
    }

    #[test]
    fn keeps_only_the_start_of_an_error_body() {
        let long = "x".repeat(1000);
        assert_eq!(snippet(&long).len(), BODY_SNIPPET);
        assert_eq!(snippet("a\nb"), "a b");
        assert_eq!(join_url("http://h/v1/", "/chat"), "http://h/v1/chat");
    }
}
