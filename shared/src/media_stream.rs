//! Twilio Media Streams WebSocket messages, both directions, as typed values.
//!
//! Twilio (the WebSocket client) sends [`InboundMessage`]s: `connected`, `start`, then about 50
//! `media` frames per second for the whole call, interleaved with `dtmf` and `mark`, and finally
//! `stop`. We answer with [`OutboundMessage`]s: `media`, `mark` and `clear`. Only this module
//! knows the JSON; the call session sees these types.
//!
//! Wire facts this module encodes (twilio.md §4.2–4.4):
//! - `sequenceNumber`, `media.chunk` and `media.timestamp` are JSON *strings* holding decimals;
//!   they are parsed into `u64`. `mediaFormat.sampleRate`/`channels` are JSON numbers.
//! - Keys arrive in varying order, so everything is parsed by name; unknown keys are ignored so a
//!   new Twilio field never breaks a live call.
//! - Media payloads are base64 of raw mu-law. Parsing does not decode them: a node handles
//!   thousands of frames per second, so [`MediaPayload`] borrows the base64 text from the
//!   WebSocket frame and decodes on request into a caller's buffer.
//!
//! Both directions can also be produced and parsed ([`InboundMessage::to_json`],
//! [`parse_outbound`]) because the simulator plays Twilio's side of a call.
//!
//! ```
//! use shared::media_stream::{parse_inbound, InboundMessage};
//! let text = r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2",
//!     "timestamp":"5","payload":"/38="},"streamSid":"MZ1"}"#;
//! let InboundMessage::Media(media) = parse_inbound(text).unwrap() else { panic!() };
//! assert_eq!((media.sequence_number, media.chunk, media.timestamp_ms), (4, 2, 5));
//! let mut audio = [0u8; 160];
//! let n = media.payload.decode_into(&mut audio).unwrap();
//! assert_eq!(&audio[..n], &[0xFF, 0x7F]);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a Media Streams message could not be read.
///
/// Small and cheap on purpose: it is returned on the media hot path, and the session decides
/// what to do (log and skip a bad frame, or end the stream when `start` is unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaStreamError {
    /// The text is not JSON, or has a shape no message can have (say, a list where an object
    /// belongs). Carries serde's description, which includes the position.
    #[error("malformed Media Streams JSON: {0}")]
    MalformedJson(String),
    /// The `event` names a message this direction does not have.
    #[error("unknown Media Streams event {0:?}")]
    UnknownEvent(String),
    /// A field the message cannot be used without is absent or `null`. Dotted wire name.
    #[error("Media Streams message lacks `{0}`")]
    MissingField(&'static str),
    /// A field that must be a JSON string is some other JSON type.
    #[error("Media Streams field `{0}` is not a string")]
    NotAString(&'static str),
    /// A counter (`sequenceNumber`, `media.chunk`, `media.timestamp`) is not a decimal string
    /// that fits in a `u64`; this includes a JSON number where Twilio sends a string.
    #[error("Media Streams field `{0}` is not a decimal number in a string")]
    BadNumber(&'static str),
    /// A track name other than `inbound`/`outbound` (or the TwiML spellings `*_track`).
    #[error("Media Streams field `{field}` has unknown track {value:?}")]
    UnknownTrack {
        /// Which field held it (`media.track`, `dtmf.track` or `start.tracks`).
        field: &'static str,
        /// The unrecognised text.
        value: String,
    },
    /// A DTMF `digit` that is not exactly one character.
    #[error("Media Streams DTMF digit {0:?} is not one character")]
    BadDigit(String),
    /// A media payload that is not base64.
    #[error("Media Streams payload is not valid base64")]
    BadBase64,
    /// The buffer passed to [`MediaPayload::decode_into`] cannot hold the decoded audio.
    #[error("decoded payload needs up to {needed} bytes but the buffer holds {available}")]
    BufferTooSmall {
        /// Upper bound of the decoded size (what to allocate).
        needed: usize,
        /// The buffer's length.
        available: usize,
    },
}

type Result<T, E = MediaStreamError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Typed values
// ---------------------------------------------------------------------------------------------

/// Which side of the call a frame carries. Twilio spells it `inbound`/`outbound` in `media` and
/// `start.tracks` but `inbound_track` in `dtmf`; both spellings parse, and the message's own
/// spelling is written back out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Audio from the caller (the only track of a bidirectional `<Connect><Stream>`).
    Inbound,
    /// Audio sent to the caller (forked streams with `outbound_track`/`both_tracks`).
    Outbound,
}

impl Track {
    /// The spelling used by `media.track` and `start.tracks`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Track::Inbound => "inbound",
            Track::Outbound => "outbound",
        }
    }

    /// The spelling used by `dtmf.track` (and by TwiML's `track` attribute).
    pub const fn as_track_str(self) -> &'static str {
        match self {
            Track::Inbound => "inbound_track",
            Track::Outbound => "outbound_track",
        }
    }

    fn parse(field: &'static str, s: &str) -> Result<Self> {
        match s {
            "inbound" | "inbound_track" => Ok(Track::Inbound),
            "outbound" | "outbound_track" => Ok(Track::Outbound),
            _ => Err(MediaStreamError::UnknownTrack {
                field,
                value: s.to_owned(),
            }),
        }
    }
}

