//! Typed webhook parameters parsed from a [`Form`] (twilio.md §2 and §4.7).
//!
//! Twilio adds parameters without notice and new values to its enumerations, so parsing is
//! lenient where the future may differ and strict where the present is wrong:
//!
//! * unknown fields are kept in each struct's `extra`, in wire order, never rejected;
//! * status enums have an `Other(String)` variant that keeps unknown values verbatim;
//! * a missing required field is [`WebhookError::MissingField`], and a number or boolean that does
//!   not parse is [`WebhookError::InvalidNumber`] / [`WebhookError::InvalidBoolean`], each naming
//!   the field, so a 400 response and the log say exactly what was wrong;
//! * an optional number, boolean or enum sent with an empty value (Twilio sends some fields
//!   empty rather than omitting them) is treated as absent; optional *text* fields keep the empty
//!   string, because `Digits=` ("no digits") differs from no `Digits` field at all.
//!
//! Timestamps stay strings: this crate has no clock or date library, and Twilio uses RFC 2822 in
//! call-status callbacks and ISO 8601 in stream-status callbacks.
//!
//! ```
//! use shared::form::Form;
//! use shared::webhook::{CallStatus, FromForm, VoiceRequest};
//!
//! let form = Form::parse(b"CallSid=CA1&AccountSid=AC1&From=%2B14155551212&To=%2B12058963971&CallStatus=ringing&Direction=inbound&NewParam=x").unwrap();
//! let req = VoiceRequest::from_form(&form).unwrap();
//! assert_eq!(req.call.call_status, CallStatus::Ringing);
//! assert_eq!(req.extra, vec![("NewParam".to_string(), "x".to_string())]);
//! ```

use std::collections::HashSet;
use std::fmt;

use crate::form::{Form, FormError};

/// Why a webhook's parameters do not form the expected request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a valid form (only from [`FromForm::from_urlencoded`]).
    #[error("webhook body is not a valid form: {0}")]
    Form(#[from] FormError),
    /// A field Twilio always sends for this request is absent.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A numeric field does not parse as the expected number.
    #[error("field {field} is not a valid number: {value:?}")]
    InvalidNumber {
        /// Wire name of the field.
        field: &'static str,
        /// The value received.
        value: String,
    },
    /// A boolean field is neither `true` nor `false`.
    #[error("field {field} is not true/false: {value:?}")]
    InvalidBoolean {
        /// Wire name of the field.
        field: &'static str,
        /// The value received.
        value: String,
    },
    /// A field has a value that cannot be right for this request (e.g. a Voice SDK call whose
    /// `From` is not `client:…`).
    #[error("field {field} has an unexpected value: {value:?}")]
    InvalidValue {
        /// Wire name of the field.
        field: &'static str,
        /// The value received.
        value: String,
    },
    /// `NumMedia` announces a `MediaUrl{index}` that is not in the form.
    #[error("NumMedia announces MediaUrl{0}, which is missing")]
    MissingMediaUrl(u32),
}

/// Parsing a typed request from webhook form parameters.
pub trait FromForm: Sized {
    /// Parses the request; unknown fields end up in the struct's `extra`.
    fn from_form(form: &Form) -> Result<Self, WebhookError>;

    /// Parses a raw urlencoded body (convenience for handlers that have only bytes).
    fn from_urlencoded(body: &[u8]) -> Result<Self, WebhookError> {
        Self::from_form(&Form::parse(body)?)
    }
}

