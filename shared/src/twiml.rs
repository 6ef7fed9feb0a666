//! A typed TwiML builder with correct XML escaping (twilio.md §3).
//!
//! Output is byte-for-byte what twilio-python 9.13.0's `to_xml()` produces for the same document:
//! the exact declaration `<?xml version="1.0" encoding="UTF-8"?>` with nothing before it (error
//! 12100), no newlines, attributes **sorted by name**, empty elements written `<Tag />`. Matching
//! the SDK byte-for-byte lets tests compare whole documents and keeps diffs against Twilio's
//! examples readable; Twilio itself does not care about attribute order.
//!
//! Verbs are typed structs with builder methods that take typed values where the docs define an
//! enumeration (HTTP method, `track`, `record`, `reason`, status-callback events…), so a typo in an
//! attribute value is a compile error rather than a Twilio warning at call time.
//!
//! ```
//! use shared::twiml::{Connect, Stream, VoiceResponse};
//!
//! let xml = VoiceResponse::new()
//!     .connect(Connect::new().stream(Stream::new("wss://node.example/media").parameter("token", "t")))
//!     .to_xml();
//! assert_eq!(
//!     xml,
//!     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://node.example/media"><Parameter name="token" value="t" /></Stream></Connect></Response>"#
//! );
//! ```
//!
//! # Escaping
//!
//! See [`escape_text`] and [`escape_attribute`]. Characters XML 1.0 does not allow at all (C0
//! controls other than tab, LF and CR, and U+FFFE/U+FFFF) are **dropped**: no character reference
//! can express them either, and replacing them with U+FFFD would make `<Say>` pronounce a
//! replacement character.

use std::fmt;

/// The declaration Twilio requires as the very first bytes of the document.
const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Escapes text content the way the python SDK (ElementTree) does: `&`, `<`, `>` become entities;
/// quotes stay literal (valid in text nodes). Characters not allowed in XML 1.0 are dropped.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// Escapes a double-quoted attribute value the way the python SDK (ElementTree) does: `&`, `<`,
/// `>`, `"` become entities, and CR, LF and tab become character references so an XML parser's
/// attribute-value normalisation does not turn them into spaces. `'` stays literal because values
/// are always double-quoted. Characters not allowed in XML 1.0 are dropped.
pub fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#09;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// XML 1.0 `Char` production (surrogates cannot occur in a Rust `char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// One XML element before rendering. Every verb lowers to this, so rendering and escaping live in
/// one place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    /// Element name (always one of the static TwiML names, never user input).
    name: &'static str,
    /// Attributes in insertion order; sorted only when rendering, like the SDK.
    attrs: Vec<(&'static str, String)>,
    /// Text content; empty means none (the SDK also omits empty text).
    text: String,
    /// Child elements, rendered after the text.
    children: Vec<Element>,
}

impl Element {
    fn new(name: &'static str) -> Self {
        Element {
            name,
            attrs: Vec::new(),
            text: String::new(),
            children: Vec::new(),
        }
    }

    fn with_text(name: &'static str, text: impl Into<String>) -> Self {
        let mut el = Element::new(name);
        el.text = text.into();
        el
    }