/// A message Twilio sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundMessage<'a> {
    /// First message on the socket; says nothing about the call yet.
    Connected(Connected),
    /// Once, right after `connected`: who the call is and what we will receive.
    Start(Start),
    /// One frame of audio (20 ms, 160 bytes in practice). Borrows from the parsed text.
    Media(Media<'a>),
    /// Twilio echoes a mark we sent once the audio before it has played (or was cleared).
    Mark(Mark),
    /// The caller pressed a key (bidirectional streams only).
    Dtmf(Dtmf),
    /// The stream ended (call hung up, or stream stopped).
    Stop(Stop),
}

/// `connected`: the socket is up. `version` is not checked because Twilio has sent both
/// `0.2.0` and `1.0.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Always `Call` so far; kept for logs.
    pub protocol: String,
    /// Protocol version string; informational.
    pub version: String,
}

/// `start`: the stream's identity. The node checks `custom_parameters["token"]` (the edge's
/// stream token) before accepting any audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Message counter (`"1"` for `start`), to spot lost messages.
    pub sequence_number: u64,
    /// The account the call belongs to; a node can refuse foreign accounts.
    pub account_sid: String,
    /// Addresses outbound messages; also repeated at the top level of every message.
    pub stream_sid: String,
    /// The call this stream belongs to; the key for call records and REST updates.
    pub call_sid: String,
    /// Which tracks will arrive (empty if Twilio omits the list).
    pub tracks: Vec<Track>,
    /// `<Parameter>` values from the TwiML (`{}` when none): the only way to pass data through
    /// a stream, because Stream URLs may not have a query string.
    pub custom_parameters: BTreeMap<String, String>,
    /// Audio format; always mu-law/8000/1 so far, checked rather than assumed.
    pub media_format: MediaFormat,
}

/// `start.mediaFormat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// MIME type, `audio/x-mulaw`.
    pub encoding: String,
    /// Samples per second, 8000.
    pub sample_rate: u32,
    /// 1 (mono).
    pub channels: u16,
}

impl MediaFormat {
    /// Twilio's only format so far; a node refuses anything else rather than play noise.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

/// `media`: one audio frame. Strings borrow from the message text when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Message counter across all messages after `connected`.
    pub sequence_number: u64,
    /// The stream, repeated on every message.
    pub stream_sid: Cow<'a, str>,
    /// Which side of the call this audio is.
    pub track: Track,
    /// Media counter, starting at 1.
    pub chunk: u64,
    /// Presentation time in ms since the stream started (stream time, not wall clock).
    pub timestamp_ms: u64,
    /// The audio, still base64; decode with [`MediaPayload::decode_into`].
    pub payload: MediaPayload<'a>,
}

/// `mark` (inbound): a mark we sent has been reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Message counter.
    pub sequence_number: u64,
    /// The stream.
    pub stream_sid: String,
    /// The name we gave the mark, which tells us which utterance finished playing.
    pub name: String,
}

/// `dtmf`: a key press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// Message counter.
    pub sequence_number: u64,
    /// The stream.
    pub stream_sid: String,
    /// The side that pressed (always the caller on bidirectional streams).
    pub track: Track,
    /// `0`–`9`, `*`, `#` (and `A`–`D` on some networks).
    pub digit: char,
}

/// `stop`: the stream is over; no more messages follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Message counter; the total message count minus `connected`.
    pub sequence_number: u64,
    /// The stream.
    pub stream_sid: String,
    /// The account.
    pub account_sid: String,
    /// The call that ended.
    pub call_sid: String,
}