/// Declares a wire enum whose unknown values are kept in `Other`, so a value Twilio adds tomorrow
/// is carried through rather than failing the whole webhook.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this crate does not know yet, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Parses a wire value; never fails (unknown values become `Other`).
            pub fn parse(value: &str) -> Self {
                match value {
                    $($wire => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// `CallStatus` (§2.1, §2.3).
    CallStatus {
        Queued => "queued",
        Initiated => "initiated",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Busy => "busy",
        Failed => "failed",
        NoAnswer => "no-answer",
        Canceled => "canceled",
    }
}

wire_enum! {
    /// `Direction` (§2.1).
    Direction {
        Inbound => "inbound",
        OutboundApi => "outbound-api",
        OutboundDial => "outbound-dial",
        TrunkingOriginating => "trunking-originating",
        TrunkingTerminating => "trunking-terminating",
    }
}

wire_enum! {
    /// `StirVerstat` SHAKEN/STIR result (§2.2). Match attestation with
    /// [`StirVerstat::is_passed_a`] rather than on exact values: `-Diverted`/`-Passthrough`
    /// suffixes exist.
    StirVerstat {
        PassedA => "TN-Validation-Passed-A",
        PassedB => "TN-Validation-Passed-B",
        PassedC => "TN-Validation-Passed-C",
        FailedA => "TN-Validation-Failed-A",
        FailedB => "TN-Validation-Failed-B",
        FailedC => "TN-Validation-Failed-C",
        Failed => "TN-Validation-Failed",
        NoValidation => "No-TN-Validation",
        PassedADiverted => "TN-Validation-Passed-A-Diverted",
        PassedBDiverted => "TN-Validation-Passed-B-Diverted",
        PassedCDiverted => "TN-Validation-Passed-C-Diverted",
        FailedADiverted => "TN-Validation-Failed-A-Diverted",
        FailedBDiverted => "TN-Validation-Failed-B-Diverted",
        FailedCDiverted => "TN-Validation-Failed-C-Diverted",
    }
}

impl StirVerstat {
    /// Whether the caller's number was verified with full attestation (A), including diverted and
    /// passthrough variants; the one case where caller ID can be trusted (twilio.md §2.2).
    pub fn is_passed_a(&self) -> bool {
        self.as_str().starts_with("TN-Validation-Passed-A")
    }

    /// Whether the PASSporT was verified at any attestation level.
    pub fn is_passed(&self) -> bool {
        self.as_str().starts_with("TN-Validation-Passed")
    }
}

wire_enum! {
    /// `DialCallStatus` on a `<Dial action>` request (§2.4).
    DialCallStatus {
        Completed => "completed",
        Answered => "answered",
        Busy => "busy",
        NoAnswer => "no-answer",
        Failed => "failed",
        Canceled => "canceled",
    }
}

wire_enum! {
    /// `RecordingStatus` on a recording status callback (§2.7).
    RecordingStatus {
        InProgress => "in-progress",
        Completed => "completed",
        Absent => "absent",
        Failed => "failed",
    }
}

wire_enum! {
    /// `StreamEvent` on a stream status callback (§4.7).
    StreamEvent {
        Started => "stream-started",
        Stopped => "stream-stopped",
        Error => "stream-error",
    }
}

wire_enum! {
    /// `AnsweredBy` from answering machine detection (§2.8).
    AnsweredBy {
        Human => "human",
        MachineStart => "machine_start",
        MachineEndBeep => "machine_end_beep",
        MachineEndSilence => "machine_end_silence",
        MachineEndOther => "machine_end_other",
        Fax => "fax",
        Unknown => "unknown",
    }
}

/// Best-effort geographic lookup Twilio attaches to a phone number (`FromCity`, …); any part may
/// be absent or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// `…City`.
    pub city: Option<String>,
    /// `…State`.
    pub state: Option<String>,
    /// `…Zip`.
    pub zip: Option<String>,
    /// `…Country` (ISO 3166 alpha-2).
    pub country: Option<String>,
}

/// Reads fields from a form and remembers which keys were consumed, so the leftovers can be
/// returned as `extra`.
struct Fields<'a> {
    /// The form being read.
    form: &'a Form,
    /// Keys read so far (known fields, whether present or not).
    used: HashSet<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(form: &'a Form) -> Self {
        Fields {
            form,
            used: HashSet::new(),
        }
    }

    fn mark(&mut self, key: &'static str) {
        self.used.insert(key);
    }

    fn opt(&mut self, key: &'static str) -> Option<String> {
        self.mark(key);
        self.form.get(key).map(str::to_owned)
    }

    fn req(&mut self, key: &'static str) -> Result<String, WebhookError> {
        self.opt(key).ok_or(WebhookError::MissingField(key))
    }

    /// Optional field where an empty value means absent (numbers, enums, booleans).
    fn opt_nonempty(&mut self, key: &'static str) -> Option<&'a str> {
        self.mark(key);
        self.form.get(key).filter(|v| !v.is_empty())
    }

    fn opt_num<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
    ) -> Result<Option<T>, WebhookError> {
        self.opt_nonempty(key)
            .map(|v| {
                v.parse::<T>().map_err(|_| WebhookError::InvalidNumber {
                    field: key,
                    value: v.to_owned(),
                })
            })
            .transpose()
    }

    /// A confidence or similar fraction; NaN and infinities are refused so comparisons work.
    fn opt_finite(&mut self, key: &'static str) -> Result<Option<f64>, WebhookError> {
        match self.opt_num::<f64>(key)? {
            Some(v) if !v.is_finite() => Err(WebhookError::InvalidNumber {
                field: key,
                value: self.form.get(key).unwrap_or_default().to_owned(),
            }),
            other => Ok(other),
        }
    }

    fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, WebhookError> {
        match self.opt_nonempty(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(WebhookError::InvalidBoolean {
                field: key,
                value: other.to_owned(),
            }),
        }
    }

    fn opt_enum<E: for<'s> From<&'s str>>(&mut self, key: &'static str) -> Option<E> {
        self.opt_nonempty(key).map(E::from)
    }

    fn req_enum<E: for<'s> From<&'s str>>(&mut self, key: &'static str) -> Result<E, WebhookError> {
        self.opt_enum(key).ok_or(WebhookError::MissingField(key))
    }

    fn location(
        &mut self,
        city: &'static str,
        state: &'static str,
        zip: &'static str,
        country: &'static str,
    ) -> Location {
        Location {
            city: self.opt(city),
            state: self.opt(state),
            zip: self.opt(zip),
            country: self.opt(country),
        }
    }

    /// Every pair whose key was not read, in wire order.
    fn extra(&self) -> Vec<(String, String)> {
        self.form
            .pairs()
            .iter()
            .filter(|(k, _)| !self.used.contains(k.as_str()))
            .cloned()
            .collect()
    }
}

