//! The typed values that cross between the socket layer and the call session.

use std::future::Future;

use shared::media_stream::Start;
use shared::mulaw::FRAME_BYTES;
use tokio::time::Instant;

/// Up to one 20 ms frame of caller audio, by value: crossing a channel costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudioChunk {
    /// mu-law bytes; only the first `len` are audio.
    bytes: [u8; FRAME_BYTES],
    /// How many bytes of `bytes` are audio (Twilio sends exactly 160; the socket layer cuts
    /// larger payloads into several chunks).
    len: u8,
}

impl AudioChunk {
    /// A chunk holding `audio` (at most [`FRAME_BYTES`]; longer input is truncated).
    pub fn new(audio: &[u8]) -> Self {
        let len = audio.len().min(FRAME_BYTES);
        let mut bytes = [shared::mulaw::SILENCE; FRAME_BYTES];
        bytes[..len].copy_from_slice(&audio[..len]);
        AudioChunk {
            bytes,
            len: len as u8,
        }
    }

    /// The audio bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioChunk({} bytes)", self.len)
    }
}

/// What the socket layer reports to the session, in order. After [`StreamEvent::Closed`] no
/// more events come.
#[derive(Debug)]
pub enum StreamEvent {
    /// `connected`.
    Connected,
    /// `start` (boxed: it is large and arrives once, while `Media` arrives 50 times a second).
    Start(Box<Start>),
    /// A frame of caller audio.
    Media {
        /// The audio.
        audio: AudioChunk,
        /// Twilio's stream timestamp (ms since the stream started).
        timestamp_ms: u64,
        /// When the socket layer read the frame; the agent's receive latency is measured from it.
        received_at: Instant,
    },
    /// A key press.
    Dtmf(char),
    /// Twilio echoed the mark with this name.
    Mark(String),
    /// `stop`: the call or stream ended on Twilio's side.
    Stop,
    /// The socket is gone or broke the protocol.
    Closed(CloseCause),
}

/// Why the socket stopped producing events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer sent a close frame (the session answers it).
    PeerClosed,
    /// The connection dropped without a close frame (or an I/O error).
    Disconnected(String),
    /// The peer broke the protocol; the session closes with the violation's code and reason.
    Protocol(ProtocolViolation),
}

/// A protocol violation that ends the socket (never the node, never another call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A frame above the size cap.
    #[error("frame exceeds {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A binary frame: Media Streams messages are JSON text.
    #[error("binary frames are not part of the Media Streams protocol")]
    Binary,
    /// A fragmented message: Twilio never fragments, and refusing keeps the size cap simple.
    #[error("fragmented frames are not supported")]
    Fragmented,
    /// Text that is not a Media Streams message.
    #[error("{0}")]
    Malformed(String),
    /// Not valid WebSocket framing (bad UTF-8, reserved bits, …).
    #[error("invalid WebSocket frame: {0}")]
    Framing(String),
}

impl ProtocolViolation {
    /// The WebSocket close code for this violation (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolViolation::TooLarge { .. } => 1009,
            ProtocolViolation::Binary => 1003,
            ProtocolViolation::Malformed(_) => 1007,
            ProtocolViolation::Fragmented | ProtocolViolation::Framing(_) => 1002,
        }
    }
}

/// A message for Twilio, typed; the socket layer writes the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// One 20 ms frame of audio.
    Media(&'a [u8; FRAME_BYTES]),
    /// A mark after an utterance; Twilio echoes it once the audio before it has played.
    Mark(&'a str),
    /// Drop everything Twilio has buffered (barge-in).
    Clear,
    /// Close the socket with a code and a reason (at most 123 bytes of UTF-8).
    Close {
        /// RFC 6455 close code.
        code: u16,
        /// Human-readable reason.
        reason: &'a str,
    },
}

/// Writing to the socket failed: the peer is gone. The session then ends the call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("media socket write failed: {0}")]
pub struct SinkError(pub String);

/// Where the session sends [`Outgoing`] messages: the WebSocket in production, a channel in
/// tests.
pub trait MediaSink: Send {
    /// Tells the sink which stream outbound messages address (called once, after `start`).
    fn bind_stream(&mut self, stream_sid: &str);

    /// Sends one message. `media` and `mark` may wait in a buffer until [`MediaSink::flush`] (a
    /// batch of frames and its mark is one socket write); `clear` and `close` go out at once.
    fn send(&mut self, message: Outgoing<'_>)
    -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Writes out what `send` buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
}