/// Base64 text of raw mu-law audio, as carried in `media.payload`.
///
/// Kept encoded until asked so that parsing a frame costs no allocation and no decoding; the
/// session decodes into a reused buffer with [`decode_into`](Self::decode_into).
#[derive(Clone, PartialEq, Eq)]
pub struct MediaPayload<'a>(Cow<'a, str>);

impl fmt::Debug for MediaPayload<'_> {
    /// Shows the size, not kilobytes of base64, in logs and test failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaPayload({} base64 chars)", self.0.len())
    }
}

/// Standard alphabet, lenient on padding and trailing bits: we decode what Twilio sends rather
/// than judge its encoder. Output is always canonical padded base64.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl<'a> MediaPayload<'a> {
    /// Wraps base64 text as received (not validated until decoded).
    pub fn from_base64(text: impl Into<Cow<'a, str>>) -> Self {
        MediaPayload(text.into())
    }

    /// Base64-encodes raw mu-law audio.
    pub fn encode(audio: &[u8]) -> MediaPayload<'static> {
        MediaPayload(Cow::Owned(BASE64.encode(audio)))
    }

    /// The base64 text.
    pub fn as_base64(&self) -> &str {
        &self.0
    }

    /// An upper bound on the decoded size, for sizing buffers (160-byte frames give 162).
    pub fn max_decoded_len(&self) -> usize {
        base64::decoded_len_estimate(self.0.len())
    }

    /// Decodes into `out` and returns the number of audio bytes written.
    ///
    /// `out` must hold [`max_decoded_len`](Self::max_decoded_len) bytes or the exact decoded
    /// size; a 160-byte (or larger) buffer fits Twilio's frames.
    pub fn decode_into(&self, out: &mut [u8]) -> Result<usize> {
        BASE64
            .decode_slice(self.0.as_bytes(), out)
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => MediaStreamError::BufferTooSmall {
                    needed: self.max_decoded_len(),
                    available: out.len(),
                },
                base64::DecodeSliceError::DecodeError(_) => MediaStreamError::BadBase64,
            })
    }

    /// Decodes and appends to `out` (which can be reused across frames).
    pub fn decode_append(&self, out: &mut Vec<u8>) -> Result<()> {
        BASE64
            .decode_vec(self.0.as_bytes(), out)
            .map_err(|_| MediaStreamError::BadBase64)
    }

    /// Decodes into a new vector; for tests and cold paths.
    pub fn decode_to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.max_decoded_len());
        self.decode_append(&mut out)?;
        Ok(out)
    }

    /// Detaches from the text it was parsed from.
    pub fn into_owned(self) -> MediaPayload<'static> {
        MediaPayload(Cow::Owned(self.0.into_owned()))
    }
}

impl Media<'_> {
    /// Detaches from the text it was parsed from (to queue a frame beyond the read buffer).
    pub fn into_owned(self) -> Media<'static> {
        Media {
            stream_sid: Cow::Owned(self.stream_sid.into_owned()),
            payload: self.payload.into_owned(),
            ..self
        }
    }
}