/// The parameters every voice request carries (§2.1); embedded in every voice callback type.
#[derive(Debug, Clone, PartialEq)]
pub struct CallParams {
    /// `CallSid` (`CA…`): the key for idempotent inserts.
    pub call_sid: String,
    /// `AccountSid` (`AC…`): which (sub)account, hence which auth token.
    pub account_sid: String,
    /// `From`: E.164, `client:<identity>`, `sip:…`, or `anonymous`/other text when withheld.
    pub from: String,
    /// `To`: the called number (tenant lookup key); may be empty for Voice SDK calls.
    pub to: String,
    /// `CallStatus`.
    pub call_status: CallStatus,
    /// `Direction`; absent only on unusual callbacks.
    pub direction: Option<Direction>,
    /// `ApiVersion` (`2010-04-01`).
    pub api_version: Option<String>,
    /// `ForwardedFrom`: set when the carrier passes diversion info.
    pub forwarded_from: Option<String>,
    /// `CallerName`: CNAM, only with caller-ID lookup enabled.
    pub caller_name: Option<String>,
    /// `ParentCallSid`: on child legs only.
    pub parent_call_sid: Option<String>,
    /// `CallToken`: pass along when forwarding to keep the original caller ID/attestation.
    pub call_token: Option<String>,
    /// `Caller` (legacy duplicate of `From`).
    pub caller: Option<String>,
    /// `Called` (legacy duplicate of `To`).
    pub called: Option<String>,
    /// `StirVerstat`; absent when no PASSporT was received.
    pub stir_verstat: Option<StirVerstat>,
    /// `StirPassportToken`: the raw SHAKEN PASSporT, when present.
    pub stir_passport_token: Option<String>,
    /// `ApplicationSid`: when a TwiML App handles the call.
    pub application_sid: Option<String>,
    /// `FromCity`, `FromState`, `FromZip`, `FromCountry`.
    pub from_location: Location,
    /// `ToCity`, `ToState`, `ToZip`, `ToCountry`.
    pub to_location: Location,
    /// `CallerCity`, … (legacy duplicates).
    pub caller_location: Location,
    /// `CalledCity`, … (legacy duplicates).
    pub called_location: Location,
}