    /// Sets an attribute, replacing an earlier value so calling a builder method twice keeps the
    /// last value instead of emitting a duplicate attribute (invalid XML).
    fn set(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    fn render(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        let mut attrs: Vec<&(&'static str, String)> = self.attrs.iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in attrs {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            out.push_str(&escape_attribute(value));
            out.push('"');
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        out.push_str(&escape_text(&self.text));
        for child in &self.children {
            child.render(out);
        }
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Implements the element-lowering plumbing for a newtype around [`Element`].
macro_rules! element_newtype {
    ($($ty:ident),* $(,)?) => {$(
        impl $ty {
            fn into_element(self) -> Element {
                self.0
            }
        }
    )*};
}

/// Declares a closed attribute-value enum with its canonical wire spelling.
macro_rules! attr_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// The exact spelling TwiML expects.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

attr_enum! {
    /// HTTP method Twilio uses for a callback (`method`, `statusCallbackMethod`, …).
    Method { Get => "GET", Post => "POST" }
}

attr_enum! {
    /// One `<Gather input>` kind; several are joined with spaces in the order given.
    GatherInput { Dtmf => "dtmf", Speech => "speech" }
}

attr_enum! {
    /// `<Stream track>`: which audio Twilio sends. `<Connect><Stream>` allows only `InboundTrack`.
    Track { InboundTrack => "inbound_track", OutboundTrack => "outbound_track", BothTracks => "both_tracks" }
}

attr_enum! {
    /// `<Dial record>`.
    DialRecord {
        DoNotRecord => "do-not-record",
        RecordFromAnswer => "record-from-answer",
        RecordFromRinging => "record-from-ringing",
        RecordFromAnswerDual => "record-from-answer-dual",
        RecordFromRingingDual => "record-from-ringing-dual",
    }
}

attr_enum! {
    /// `trim` on `<Dial>` and `<Record>`.
    Trim { TrimSilence => "trim-silence", DoNotTrim => "do-not-trim" }
}

attr_enum! {
    /// `<Reject reason>`: the signal the caller hears.
    RejectReason { Rejected => "rejected", Busy => "busy" }
}

attr_enum! {
    /// `<Number>`/`<Client>` `statusCallbackEvent` values (space-separated on the wire).
    CallEvent { Initiated => "initiated", Ringing => "ringing", Answered => "answered", Completed => "completed" }
}

attr_enum! {
    /// `recordingStatusCallbackEvent` values (space-separated on the wire).
    RecordingEvent { InProgress => "in-progress", Completed => "completed", Absent => "absent" }
}

/// `<Gather speechTimeout>`: seconds of silence, or `auto` to let Twilio detect the end of speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpeechTimeout {
    /// `auto`.
    Auto,
    /// A number of seconds.
    Seconds(u32),
}

impl fmt::Display for SpeechTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpeechTimeout::Auto => f.write_str("auto"),
            SpeechTimeout::Seconds(s) => write!(f, "{s}"),
        }
    }
}

fn join_space<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `<Say>`: text-to-speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say(Element);

impl Say {
    /// Speaks `text` (escaped on output; SSML children are not modelled).
    pub fn new(text: impl Into<String>) -> Self {
        Say(Element::with_text("Say", text))
    }
    /// `voice`, e.g. `Polly.Joanna`, `alice`.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.0.set("voice", voice);
        self
    }
    /// `language`, e.g. `en-US`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.0.set("language", language);
        self
    }
    /// `loop`: repetitions; 0 repeats until the call ends.
    pub fn loop_count(mut self, times: u32) -> Self {
        self.0.set("loop", times.to_string());
        self
    }
}

/// `<Play>`: an audio URL, or DTMF digits with [`Play::digits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play(Element);

impl Play {
    /// Plays the audio at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Play(Element::with_text("Play", url))
    }
    /// Plays DTMF tones (`w` waits 0.5 s) instead of a URL.
    pub fn digits(digits: impl Into<String>) -> Self {
        let mut el = Element::new("Play");
        el.set("digits", digits);
        Play(el)
    }
    /// `loop`: repetitions; 0 repeats until the call ends.
    pub fn loop_count(mut self, times: u32) -> Self {
        self.0.set("loop", times.to_string());
        self
    }
}

/// `<Pause>`: silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause(Element);

impl Pause {
    /// A pause of Twilio's default length (1 s).
    pub fn new() -> Self {
        Pause(Element::new("Pause"))
    }
    /// A pause of `seconds`.
    pub fn seconds(seconds: u32) -> Self {
        Pause::new().length(seconds)
    }
    /// `length` in seconds.
    pub fn length(mut self, seconds: u32) -> Self {
        self.0.set("length", seconds.to_string());
        self
    }
}

impl Default for Pause {
    fn default() -> Self {
        Pause::new()
    }
}

/// `<Gather>`: collects DTMF and/or speech, optionally while nested prompts play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather(Element);