impl<'a> InboundMessage<'a> {
    /// The wire `event` name.
    pub fn event(&self) -> &'static str {
        match self {
            InboundMessage::Connected(_) => "connected",
            InboundMessage::Start(_) => "start",
            InboundMessage::Media(_) => "media",
            InboundMessage::Mark(_) => "mark",
            InboundMessage::Dtmf(_) => "dtmf",
            InboundMessage::Stop(_) => "stop",
        }
    }

    /// The stream this message belongs to (`connected` has none).
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            InboundMessage::Connected(_) => None,
            InboundMessage::Start(m) => Some(&m.stream_sid),
            InboundMessage::Media(m) => Some(&m.stream_sid),
            InboundMessage::Mark(m) => Some(&m.stream_sid),
            InboundMessage::Dtmf(m) => Some(&m.stream_sid),
            InboundMessage::Stop(m) => Some(&m.stream_sid),
        }
    }

    /// The message counter (`connected` has none).
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            InboundMessage::Connected(_) => None,
            InboundMessage::Start(m) => Some(m.sequence_number),
            InboundMessage::Media(m) => Some(m.sequence_number),
            InboundMessage::Mark(m) => Some(m.sequence_number),
            InboundMessage::Dtmf(m) => Some(m.sequence_number),
            InboundMessage::Stop(m) => Some(m.sequence_number),
        }
    }

    /// Detaches from the text it was parsed from.
    pub fn into_owned(self) -> InboundMessage<'static> {
        match self {
            InboundMessage::Media(m) => InboundMessage::Media(m.into_owned()),
            InboundMessage::Connected(m) => InboundMessage::Connected(m),
            InboundMessage::Start(m) => InboundMessage::Start(m),
            InboundMessage::Mark(m) => InboundMessage::Mark(m),
            InboundMessage::Dtmf(m) => InboundMessage::Dtmf(m),
            InboundMessage::Stop(m) => InboundMessage::Stop(m),
        }
    }

    /// Serializes as Twilio would send it (for the simulator and tests).
    pub fn to_json(&self) -> String {
        let result = match self {
            InboundMessage::Connected(m) => serde_json::to_string(&out::Connected {
                event: "connected",
                protocol: &m.protocol,
                version: &m.version,
            }),
            InboundMessage::Start(m) => serde_json::to_string(&out::Start {
                event: "start",
                sequence_number: out::Decimal(m.sequence_number),
                start: out::StartBody {
                    account_sid: &m.account_sid,
                    stream_sid: &m.stream_sid,
                    call_sid: &m.call_sid,
                    tracks: m.tracks.iter().map(|t| t.as_str()).collect(),
                    custom_parameters: &m.custom_parameters,
                    media_format: out::MediaFormat {
                        encoding: &m.media_format.encoding,
                        sample_rate: m.media_format.sample_rate,
                        channels: m.media_format.channels,
                    },
                },
                stream_sid: &m.stream_sid,
            }),
            InboundMessage::Media(m) => serde_json::to_string(&out::InboundMedia {
                event: "media",
                sequence_number: out::Decimal(m.sequence_number),
                media: out::InboundMediaBody {
                    track: m.track.as_str(),
                    chunk: out::Decimal(m.chunk),
                    timestamp: out::Decimal(m.timestamp_ms),
                    payload: m.payload.as_base64(),
                },
                stream_sid: &m.stream_sid,
            }),
            InboundMessage::Mark(m) => serde_json::to_string(&out::InboundMark {
                event: "mark",
                sequence_number: out::Decimal(m.sequence_number),
                stream_sid: &m.stream_sid,
                mark: out::MarkBody { name: &m.name },
            }),
            InboundMessage::Dtmf(m) => serde_json::to_string(&out::Dtmf {
                event: "dtmf",
                stream_sid: &m.stream_sid,
                sequence_number: out::Decimal(m.sequence_number),
                dtmf: out::DtmfBody {
                    track: m.track.as_track_str(),
                    digit: m.digit,
                },
            }),
            InboundMessage::Stop(m) => serde_json::to_string(&out::Stop {
                event: "stop",
                sequence_number: out::Decimal(m.sequence_number),
                stop: out::StopBody {
                    account_sid: &m.account_sid,
                    call_sid: &m.call_sid,
                },
                stream_sid: &m.stream_sid,
            }),
        };
        json_or_empty_object(result)
    }
}

/// A message we send to Twilio (bidirectional streams only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage<'a> {
    /// Audio to play to the caller, queued after anything already sent.
    Media {
        /// The stream from `start`.
        stream_sid: Cow<'a, str>,
        /// Base64 mu-law; keep it frame-aligned (multiples of 160 bytes).
        payload: MediaPayload<'a>,
    },
    /// Asks Twilio to tell us (with an inbound `mark`) when the audio sent so far has played.
    Mark {
        /// The stream from `start`.
        stream_sid: Cow<'a, str>,
        /// Our label for the point in the audio, echoed back.
        name: Cow<'a, str>,
    },
    /// Drops all queued audio (barge-in); Twilio then echoes every pending mark.
    Clear {
        /// The stream from `start`.
        stream_sid: Cow<'a, str>,
    },
}

impl<'a> OutboundMessage<'a> {
    /// A `media` message carrying `audio` (raw mu-law), base64-encoded here.
    pub fn media(stream_sid: &'a str, audio: &[u8]) -> Self {
        OutboundMessage::Media {
            stream_sid: Cow::Borrowed(stream_sid),
            payload: MediaPayload::encode(audio),
        }
    }

    /// A `mark` message.
    pub fn mark(stream_sid: &'a str, name: &'a str) -> Self {
        OutboundMessage::Mark {
            stream_sid: Cow::Borrowed(stream_sid),
            name: Cow::Borrowed(name),
        }
    }