impl CallParams {
    fn read(f: &mut Fields<'_>) -> Result<Self, WebhookError> {
        Ok(CallParams {
            call_sid: f.req("CallSid")?,
            account_sid: f.req("AccountSid")?,
            from: f.req("From")?,
            to: f.req("To")?,
            call_status: f.req_enum("CallStatus")?,
            direction: f.opt_enum("Direction"),
            api_version: f.opt("ApiVersion"),
            forwarded_from: f.opt("ForwardedFrom"),
            caller_name: f.opt("CallerName"),
            parent_call_sid: f.opt("ParentCallSid"),
            call_token: f.opt("CallToken"),
            caller: f.opt("Caller"),
            called: f.opt("Called"),
            stir_verstat: f.opt_enum("StirVerstat"),
            stir_passport_token: f.opt("StirPassportToken"),
            application_sid: f.opt("ApplicationSid"),
            from_location: f.location("FromCity", "FromState", "FromZip", "FromCountry"),
            to_location: f.location("ToCity", "ToState", "ToZip", "ToCountry"),
            caller_location: f.location("CallerCity", "CallerState", "CallerZip", "CallerCountry"),
            called_location: f.location("CalledCity", "CalledState", "CalledZip", "CalledCountry"),
        })
    }
}

/// Incoming call / TwiML fetch (§2.1), including the synchronous AMD fields (§2.8).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceRequest {
    /// The base call parameters.
    pub call: CallParams,
    /// `AnsweredBy`: only with synchronous answering machine detection.
    pub answered_by: Option<AnsweredBy>,
    /// `MachineDetectionDuration` in milliseconds.
    pub machine_detection_duration_ms: Option<u32>,
    /// Parameters this crate does not model, in wire order (SIP headers, new fields, …).
    pub extra: Vec<(String, String)>,
}

impl FromForm for VoiceRequest {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(VoiceRequest {
            call: CallParams::read(&mut f)?,
            answered_by: f.opt_enum("AnsweredBy"),
            machine_detection_duration_ms: f.opt_num("MachineDetectionDuration")?,
            extra: f.extra(),
        })
    }
}

/// Call progress callback (`StatusCallback`, §2.3). Delivery order is not guaranteed: order
/// events by `sequence_number`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStatusCallback {
    /// The base call parameters (`call.call_status` is the reported status).
    pub call: CallParams,
    /// `CallDuration` in seconds; on `completed` only.
    pub call_duration: Option<u32>,
    /// `Duration` in billed minutes; on `completed` only.
    pub duration_minutes: Option<u32>,
    /// `SipResponseCode`: final SIP code (e.g. 487 when unanswered).
    pub sip_response_code: Option<u16>,
    /// `Timestamp` as sent (RFC 2822, e.g. `Tue, 31 Aug 2010 20:36:44 +0000`).
    pub timestamp: Option<String>,
    /// `CallbackSource` (`call-progress-events`).
    pub callback_source: Option<String>,
    /// `SequenceNumber`: the order Twilio fired events in.
    pub sequence_number: Option<u32>,
    /// `RecordingUrl` (REST `Record=true` only).
    pub recording_url: Option<String>,
    /// `RecordingSid`.
    pub recording_sid: Option<String>,
    /// `RecordingDuration` in seconds.
    pub recording_duration: Option<u32>,
    /// `AnsweredBy` when AMD ran.
    pub answered_by: Option<AnsweredBy>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for CallStatusCallback {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(CallStatusCallback {
            call: CallParams::read(&mut f)?,
            call_duration: f.opt_num("CallDuration")?,
            duration_minutes: f.opt_num("Duration")?,
            sip_response_code: f.opt_num("SipResponseCode")?,
            timestamp: f.opt("Timestamp"),
            callback_source: f.opt("CallbackSource"),
            sequence_number: f.opt_num("SequenceNumber")?,
            recording_url: f.opt("RecordingUrl"),
            recording_sid: f.opt("RecordingSid"),
            recording_duration: f.opt_num("RecordingDuration")?,
            answered_by: f.opt_enum("AnsweredBy"),
            extra: f.extra(),
        })
    }
}