impl Gather {
    /// An empty gather with Twilio's defaults (DTMF, 5 s timeout, action = current document).
    pub fn new() -> Self {
        Gather(Element::new("Gather"))
    }
    /// `input`, kinds joined by spaces in the order given (`[Speech, Dtmf]` → `"speech dtmf"`).
    pub fn input(mut self, kinds: impl IntoIterator<Item = GatherInput>) -> Self {
        self.0.set("input", join_space(kinds));
        self
    }
    /// `action`: where Twilio posts the result.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// `timeout`: seconds of silence before giving up (DTMF) / default for speech.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.0.set("timeout", seconds.to_string());
        self
    }
    /// `speechTimeout`.
    pub fn speech_timeout(mut self, timeout: SpeechTimeout) -> Self {
        self.0.set("speechTimeout", timeout.to_string());
        self
    }
    /// `numDigits`: stop after this many digits.
    pub fn num_digits(mut self, digits: u32) -> Self {
        self.0.set("numDigits", digits.to_string());
        self
    }
    /// `finishOnKey` (`""` disables it).
    pub fn finish_on_key(mut self, key: impl Into<String>) -> Self {
        self.0.set("finishOnKey", key);
        self
    }
    /// `partialResultCallback`: receives interim speech results.
    pub fn partial_result_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("partialResultCallback", url);
        self
    }
    /// `partialResultCallbackMethod`.
    pub fn partial_result_callback_method(mut self, method: Method) -> Self {
        self.0.set("partialResultCallbackMethod", method.as_str());
        self
    }
    /// `actionOnEmptyResult`: request `action` even with no input.
    pub fn action_on_empty_result(mut self, on: bool) -> Self {
        self.0.set("actionOnEmptyResult", bool_str(on));
        self
    }
    /// `hints`: comma-separated phrases to bias speech recognition.
    pub fn hints(mut self, hints: impl Into<String>) -> Self {
        self.0.set("hints", hints);
        self
    }
    /// `language` for speech recognition.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.0.set("language", language);
        self
    }
    /// `bargeIn`: whether input stops the nested prompts.
    pub fn barge_in(mut self, on: bool) -> Self {
        self.0.set("bargeIn", bool_str(on));
        self
    }
    /// `profanityFilter`.
    pub fn profanity_filter(mut self, on: bool) -> Self {
        self.0.set("profanityFilter", bool_str(on));
        self
    }
    /// `speechModel`, e.g. `phone_call`.
    pub fn speech_model(mut self, model: impl Into<String>) -> Self {
        self.0.set("speechModel", model);
        self
    }
    /// Nested `<Say>` prompt.
    pub fn say(mut self, say: Say) -> Self {
        self.0.children.push(say.into_element());
        self
    }
    /// Nested `<Play>` prompt.
    pub fn play(mut self, play: Play) -> Self {
        self.0.children.push(play.into_element());
        self
    }
    /// Nested `<Pause>`.
    pub fn pause(mut self, pause: Pause) -> Self {
        self.0.children.push(pause.into_element());
        self
    }
}

impl Default for Gather {
    fn default() -> Self {
        Gather::new()
    }
}

/// `<Parameter name value>` inside `<Stream>` or `<Client>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter(Element);

impl Parameter {
    /// A custom parameter; for `<Stream>` it arrives in `start.customParameters`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut el = Element::new("Parameter");
        el.set("name", name);
        el.set("value", value);
        Parameter(el)
    }
}

/// `<Number>` noun of `<Dial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(Element);

impl Number {
    /// Dials `number` (E.164).
    pub fn new(number: impl Into<String>) -> Self {
        Number(Element::with_text("Number", number))
    }
    /// `url`: TwiML run on the callee before bridging (whisper/screening).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.0.set("url", url);
        self
    }
    /// `method` for `url`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// `sendDigits` after the callee answers.
    pub fn send_digits(mut self, digits: impl Into<String>) -> Self {
        self.0.set("sendDigits", digits);
        self
    }
    /// `statusCallback` for the child leg.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("statusCallback", url);
        self
    }
    /// `statusCallbackEvent`, events joined by spaces in the order given.
    pub fn status_callback_event(mut self, events: impl IntoIterator<Item = CallEvent>) -> Self {
        self.0.set("statusCallbackEvent", join_space(events));
        self
    }
    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: Method) -> Self {
        self.0.set("statusCallbackMethod", method.as_str());
        self
    }
}