    /// A `clear` message.
    pub fn clear(stream_sid: &'a str) -> Self {
        OutboundMessage::Clear {
            stream_sid: Cow::Borrowed(stream_sid),
        }
    }

    /// The wire `event` name.
    pub fn event(&self) -> &'static str {
        match self {
            OutboundMessage::Media { .. } => "media",
            OutboundMessage::Mark { .. } => "mark",
            OutboundMessage::Clear { .. } => "clear",
        }
    }

    /// Serializes for the WebSocket text frame. For a stream of audio frames,
    /// [`MediaFrameWriter`] avoids re-escaping the stream SID and allocating per frame.
    pub fn to_json(&self) -> String {
        let result = match self {
            OutboundMessage::Media {
                stream_sid,
                payload,
            } => serde_json::to_string(&out::OutboundMedia {
                event: "media",
                stream_sid,
                media: out::OutboundMediaBody {
                    payload: payload.as_base64(),
                },
            }),
            OutboundMessage::Mark { stream_sid, name } => {
                serde_json::to_string(&out::OutboundMark {
                    event: "mark",
                    stream_sid,
                    mark: out::MarkBody { name },
                })
            }
            OutboundMessage::Clear { stream_sid } => serde_json::to_string(&out::Clear {
                event: "clear",
                stream_sid,
            }),
        };
        json_or_empty_object(result)
    }
}

/// Serializing these structs only fails on non-string map keys, which they do not have; an
/// empty object keeps the no-panic promise should that ever change.
fn json_or_empty_object(result: serde_json::Result<String>) -> String {
    result.unwrap_or_else(|_| String::from("{}"))
}

/// The fast path for outbound audio: writes `media` messages for one stream straight into a
/// reused `String`, with the JSON around the payload built once per stream.
///
/// ```
/// use shared::media_stream::{MediaFrameWriter, OutboundMessage};
/// let writer = MediaFrameWriter::new("MZ1");
/// let mut text = String::new();
/// writer.write(&[0xFF; 160], &mut text);
/// assert_eq!(text, OutboundMessage::media("MZ1", &[0xFF; 160]).to_json());
/// ```
#[derive(Debug, Clone)]
pub struct MediaFrameWriter {
    /// `{"event":"media","streamSid":"…","media":{"payload":"` with the SID already escaped.
    prefix: String,
}