/// `<Dial action>` request (§2.4): how the dialed leg ended. `call` describes the parent call.
#[derive(Debug, Clone, PartialEq)]
pub struct DialActionRequest {
    /// The parent call's base parameters.
    pub call: CallParams,
    /// `DialCallStatus`.
    pub dial_call_status: DialCallStatus,
    /// `DialCallSid`: the child leg (absent after `<Conference>`).
    pub dial_call_sid: Option<String>,
    /// `DialCallDuration` in seconds (absent after `<Conference>`).
    pub dial_call_duration: Option<u32>,
    /// `DialBridged`: whether the legs were actually connected.
    pub dial_bridged: Option<bool>,
    /// `RecordingUrl` when `<Dial record>` was set.
    pub recording_url: Option<String>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for DialActionRequest {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(DialActionRequest {
            call: CallParams::read(&mut f)?,
            dial_call_status: f.req_enum("DialCallStatus")?,
            dial_call_sid: f.opt("DialCallSid"),
            dial_call_duration: f.opt_num("DialCallDuration")?,
            dial_bridged: f.opt_bool("DialBridged")?,
            recording_url: f.opt("RecordingUrl"),
            extra: f.extra(),
        })
    }
}

/// `<Gather action>` request (§2.5).
#[derive(Debug, Clone, PartialEq)]
pub struct GatherResult {
    /// The base call parameters.
    pub call: CallParams,
    /// `Digits` (without the finish key); `Some("")` when sent empty.
    pub digits: Option<String>,
    /// `FinishedOnKey`: the key that ended input, or empty.
    pub finished_on_key: Option<String>,
    /// `SpeechResult`: the transcription when `input` included speech.
    pub speech_result: Option<String>,
    /// `Confidence` of `speech_result`, 0.0–1.0, not always sent.
    pub confidence: Option<f64>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for GatherResult {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(GatherResult {
            call: CallParams::read(&mut f)?,
            digits: f.opt("Digits"),
            finished_on_key: f.opt("FinishedOnKey"),
            speech_result: f.opt("SpeechResult"),
            confidence: f.opt_finite("Confidence")?,
            extra: f.extra(),
        })
    }
}

/// `<Gather partialResultCallback>` request (§2.5): interim speech while the caller talks.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherPartialResult {
    /// The base call parameters.
    pub call: CallParams,
    /// `UnstableSpeechResult`: may still change.
    pub unstable_speech_result: Option<String>,
    /// `StableSpeechResult`: will not change.
    pub stable_speech_result: Option<String>,
    /// `SequenceNumber`: partial results may arrive out of order.
    pub sequence_number: Option<u32>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for GatherPartialResult {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(GatherPartialResult {
            call: CallParams::read(&mut f)?,
            unstable_speech_result: f.opt("UnstableSpeechResult"),
            stable_speech_result: f.opt("StableSpeechResult"),
            sequence_number: f.opt_num("SequenceNumber")?,
            extra: f.extra(),
        })
    }
}

/// `<Record action>` request (§2.6): the recording just made.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordAction {
    /// The base call parameters.
    pub call: CallParams,
    /// `RecordingUrl` (append `.wav`/`.mp3` to download).
    pub recording_url: String,
    /// `RecordingDuration` in seconds.
    pub recording_duration: Option<u32>,
    /// `RecordingSid`, present in current payloads.
    pub recording_sid: Option<String>,
    /// `Digits`: the key that ended the recording, or `hangup`.
    pub digits: Option<String>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for RecordAction {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(RecordAction {
            call: CallParams::read(&mut f)?,
            recording_url: f.req("RecordingUrl")?,
            recording_duration: f.opt_num("RecordingDuration")?,
            recording_sid: f.opt("RecordingSid"),
            digits: f.opt("Digits"),
            extra: f.extra(),
        })
    }
}

/// Recording status callback (§2.7). Carries no `From`/`To`, so it does not embed
/// [`CallParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingStatusCallback {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`: always the parent leg of a two-leg call.
    pub call_sid: String,
    /// `RecordingSid` (`RE…`): the idempotency key.
    pub recording_sid: String,
    /// `RecordingStatus`.
    pub recording_status: RecordingStatus,
    /// `RecordingUrl`; absent for `absent`/`failed` recordings.
    pub recording_url: Option<String>,
    /// `RecordingDuration` in seconds.
    pub recording_duration: Option<u32>,
    /// `RecordingChannels`: 1 or 2.
    pub recording_channels: Option<u8>,
    /// `RecordingStartTime` as sent.
    pub recording_start_time: Option<String>,
    /// `RecordingSource`, e.g. `RecordVerb`, `DialVerb`.
    pub recording_source: Option<String>,
    /// `RecordingTrack`: `inbound`, `outbound` or `both`.
    pub recording_track: Option<String>,
    /// `ErrorCode` on failure/absent.
    pub error_code: Option<u32>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for RecordingStatusCallback {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(RecordingStatusCallback {
            account_sid: f.req("AccountSid")?,
            call_sid: f.req("CallSid")?,
            recording_sid: f.req("RecordingSid")?,
            recording_status: f.req_enum("RecordingStatus")?,
            recording_url: f.opt("RecordingUrl"),
            recording_duration: f.opt_num("RecordingDuration")?,
            recording_channels: f.opt_num("RecordingChannels")?,
            recording_start_time: f.opt("RecordingStartTime"),
            recording_source: f.opt("RecordingSource"),
            recording_track: f.opt("RecordingTrack"),
            error_code: f.opt_num("ErrorCode")?,
            extra: f.extra(),
        })
    }
}