/// `<Sip>` noun of `<Dial>`: a SIP URI (`sip:sales@pbx.example.com`), for transfer targets that
/// are a PBX rather than a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip(Element);

impl Sip {
    /// Dials `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Sip(Element::with_text("Sip", uri))
    }
}

/// `<Client>` noun of `<Dial>`: a Voice SDK identity.
///
/// Without parameters the identity is the element text (`<Client>alice</Client>`, as the SDK
/// emits); with parameters Twilio requires it in an `<Identity>` child, so it is rendered that way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Attributes only; identity and parameters are placed at render time.
    element: Element,
    /// The Voice SDK identity to ring.
    identity: String,
    /// Custom parameters delivered to the SDK with the incoming call.
    parameters: Vec<Parameter>,
}

impl Client {
    /// Rings the Voice SDK client registered as `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        Client {
            element: Element::new("Client"),
            identity: identity.into(),
            parameters: Vec::new(),
        }
    }
    /// Adds a `<Parameter>` (switches the identity to an `<Identity>` child).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push(Parameter::new(name, value));
        self
    }
    /// `url`: TwiML run on the client leg before bridging.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.element.set("url", url);
        self
    }
    /// `method` for `url`.
    pub fn method(mut self, method: Method) -> Self {
        self.element.set("method", method.as_str());
        self
    }
    /// `statusCallback` for the client leg.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.element.set("statusCallback", url);
        self
    }
    /// `statusCallbackEvent`, events joined by spaces.
    pub fn status_callback_event(mut self, events: impl IntoIterator<Item = CallEvent>) -> Self {
        self.element.set("statusCallbackEvent", join_space(events));
        self
    }
    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: Method) -> Self {
        self.element.set("statusCallbackMethod", method.as_str());
        self
    }

    fn into_element(self) -> Element {
        let mut el = self.element;
        if self.parameters.is_empty() {
            el.text = self.identity;
        } else {
            el.children
                .push(Element::with_text("Identity", self.identity));
            el.children
                .extend(self.parameters.into_iter().map(Parameter::into_element));
        }
        el
    }
}

/// `<Dial>`: connects the caller to another party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial(Element);

impl Dial {
    /// A dial with nouns to be added ([`Dial::number`], [`Dial::client`]).
    pub fn new() -> Self {
        Dial(Element::new("Dial"))
    }
    /// A dial of one plain-text number: `<Dial>+14155551212</Dial>`.
    pub fn to_number(number: impl Into<String>) -> Self {
        Dial(Element::with_text("Dial", number))
    }
    /// `action`: requested when the dialed call ends (with `DialCallStatus`).
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// `timeout`: seconds to ring before `no-answer`.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.0.set("timeout", seconds.to_string());
        self
    }
    /// `callerId` shown to the callee.
    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.0.set("callerId", caller_id);
        self
    }
    /// `record`.
    pub fn record(mut self, record: DialRecord) -> Self {
        self.0.set("record", record.as_str());
        self
    }
    /// `recordingStatusCallback`.
    pub fn recording_status_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("recordingStatusCallback", url);
        self
    }
    /// `recordingStatusCallbackEvent`, events joined by spaces.
    pub fn recording_status_callback_event(
        mut self,
        events: impl IntoIterator<Item = RecordingEvent>,
    ) -> Self {
        self.0
            .set("recordingStatusCallbackEvent", join_space(events));
        self
    }
    /// `answerOnBridge`: keep the caller hearing ringback until the callee answers.
    pub fn answer_on_bridge(mut self, on: bool) -> Self {
        self.0.set("answerOnBridge", bool_str(on));
        self
    }
    /// `timeLimit`: maximum call length in seconds.
    pub fn time_limit(mut self, seconds: u32) -> Self {
        self.0.set("timeLimit", seconds.to_string());
        self
    }
    /// `hangupOnStar`: let the caller leave the dialed call with `*`.
    pub fn hangup_on_star(mut self, on: bool) -> Self {
        self.0.set("hangupOnStar", bool_str(on));
        self
    }
    /// `ringTone`, e.g. `us`.
    pub fn ring_tone(mut self, tone: impl Into<String>) -> Self {
        self.0.set("ringTone", tone);
        self
    }
    /// `trim` for the recording.
    pub fn trim(mut self, trim: Trim) -> Self {
        self.0.set("trim", trim.as_str());
        self
    }
    /// Adds a `<Number>` noun (up to 10 ring in parallel).
    pub fn number(mut self, number: Number) -> Self {
        self.0.children.push(number.into_element());
        self
    }
    /// Adds a `<Client>` noun.
    pub fn client(mut self, client: Client) -> Self {
        self.0.children.push(client.into_element());
        self
    }
    /// Adds a `<Sip>` noun.
    pub fn sip(mut self, sip: Sip) -> Self {
        self.0.children.push(sip.into_element());
        self
    }
}