impl MediaFrameWriter {
    /// Prepares the message prefix for `stream_sid`.
    pub fn new(stream_sid: &str) -> Self {
        let sid = serde_json::to_string(stream_sid).unwrap_or_else(|_| String::from("\"\""));
        MediaFrameWriter {
            prefix: format!(r#"{{"event":"media","streamSid":{sid},"media":{{"payload":""#),
        }
    }

    /// Replaces the contents of `out` with the `media` message for `audio` (raw mu-law).
    /// `out` keeps its capacity, so a reused buffer stops allocating after the first frame.
    pub fn write(&self, audio: &[u8], out: &mut String) {
        out.clear();
        out.push_str(&self.prefix);
        BASE64.encode_string(audio, out);
        out.push_str("\"}}");
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses one text frame from Twilio.
///
/// Strings borrow from `text` where JSON escapes allow; the payload is not decoded (see
/// [`MediaPayload`]). Errors name the first problem found.
pub fn parse_inbound(text: &str) -> Result<InboundMessage<'_>> {
    let wire: wire::Message<'_> = parse_wire(text)?;
    let event = wire::text("event", wire.event)?;
    match &*event {
        "media" => {
            let media = wire.media.ok_or(MediaStreamError::MissingField("media"))?;
            Ok(InboundMessage::Media(Media {
                sequence_number: wire::counter("sequenceNumber", wire.sequence_number)?,
                stream_sid: wire::text("streamSid", wire.stream_sid)?,
                track: Track::parse("media.track", &wire::text("media.track", media.track)?)?,
                chunk: wire::counter("media.chunk", media.chunk)?,
                timestamp_ms: wire::counter("media.timestamp", media.timestamp)?,
                payload: MediaPayload(wire::text("media.payload", media.payload)?),
            }))
        }
        "connected" => Ok(InboundMessage::Connected(Connected {
            protocol: wire::owned("protocol", wire.protocol)?,
            version: wire::owned("version", wire.version)?,
        })),
        "start" => {
            let start = wire.start.ok_or(MediaStreamError::MissingField("start"))?;
            let format = start
                .media_format
                .ok_or(MediaStreamError::MissingField("start.mediaFormat"))?;
            // Twilio repeats the SID inside `start`; either copy will do.
            let stream_sid = match start.stream_sid {
                Some(sid) => wire::owned("start.streamSid", Some(sid))?,
                None => wire::owned("streamSid", wire.stream_sid)?,
            };
            Ok(InboundMessage::Start(Start {
                sequence_number: wire::counter("sequenceNumber", wire.sequence_number)?,
                account_sid: wire::owned("start.accountSid", start.account_sid)?,
                stream_sid,
                call_sid: wire::owned("start.callSid", start.call_sid)?,
                tracks: start
                    .tracks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| Track::parse("start.tracks", &wire::text("start.tracks", Some(t))?))
                    .collect::<Result<_>>()?,
                custom_parameters: start.custom_parameters.unwrap_or_default(),
                media_format: MediaFormat {
                    encoding: wire::owned("start.mediaFormat.encoding", format.encoding)?,
                    sample_rate: format.sample_rate.ok_or(MediaStreamError::MissingField(
                        "start.mediaFormat.sampleRate",
                    ))?,
                    channels: format
                        .channels
                        .ok_or(MediaStreamError::MissingField("start.mediaFormat.channels"))?,
                },
            }))
        }
        "mark" => {
            let mark = wire.mark.ok_or(MediaStreamError::MissingField("mark"))?;
            Ok(InboundMessage::Mark(Mark {
                sequence_number: wire::counter("sequenceNumber", wire.sequence_number)?,
                stream_sid: wire::owned("streamSid", wire.stream_sid)?,
                name: wire::owned("mark.name", mark.name)?,
            }))
        }
        "dtmf" => {
            let dtmf = wire.dtmf.ok_or(MediaStreamError::MissingField("dtmf"))?;
            let digit = wire::text("dtmf.digit", dtmf.digit)?;
            let mut chars = digit.chars();
            let (Some(d), None) = (chars.next(), chars.next()) else {
                return Err(MediaStreamError::BadDigit(digit.into_owned()));
            };
            Ok(InboundMessage::Dtmf(Dtmf {
                sequence_number: wire::counter("sequenceNumber", wire.sequence_number)?,
                stream_sid: wire::owned("streamSid", wire.stream_sid)?,
                track: Track::parse("dtmf.track", &wire::text("dtmf.track", dtmf.track)?)?,
                digit: d,
            }))
        }
        "stop" => {
            let stop = wire.stop.ok_or(MediaStreamError::MissingField("stop"))?;
            Ok(InboundMessage::Stop(Stop {
                sequence_number: wire::counter("sequenceNumber", wire.sequence_number)?,
                stream_sid: wire::owned("streamSid", wire.stream_sid)?,
                account_sid: wire::owned("stop.accountSid", stop.account_sid)?,
                call_sid: wire::owned("stop.callSid", stop.call_sid)?,
            }))
        }
        other => Err(MediaStreamError::UnknownEvent(other.to_owned())),
    }
}

/// Parses a message we (or the simulator's counterpart) would send to Twilio.
pub fn parse_outbound(text: &str) -> Result<OutboundMessage<'_>> {
    let wire: wire::Message<'_> = parse_wire(text)?;
    let event = wire::text("event", wire.event)?;
    match &*event {
        "media" => {
            let media = wire.media.ok_or(MediaStreamError::MissingField("media"))?;
            Ok(OutboundMessage::Media {
                stream_sid: wire::text("streamSid", wire.stream_sid)?,
                payload: MediaPayload(wire::text("media.payload", media.payload)?),
            })
        }
        "mark" => {
            // A Twilio review called a mark without `mark.name` invalid (twilio.md §4.3).
            let mark = wire.mark.ok_or(MediaStreamError::MissingField("mark"))?;
            Ok(OutboundMessage::Mark {
                stream_sid: wire::text("streamSid", wire.stream_sid)?,
                name: wire::text("mark.name", mark.name)?,
            })
        }
        "clear" => Ok(OutboundMessage::Clear {
            stream_sid: wire::text("streamSid", wire.stream_sid)?,
        }),
        other => Err(MediaStreamError::UnknownEvent(other.to_owned())),
    }
}

fn parse_wire(text: &str) -> Result<wire::Message<'_>> {
    serde_json::from_str(text).map_err(|e| MediaStreamError::MalformedJson(e.to_string()))
}