/// `<Stream statusCallback>` request (§4.7).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStatusCallback {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`.
    pub call_sid: String,
    /// `StreamSid` (`MZ…`).
    pub stream_sid: String,
    /// `StreamName` (defaults to the StreamSid on Twilio's side).
    pub stream_name: Option<String>,
    /// `StreamEvent`.
    pub stream_event: StreamEvent,
    /// `StreamError`: the message, on `stream-error`.
    pub stream_error: Option<String>,
    /// `Timestamp` as sent (ISO 8601).
    pub timestamp: Option<String>,
    /// Parameters this crate does not model, in wire order.
    pub extra: Vec<(String, String)>,
}

impl FromForm for StreamStatusCallback {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(StreamStatusCallback {
            account_sid: f.req("AccountSid")?,
            call_sid: f.req("CallSid")?,
            stream_sid: f.req("StreamSid")?,
            stream_name: f.opt("StreamName"),
            stream_event: f.req_enum("StreamEvent")?,
            stream_error: f.opt("StreamError"),
            timestamp: f.opt("Timestamp"),
            extra: f.extra(),
        })
    }
}

/// Where the edge takes outbound messages' delivery reports (the `StatusCallback` a node puts on
/// every SMS it sends).
pub const SMS_STATUS_PATH: &str = "/sms/status";

/// Outbound message status callback (the message's `StatusCallback`): Twilio reports each step
/// (`queued`, `sent`, `delivered`, `undelivered`, `failed`, …), possibly out of order and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsStatusCallback {
    /// `MessageSid` (`SM…`/`MM…`).
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `MessageStatus`, as sent (lowercase words).
    pub message_status: String,
    /// `ErrorCode`, on `undelivered` / `failed`.
    pub error_code: Option<u32>,
    /// `From`: the tenant's number.
    pub from: Option<String>,
    /// `To`: the recipient.
    pub to: Option<String>,
    /// Parameters this crate does not model (`SmsSid`, `SmsStatus`, `ApiVersion`, …).
    pub extra: Vec<(String, String)>,
}

impl FromForm for SmsStatusCallback {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        Ok(SmsStatusCallback {
            message_sid: f.req("MessageSid")?,
            account_sid: f.req("AccountSid")?,
            message_status: f.req("MessageStatus")?,
            error_code: f.opt_num("ErrorCode")?,
            from: f.opt("From"),
            to: f.opt("To"),
            extra: f.extra(),
        })
    }
}

/// One MMS attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMedia {
    /// `MediaUrl{N}`.
    pub url: String,
    /// `MediaContentType{N}`, e.g. `image/jpeg`.
    pub content_type: Option<String>,
}

/// Incoming SMS/MMS webhook (§2.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSms {
    /// `MessageSid` (`SM…`/`MM…`).
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `MessagingServiceSid`, when sent through a service.
    pub messaging_service_sid: Option<String>,
    /// `From`: E.164 or channel address (`whatsapp:+1…`).
    pub from: String,
    /// `To`: the receiving number (tenant lookup key).
    pub to: String,
    /// `Body`: the text (up to 1600 chars); empty for media-only MMS.
    pub body: String,
    /// `NumSegments`.
    pub num_segments: Option<u32>,
    /// Attachments `MediaUrl0..` in index order; length = `NumMedia`.
    pub media: Vec<SmsMedia>,
    /// `SmsStatus` (`received`).
    pub sms_status: Option<String>,
    /// `ApiVersion`.
    pub api_version: Option<String>,
    /// `FromCity`, …
    pub from_location: Location,
    /// `ToCity`, …
    pub to_location: Location,
    /// Parameters this crate does not model (`SmsSid`, WhatsApp fields, …), in wire order.
    pub extra: Vec<(String, String)>,
}

