//! The protocol edge of a call: WebSocket frames in and out, via `fastwebsockets`.
//!
//! The socket is split. A reader task turns frames into [`StreamEvent`]s (parsing with
//! [`shared::media_stream::parse_inbound`] and decoding audio into fixed-size chunks, so the
//! media path allocates nothing per frame) and hands them to the session over a bounded channel;
//! the session writes through [`WsSink`]. Reading in its own task matters: `read_frame` is not
//! cancel-safe, so it cannot sit in the session's `select!` beside the pacing timer.

use std::sync::Arc;

use fastwebsockets::{
    Frame, OpCode, Payload, WebSocket, WebSocketError, WebSocketRead, WebSocketWrite,
};
use shared::media_stream::{InboundMessage, MediaFrameWriter, MediaStreamError, parse_inbound};
use shared::mulaw::FRAME_BYTES;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    AudioChunk, CloseCause, MediaSink, Outgoing, ProtocolViolation, SinkError, StreamEvent,
};
use crate::metrics::Metrics;

/// Largest frame accepted from Twilio. Real messages are ~400 bytes (`media`) to a few KiB
/// (`start` with custom parameters); 64 KiB leaves room and bounds what one socket can make the
/// node buffer.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Events buffered between the reader task and the session: ~1 s of audio. When the session
/// falls behind, the reader stops reading and TCP pushes back on Twilio.
pub const EVENT_BUFFER: usize = 48;

/// Largest decoded payload handled in one `media` message (a 64 KiB frame of base64 holds
/// at most 48 KiB of audio).
const MAX_DECODED_AUDIO: usize = MAX_FRAME_BYTES / 4 * 3;

/// Splits an upgraded socket into the reader task (started here) and the session's sink.
pub fn split<S>(
    ws: WebSocket<S>,
    metrics: Arc<Metrics>,
) -> (
    mpsc::Receiver<StreamEvent>,
    WsSink<BufWriter<tokio::io::WriteHalf<S>>>,
)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Buffered: a batch of media frames leaves in one write (see `WsSink`).
    let (mut read, write) = ws.split(|socket| {
        let (read, write) = tokio::io::split(socket);
        (read, BufWriter::new(write))
    });
    // The session answers pings and close frames itself (it owns the write half); capping the
    // frame size here makes an oversized frame an error before its payload is buffered.
    read.set_auto_close(false);
    read.set_auto_pong(false);
    read.set_max_message_size(MAX_FRAME_BYTES);
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    tokio::spawn(read_loop(read, tx, metrics));
    (rx, WsSink::new(write))
}

/// Reads frames until the socket ends, the peer breaks the protocol, or the session is gone.
async fn read_loop<R>(
    mut read: WebSocketRead<R>,
    events: mpsc::Sender<StreamEvent>,
    metrics: Arc<Metrics>,
) where
    R: AsyncRead + Unpin,
{
    // Decoded audio of one message; reused, so steady media costs no allocation.
    let mut audio = vec![0u8; FRAME_BYTES];
    loop {
        let frame = read
            .read_frame::<_, SinkError>(&mut |_frame| async { Ok(()) })
            .await;
        let result = match frame {
            Ok(frame) => handle_frame(&frame, &mut audio, &events, &metrics).await,
            Err(err) => Err(close_cause_of(err)),
        };
        match result {
            Ok(true) => {}
            Ok(false) => return,
            Err(cause) => {
                if matches!(cause, CloseCause::Protocol(_)) {
                    metrics.protocol_errors.inc();
                }
                let _ = events.send(StreamEvent::Closed(cause)).await;
                return;
            }
        }
    }
}