/// Deserialization side: every field optional so that absence becomes a named
/// [`MediaStreamError::MissingField`] rather than serde's prose, and every string a [`wire::Scalar`]
/// so that wrong types become named errors too.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Message<'a> {
        #[serde(borrow)]
        pub event: Option<Scalar<'a>>,
        #[serde(borrow, rename = "sequenceNumber")]
        pub sequence_number: Option<Scalar<'a>>,
        #[serde(borrow, rename = "streamSid")]
        pub stream_sid: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub protocol: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub version: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub start: Option<Start<'a>>,
        #[serde(borrow)]
        pub media: Option<Media<'a>>,
        #[serde(borrow)]
        pub mark: Option<Named<'a>>,
        #[serde(borrow)]
        pub dtmf: Option<Dtmf<'a>>,
        #[serde(borrow)]
        pub stop: Option<Stop<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Start<'a> {
        #[serde(borrow)]
        pub account_sid: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub stream_sid: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub call_sid: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub tracks: Option<Vec<Scalar<'a>>>,
        pub custom_parameters: Option<BTreeMap<String, String>>,
        #[serde(borrow)]
        pub media_format: Option<MediaFormat<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct MediaFormat<'a> {
        #[serde(borrow)]
        pub encoding: Option<Scalar<'a>>,
        pub sample_rate: Option<u32>,
        pub channels: Option<u16>,
    }

    #[derive(Deserialize)]
    pub(super) struct Media<'a> {
        #[serde(borrow)]
        pub track: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub chunk: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub timestamp: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub payload: Option<Scalar<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Named<'a> {
        #[serde(borrow)]
        pub name: Option<Scalar<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Dtmf<'a> {
        #[serde(borrow)]
        pub track: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub digit: Option<Scalar<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Stop<'a> {
        #[serde(borrow)]
        pub account_sid: Option<Scalar<'a>>,
        #[serde(borrow)]
        pub call_sid: Option<Scalar<'a>>,
    }

    /// Any JSON value, keeping only strings (borrowed when unescaped). serde's own
    /// `Option<Cow<str>>` always copies, and a plain `&str` fails on escaped text.
    pub(super) enum Scalar<'a> {
        Str(Cow<'a, str>),
        NotString,
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor(std::marker::PhantomData))
        }
    }

    struct ScalarVisitor<'a>(std::marker::PhantomData<&'a ()>);

    impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
        type Value = Scalar<'a>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v)))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Scalar::NotString)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Scalar::NotString)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Scalar::NotString)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Scalar::NotString)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Scalar::NotString)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::NotString)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::NotString)
        }
    }

    /// A required string field.
    pub(super) fn text<'a>(field: &'static str, v: Option<Scalar<'a>>) -> Result<Cow<'a, str>> {
        match v {
            Some(Scalar::Str(s)) => Ok(s),
            Some(Scalar::NotString) => Err(MediaStreamError::NotAString(field)),
            None => Err(MediaStreamError::MissingField(field)),
        }
    }

    /// A required string field, owned (for once-per-call messages).
    pub(super) fn owned(field: &'static str, v: Option<Scalar<'_>>) -> Result<String> {
        text(field, v).map(Cow::into_owned)
    }

    /// A required counter: a JSON string of ASCII digits that fits in `u64`.
    pub(super) fn counter(field: &'static str, v: Option<Scalar<'_>>) -> Result<u64> {
        let s = match v {
            Some(Scalar::Str(s)) => s,
            Some(Scalar::NotString) => return Err(MediaStreamError::BadNumber(field)),
            None => return Err(MediaStreamError::MissingField(field)),
        };
        // `u64::from_str` also accepts a leading `+`; Twilio never sends one.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MediaStreamError::BadNumber(field));
        }
        s.parse().map_err(|_| MediaStreamError::BadNumber(field))
    }
}

/// Serialization side, field order as in Twilio's own messages.
mod out {
    use super::*;

    /// A counter, written as a JSON string the way Twilio does.
    pub(super) struct Decimal(pub u64);

    impl Serialize for Decimal {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }

    #[derive(Serialize)]
    pub(super) struct Connected<'a> {
        pub event: &'static str,
        pub protocol: &'a str,
        pub version: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Start<'a> {
        pub event: &'static str,
        pub sequence_number: Decimal,
        pub start: StartBody<'a>,
        pub stream_sid: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct StartBody<'a> {
        pub account_sid: &'a str,
        pub stream_sid: &'a str,
        pub call_sid: &'a str,
        pub tracks: Vec<&'static str>,
        pub media_format: MediaFormat<'a>,
        pub custom_parameters: &'a BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct MediaFormat<'a> {
        pub encoding: &'a str,
        pub sample_rate: u32,
        pub channels: u16,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct InboundMedia<'a> {
        pub event: &'static str,
        pub sequence_number: Decimal,
        pub media: InboundMediaBody<'a>,
        pub stream_sid: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct InboundMediaBody<'a> {
        pub track: &'static str,
        pub chunk: Decimal,
        pub timestamp: Decimal,
        pub payload: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct InboundMark<'a> {
        pub event: &'static str,
        pub sequence_number: Decimal,
        pub stream_sid: &'a str,
        pub mark: MarkBody<'a>,
    }

    #[derive(Serialize)]
    pub(super) struct MarkBody<'a> {
        pub name: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Dtmf<'a> {
        pub event: &'static str,
        pub stream_sid: &'a str,
        pub sequence_number: Decimal,
        pub dtmf: DtmfBody,
    }

    #[derive(Serialize)]
    pub(super) struct DtmfBody {
        pub track: &'static str,
        pub digit: char,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Stop<'a> {
        pub event: &'static str,
        pub sequence_number: Decimal,
        pub stop: StopBody<'a>,
        pub stream_sid: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct StopBody<'a> {
        pub account_sid: &'a str,
        pub call_sid: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct OutboundMedia<'a> {
        pub event: &'static str,
        pub stream_sid: &'a str,
        pub media: OutboundMediaBody<'a>,
    }

    #[derive(Serialize)]
    pub(super) struct OutboundMediaBody<'a> {
        pub payload: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct OutboundMark<'a> {
        pub event: &'static str,
        pub stream_sid: &'a str,
        pub mark: MarkBody<'a>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Clear<'a> {
        pub event: &'static str,
        pub stream_sid: &'a str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_B64: &str = "f39///////9/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////fw==";

    #[test]
    fn media_parse_borrows_unescaped_strings() {
        let text = format!(
            r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"155","payload":"{FRAME_B64}"}},"streamSid":"MZ1"}}"#
        );
        let InboundMessage::Media(m) = parse_inbound(&text).unwrap() else {
            panic!("not media")
        };
        assert!(matches!(m.stream_sid, Cow::Borrowed(_)));
        assert!(matches!(m.payload.0, Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_strings_still_parse() {
        let text = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ\u0031","mark":{"name":"a \"quoted\" label"}}"#;
        let InboundMessage::Mark(m) = parse_inbound(text).unwrap() else {
            panic!("not mark")
        };
        assert_eq!(m.stream_sid, "MZ1");
        assert_eq!(m.name, "a \"quoted\" label");
    }

    #[test]
    fn decode_into_reports_small_buffer_and_bad_base64() {
        let p = MediaPayload::from_base64(FRAME_B64);
        let mut frame = [0u8; 160];
        assert_eq!(p.decode_into(&mut frame), Ok(160));
        assert_eq!(frame[0], 0x7F);
        assert_eq!(frame[159], 0x7F);
        assert_eq!(frame[8], 0x7F);
        assert_eq!(frame.iter().filter(|&&b| b == 0xFF).count(), 155);
        let mut small = [0u8; 10];
        assert!(matches!(
            p.decode_into(&mut small),
            Err(MediaStreamError::BufferTooSmall { available: 10, .. })
        ));
        assert_eq!(
            MediaPayload::from_base64("no*base64").decode_to_vec(),
            Err(MediaStreamError::BadBase64)
        );
    }

    #[test]
    fn frame_writer_matches_generic_serializer_and_escapes_sid() {
        let sid = "MZ\"odd\\sid";
        let writer = MediaFrameWriter::new(sid);
        let mut text = String::from("stale");
        writer.write(&[1, 2, 3], &mut text);
        assert_eq!(text, OutboundMessage::media(sid, &[1, 2, 3]).to_json());
        let OutboundMessage::Media {
            stream_sid,
            payload,
        } = parse_outbound(&text).unwrap()
        else {
            panic!("not media")
        };
        assert_eq!(stream_sid, sid);
        assert_eq!(payload.decode_to_vec().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn accepts_unpadded_base64() {
        assert_eq!(
            MediaPayload::from_base64("/38").decode_to_vec(),
            Ok(vec![0xFF, 0x7F])
        );
    }
}