/// Twilio allows at most 10 MMS attachments; a larger `NumMedia` is refused before any loop.
const MAX_MEDIA: u32 = 10;

impl FromForm for IncomingSms {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        let message_sid = f.req("MessageSid")?;
        let account_sid = f.req("AccountSid")?;
        let from = f.req("From")?;
        let to = f.req("To")?;
        let body = f.req("Body")?;
        let num_media: u32 = f.opt_num("NumMedia")?.unwrap_or(0);
        if num_media > MAX_MEDIA {
            return Err(WebhookError::InvalidNumber {
                field: "NumMedia",
                value: num_media.to_string(),
            });
        }
        let mut media = Vec::new();
        for index in 0..num_media {
            let url_key = format!("MediaUrl{index}");
            let type_key = format!("MediaContentType{index}");
            let url = form
                .get(&url_key)
                .ok_or(WebhookError::MissingMediaUrl(index))?;
            let content_type = form.get(&type_key).map(str::to_owned);
            f.used.insert(form_key(form, &url_key));
            if content_type.is_some() {
                f.used.insert(form_key(form, &type_key));
            }
            media.push(SmsMedia {
                url: url.to_owned(),
                content_type,
            });
        }
        Ok(IncomingSms {
            message_sid,
            account_sid,
            messaging_service_sid: f.opt("MessagingServiceSid"),
            from,
            to,
            body,
            num_segments: f.opt_num("NumSegments")?,
            media,
            sms_status: f.opt("SmsStatus"),
            api_version: f.opt("ApiVersion"),
            from_location: f.location("FromCity", "FromState", "FromZip", "FromCountry"),
            to_location: f.location("ToCity", "ToState", "ToZip", "ToCountry"),
            extra: f.extra(),
        })
    }
}

/// The form's own copy of `key` (so it can be borrowed for the form's lifetime); callers only use
/// it for keys known to be present.
fn form_key<'a>(form: &'a Form, key: &str) -> &'a str {
    form.iter()
        .map(|(k, _)| k)
        .find(|k| *k == key)
        .unwrap_or_default()
}

/// Voice SDK outgoing call to a TwiML App (§2.9): `From=client:<identity>` plus the custom
/// parameters the client passed to `device.connect({params})` and the grant's `outgoing.params`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOutgoingCall {
    /// The base call parameters (`call.to` may be empty).
    pub call: CallParams,
    /// The caller's identity: `From` without its `client:` prefix.
    pub identity: String,
    /// `ApplicationSid` of the TwiML App (also in `call.application_sid`).
    pub application_sid: String,
    /// The custom parameters: every field that is not a standard voice parameter, in wire order.
    pub params: Vec<(String, String)>,
}

impl ClientOutgoingCall {
    /// The first value of a custom parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromForm for ClientOutgoingCall {
    fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let mut f = Fields::new(form);
        let call = CallParams::read(&mut f)?;
        let identity = call
            .from
            .strip_prefix("client:")
            .ok_or_else(|| WebhookError::InvalidValue {
                field: "From",
                value: call.from.clone(),
            })?
            .to_owned();
        let application_sid = call
            .application_sid
            .clone()
            .ok_or(WebhookError::MissingField("ApplicationSid"))?;
        Ok(ClientOutgoingCall {
            call,
            identity,
            application_sid,
            params: f.extra(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_kept() {
        assert_eq!(
            CallStatus::parse("teleported"),
            CallStatus::Other("teleported".into())
        );
        assert_eq!(CallStatus::parse("teleported").as_str(), "teleported");
        assert_eq!(CallStatus::parse("in-progress"), CallStatus::InProgress);
        assert_eq!(CallStatus::InProgress.to_string(), "in-progress");
    }

    #[test]
    fn verstat_attestation_matches_by_prefix() {
        assert!(StirVerstat::parse("TN-Validation-Passed-A-Passthrough").is_passed_a());
        assert!(StirVerstat::PassedADiverted.is_passed_a());
        assert!(!StirVerstat::PassedB.is_passed_a());
        assert!(StirVerstat::PassedB.is_passed());
        assert!(!StirVerstat::NoValidation.is_passed());
    }
}