/// Handles one frame. `Ok(false)`: the session is gone, stop reading.
async fn handle_frame(
    frame: &Frame<'_>,
    audio: &mut Vec<u8>,
    events: &mpsc::Sender<StreamEvent>,
    metrics: &Metrics,
) -> Result<bool, CloseCause> {
    if !frame.fin || frame.opcode == OpCode::Continuation {
        return Err(CloseCause::Protocol(ProtocolViolation::Fragmented));
    }
    let text = match frame.opcode {
        OpCode::Text => std::str::from_utf8(&frame.payload).map_err(|_| {
            CloseCause::Protocol(ProtocolViolation::Framing("invalid UTF-8".into()))
        })?,
        OpCode::Binary => return Err(CloseCause::Protocol(ProtocolViolation::Binary)),
        OpCode::Close => return Err(CloseCause::PeerClosed),
        // Pings are not answered: Twilio does not send them, and an unanswered ping harms no one.
        OpCode::Ping | OpCode::Pong | OpCode::Continuation => return Ok(true),
    };
    let received_at = Instant::now();
    let message = parse_inbound(text).map_err(|e| CloseCause::Protocol(malformed(e)))?;
    let event = match message {
        InboundMessage::Connected(_) => StreamEvent::Connected,
        InboundMessage::Start(start) => StreamEvent::Start(Box::new(start)),
        InboundMessage::Media(media) => {
            let needed = media.payload.max_decoded_len();
            if needed > MAX_DECODED_AUDIO {
                return Err(CloseCause::Protocol(ProtocolViolation::TooLarge {
                    limit: MAX_FRAME_BYTES,
                }));
            }
            if audio.len() < needed {
                audio.resize(needed, 0);
            }
            let n = media
                .payload
                .decode_into(audio)
                .map_err(|e| CloseCause::Protocol(malformed(e)))?;
            metrics.frames_in.inc();
            // Twilio sends 160-byte frames; a larger payload (allowed by the protocol) becomes
            // several chunks so the agent always sees at most one frame at a time.
            for chunk in audio[..n].chunks(FRAME_BYTES) {
                let event = StreamEvent::Media {
                    audio: AudioChunk::new(chunk),
                    timestamp_ms: media.timestamp_ms,
                    received_at,
                };
                if events.send(event).await.is_err() {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        InboundMessage::Mark(mark) => StreamEvent::Mark(mark.name),
        InboundMessage::Dtmf(dtmf) => StreamEvent::Dtmf(dtmf.digit),
        InboundMessage::Stop(_) => StreamEvent::Stop,
    };
    Ok(events.send(event).await.is_ok())
}

fn malformed(e: MediaStreamError) -> ProtocolViolation {
    ProtocolViolation::Malformed(e.to_string())
}

fn close_cause_of(err: WebSocketError) -> CloseCause {
    match err {
        WebSocketError::FrameTooLarge => CloseCause::Protocol(ProtocolViolation::TooLarge {
            limit: MAX_FRAME_BYTES,
        }),
        WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed => {
            CloseCause::Disconnected("connection closed without a close frame".into())
        }
        WebSocketError::IoError(e) => CloseCause::Disconnected(e.to_string()),
        WebSocketError::InvalidFragment | WebSocketError::InvalidContinuationFrame => {
            CloseCause::Protocol(ProtocolViolation::Fragmented)
        }
        other => CloseCause::Protocol(ProtocolViolation::Framing(other.to_string())),
    }
}

/// The session's way out: typed [`Outgoing`] messages written as Media Streams JSON.
pub struct WsSink<W> {
    /// The socket's write half.
    write: WebSocketWrite<W>,
    /// The `media` JSON prefix for this stream, built once (see [`MediaFrameWriter`]).
    media: MediaFrameWriter,
    /// The stream SID for `mark` and `clear`.
    stream_sid: String,
    /// Reused text buffer: after the first frame, sending audio allocates nothing.
    text: String,
}

impl<W> std::fmt::Debug for WsSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSink")
            .field("stream_sid", &self.stream_sid)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin + Send> WsSink<W> {
    fn new(write: WebSocketWrite<W>) -> Self {
        WsSink {
            write,
            media: MediaFrameWriter::new(""),
            stream_sid: String::new(),
            text: String::with_capacity(512),
        }
    }

    async fn write_text(&mut self) -> Result<(), SinkError> {
        let frame = Frame::text(Payload::Borrowed(self.text.as_bytes()));
        self.write
            .write_frame(frame)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }

    async fn flush_socket(&mut self) -> Result<(), SinkError> {
        self.write
            .flush()
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

impl<W: AsyncWrite + Unpin + Send> MediaSink for WsSink<W> {
    fn bind_stream(&mut self, stream_sid: &str) {
        self.media = MediaFrameWriter::new(stream_sid);
        stream_sid.clone_into(&mut self.stream_sid);
    }

    async fn send(&mut self, message: Outgoing<'_>) -> Result<(), SinkError> {
        use shared::media_stream::OutboundMessage;
        match message {
            // Buffered until `flush`: the session sends a batch (frames, and the mark that ends
            // an utterance), then flushes.
            Outgoing::Media(audio) => {
                self.media.write(audio, &mut self.text);
                self.write_text().await
            }
            Outgoing::Mark(name) => {
                self.text = OutboundMessage::mark(&self.stream_sid, name).to_json();
                self.write_text().await
            }
            Outgoing::Clear => {
                self.text = OutboundMessage::clear(&self.stream_sid).to_json();
                self.write_text().await?;
                self.flush_socket().await
            }
            Outgoing::Close { code, reason } => {
                if self.write.is_closed() {
                    return Ok(());
                }
                let reason = truncate_utf8(reason, 123);
                self.write
                    .write_frame(Frame::close(code, reason.as_bytes()))
                    .await
                    .map_err(|e| SinkError(e.to_string()))?;
                self.flush_socket().await
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.flush_socket().await
    }
}

/// At most `max` bytes of `s`, cut on a character boundary (close reasons are capped at 123).
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_on_char_boundaries() {
        assert_eq!(truncate_utf8("abc", 123), "abc");
        let long = "é".repeat(100);
        let cut = truncate_utf8(&long, 123);
        assert!(cut.len() <= 123 && cut.len().is_multiple_of(2));
    }
}