impl Default for Dial {
    fn default() -> Self {
        Dial::new()
    }
}

/// `<Stream>` inside `<Connect>` (bidirectional) or `<Start>` (fork) — or `<Stop>` by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream(Element);

impl Stream {
    /// Streams to `url` (`wss://`, no query string: use [`Stream::parameter`]).
    pub fn new(url: impl Into<String>) -> Self {
        let mut el = Element::new("Stream");
        el.set("url", url);
        Stream(el)
    }
    /// A stream identified only by name, for `<Stop><Stream name="…"/></Stop>`.
    pub fn named(name: impl Into<String>) -> Self {
        let mut el = Element::new("Stream");
        el.set("name", name);
        Stream(el)
    }
    /// `name`: unique per call; lets a fork be stopped later.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.0.set("name", name);
        self
    }
    /// `track`.
    pub fn track(mut self, track: Track) -> Self {
        self.0.set("track", track.as_str());
        self
    }
    /// `statusCallback`: stream-started/stopped/error notifications.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("statusCallback", url);
        self
    }
    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: Method) -> Self {
        self.0.set("statusCallbackMethod", method.as_str());
        self
    }
    /// Adds a `<Parameter>`, delivered in the stream's `start.customParameters`.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0
            .children
            .push(Parameter::new(name, value).into_element());
        self
    }
}

/// `<Connect>`: hands the call to a bidirectional `<Stream>` until the server closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect(Element);

impl Connect {
    /// An empty `<Connect>`; add a [`Stream`].
    pub fn new() -> Self {
        Connect(Element::new("Connect"))
    }
    /// `action`: requested when the connected stream ends.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// The `<Stream>` to connect.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.0.children.push(stream.into_element());
        self
    }
}

impl Default for Connect {
    fn default() -> Self {
        Connect::new()
    }
}

/// `<Start>`: starts a unidirectional fork; TwiML continues immediately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start(Element);

impl Start {
    /// An empty `<Start>`; add a [`Stream`].
    pub fn new() -> Self {
        Start(Element::new("Start"))
    }
    /// `action`.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// The `<Stream>` to fork.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.0.children.push(stream.into_element());
        self
    }
}

impl Default for Start {
    fn default() -> Self {
        Start::new()
    }
}

/// `<Stop>`: stops a named fork (`Stop::new().stream(Stream::named("fork1"))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop(Element);

impl Stop {
    /// An empty `<Stop>`; add a [`Stream::named`].
    pub fn new() -> Self {
        Stop(Element::new("Stop"))
    }
    /// The stream to stop.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.0.children.push(stream.into_element());
        self
    }
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

/// `<Record>`: records the caller (voicemail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record(Element);

