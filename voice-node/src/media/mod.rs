//! Media Streams sessions: one task per call owns the socket's typed events, the agent and the
//! outbound audio.
//!
//! Three layers, as in mini-redis (bytes ↔ frame ↔ command):
//! - [`socket`]: WebSocket frames ↔ [`shared::media_stream`] messages ↔ [`StreamEvent`] /
//!   [`Outgoing`]. The only code here that sees frames or JSON; it also enforces the frame size
//!   cap and closes on garbage.
//! - [`session`]: the call: token check on `start`, inbound audio and DTMF to the agent, the
//!   agent's actions back out, persistence, the end of the call. Written over a channel of
//!   [`StreamEvent`]s and a [`MediaSink`], so tests drive it without sockets.
//! - [`player`]: outbound utterances cut into 20 ms frames and paced slightly faster than real
//!   time, a mark after each utterance, `clear` on barge-in.
//! - [`turn_seq`]: where a stream's transcript numbering starts, so a call Twilio reconnects
//!   continues its turn numbers instead of colliding with them.

pub mod player;
pub mod session;
pub mod socket;
mod stream;
pub mod turn_seq;

pub use stream::{
    AudioChunk, CloseCause, MediaSink, Outgoing, ProtocolViolation, SinkError, StreamEvent,
};
