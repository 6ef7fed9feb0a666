//! Speech to speech on OpenAI Realtime: one WebSocket per call carries the caller's mu-law to
//! the model and the model's mu-law back, with the server's VAD deciding turns. It replaces the
//! cascaded pipeline (VAD → STT → LLM → TTS) for a call; the cascaded agent stays behind it as
//! the fallback.
//!
//! - [`protocol`]: the Realtime events as typed values (serde).
//! - [`client`]: opening a session (handshake, `session.created`, `session.update`) with
//!   deadlines and retries.
//! - [`agent`]: the [`CallAgent`](crate::agent::CallAgent) that runs a call on a session:
//!   audio both ways (`g711_ulaw`, no resampling), transcripts as turns, the call tools through
//!   the receptionist flow, barge-in with `conversation.item.truncate`, per-turn timings, and the
//!   fallback to the cascaded agent when the session cannot open or drops mid-call.

pub mod agent;
pub mod client;
pub mod protocol;

pub use agent::{OfflineAgents, RealtimeAgent, RealtimeAgentFactory};
pub use client::RealtimeConfig;

/// The provider's name in `provider_failure` events and logs.
pub const PROVIDER: &str = "openai_realtime";