impl Record {
    /// A recording with Twilio's defaults.
    pub fn new() -> Self {
        Record(Element::new("Record"))
    }
    /// `action`: requested with `RecordingUrl` when recording ends.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// `maxLength` in seconds.
    pub fn max_length(mut self, seconds: u32) -> Self {
        self.0.set("maxLength", seconds.to_string());
        self
    }
    /// `timeout`: seconds of silence that end the recording.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.0.set("timeout", seconds.to_string());
        self
    }
    /// `transcribe`.
    pub fn transcribe(mut self, on: bool) -> Self {
        self.0.set("transcribe", bool_str(on));
        self
    }
    /// `transcribeCallback`.
    pub fn transcribe_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("transcribeCallback", url);
        self
    }
    /// `playBeep`.
    pub fn play_beep(mut self, on: bool) -> Self {
        self.0.set("playBeep", bool_str(on));
        self
    }
    /// `finishOnKey`: keys that end the recording.
    pub fn finish_on_key(mut self, keys: impl Into<String>) -> Self {
        self.0.set("finishOnKey", keys);
        self
    }
    /// `trim`.
    pub fn trim(mut self, trim: Trim) -> Self {
        self.0.set("trim", trim.as_str());
        self
    }
    /// `recordingStatusCallback`.
    pub fn recording_status_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("recordingStatusCallback", url);
        self
    }
    /// `recordingStatusCallbackMethod`.
    pub fn recording_status_callback_method(mut self, method: Method) -> Self {
        self.0.set("recordingStatusCallbackMethod", method.as_str());
        self
    }
    /// `recordingStatusCallbackEvent`, events joined by spaces.
    pub fn recording_status_callback_event(
        mut self,
        events: impl IntoIterator<Item = RecordingEvent>,
    ) -> Self {
        self.0
            .set("recordingStatusCallbackEvent", join_space(events));
        self
    }
}

impl Default for Record {
    fn default() -> Self {
        Record::new()
    }
}

/// `<Redirect>`: continues with the TwiML at another URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect(Element);

impl Redirect {
    /// Redirects to `url` (relative URLs resolve against the current document).
    pub fn new(url: impl Into<String>) -> Self {
        Redirect(Element::with_text("Redirect", url))
    }
    /// `method`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
}

/// `<Reject>`: refuses the call without answering (not billed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject(Element);

impl Reject {
    /// Rejects with Twilio's default signal (`rejected`).
    pub fn new() -> Self {
        Reject(Element::new("Reject"))
    }
    /// `reason`.
    pub fn reason(mut self, reason: RejectReason) -> Self {
        self.0.set("reason", reason.as_str());
        self
    }
}

impl Default for Reject {
    fn default() -> Self {
        Reject::new()
    }
}

/// `<Message>` of a messaging response: an SMS/MMS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(Element);

impl Message {
    /// A message whose body is the element text: `<Message>text</Message>`.
    pub fn new(body: impl Into<String>) -> Self {
        Message(Element::with_text("Message", body))
    }
    /// A message built from [`Message::body`] and [`Message::media`] children.
    pub fn empty() -> Self {
        Message(Element::new("Message"))
    }
    /// Adds a `<Body>` child.
    pub fn body(mut self, text: impl Into<String>) -> Self {
        self.0.children.push(Element::with_text("Body", text));
        self
    }
    /// Adds a `<Media>` child (MMS attachment URL).
    pub fn media(mut self, url: impl Into<String>) -> Self {
        self.0.children.push(Element::with_text("Media", url));
        self
    }
    /// `to` (defaults to the sender of the incoming message).
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.0.set("to", to);
        self
    }
    /// `from` (defaults to the number that received the message).
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.0.set("from", from);
        self
    }
    /// `action`: status of the sent message.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.0.set("action", url);
        self
    }
    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.0.set("method", method.as_str());
        self
    }
    /// `statusCallback`.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.0.set("statusCallback", url);
        self
    }
}

element_newtype!(
    Say, Play, Pause, Gather, Parameter, Number, Sip, Dial, Stream, Connect, Start, Stop, Record,
    Redirect, Reject, Message,
);

/// A voice `<Response>`: verbs run in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceResponse {
    /// Verbs in execution order.
    verbs: Vec<Element>,
}

impl VoiceResponse {
    /// An empty response (`<Response />` ends the call).
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends `<Say>`.
    pub fn say(self, say: Say) -> Self {
        self.push(say.into_element())
    }
    /// Appends `<Play>`.
    pub fn play(self, play: Play) -> Self {
        self.push(play.into_element())
    }
    /// Appends `<Pause>`.
    pub fn pause(self, pause: Pause) -> Self {
        self.push(pause.into_element())
    }
    /// Appends `<Gather>`.
    pub fn gather(self, gather: Gather) -> Self {
        self.push(gather.into_element())
    }
    /// Appends `<Dial>`.
    pub fn dial(self, dial: Dial) -> Self {
        self.push(dial.into_element())
    }
    /// Appends `<Connect>`.
    pub fn connect(self, connect: Connect) -> Self {
        self.push(connect.into_element())
    }
    /// Appends `<Start>`.
    pub fn start(self, start: Start) -> Self {
        self.push(start.into_element())
    }
    /// Appends `<Stop>`.
    pub fn stop(self, stop: Stop) -> Self {
        self.push(stop.into_element())
    }
    /// Appends `<Record>`.
    pub fn record(self, record: Record) -> Self {
        self.push(record.into_element())
    }
    /// Appends `<Hangup />`.
    pub fn hangup(self) -> Self {
        self.push(Element::new("Hangup"))
    }
    /// Appends `<Redirect>`.
    pub fn redirect(self, redirect: Redirect) -> Self {
        self.push(redirect.into_element())
    }
    /// Appends `<Reject>` (must be the first verb to avoid answering the call).
    pub fn reject(self, reject: Reject) -> Self {
        self.push(reject.into_element())
    }

    fn push(mut self, el: Element) -> Self {
        self.verbs.push(el);
        self
    }

    /// The complete document, declaration first.
    pub fn to_xml(&self) -> String {
        render_document(&self.verbs)
    }
}

/// A messaging `<Response>` (reply to an incoming SMS; empty = no reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagingResponse {
    /// `<Message>` and `<Redirect>` verbs in order.
    verbs: Vec<Element>,
}

impl MessagingResponse {
    /// An empty response: no reply is sent.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends `<Message>`.
    pub fn message(mut self, message: Message) -> Self {
        self.verbs.push(message.into_element());
        self
    }
    /// Appends `<Redirect>`.
    pub fn redirect(mut self, redirect: Redirect) -> Self {
        self.verbs.push(redirect.into_element());
        self
    }
    /// The complete document, declaration first.
    pub fn to_xml(&self) -> String {
        render_document(&self.verbs)
    }
}

impl fmt::Display for VoiceResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

impl fmt::Display for MessagingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

fn render_document(verbs: &[Element]) -> String {
    let mut root = Element::new("Response");
    root.children = verbs.to_vec();
    let mut out = String::from(XML_DECLARATION);
    root.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escaping_keeps_quotes_literal() {
        assert_eq!(
            escape_text(r#"a & b <c> "d" 'e'"#),
            r#"a &amp; b &lt;c&gt; "d" 'e'"#
        );
    }

    #[test]
    fn attribute_escaping_matches_python_sdk() {
        assert_eq!(
            escape_attribute("a\"b<c>d&e'f\nnl\ttab\rcr"),
            "a&quot;b&lt;c&gt;d&amp;e'f&#10;nl&#09;tab&#13;cr"
        );
    }

    #[test]
    fn drops_characters_not_allowed_in_xml() {
        assert_eq!(
            escape_text("a\u{0}b\u{1}c\u{B}d\u{1F}e\u{FFFE}f\u{FFFF}g"),
            "abcdefg"
        );
        assert_eq!(escape_attribute("x\u{7}y"), "xy");
        assert_eq!(escape_text("tab\there\nnl é 😀"), "tab\there\nnl é 😀");
    }

    #[test]
    fn repeated_builder_call_keeps_last_attribute_value() {
        let xml = VoiceResponse::new()
            .pause(Pause::seconds(1).length(2))
            .to_xml();
        assert!(xml.ends_with(r#"<Response><Pause length="2" /></Response>"#));
    }

    #[test]
    fn empty_say_text_renders_self_closing_like_sdk() {
        let xml = VoiceResponse::new().say(Say::new("")).to_xml();
        assert!(xml.ends_with("<Response><Say /></Response>"));
    }

    #[test]
    fn client_with_parameters_uses_identity_child() {
        let xml = VoiceResponse::new()
            .dial(Dial::new().client(Client::new("alice").parameter("k", "v")))
            .to_xml();
        assert!(xml.ends_with(
            r#"<Dial><Client><Identity>alice</Identity><Parameter name="k" value="v" /></Client></Dial></Response>"#
        ));
    }
}
