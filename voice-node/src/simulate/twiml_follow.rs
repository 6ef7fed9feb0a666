//! Following TwiML like Twilio's call engine: fetch the voice webhook, run the verbs in order,
//! and fetch the next document when a verb says so (`<Dial action>`, `<Redirect>`, a failed
//! `<Connect><Stream>` with an `action`, `<Record action>`).
//!
//! The media leg is behind [`MediaLeg`] so the follower can be tested with a stand-in and the
//! load test can reuse it for one document.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;
use shared::form::Form;

use super::ids;
use super::twilio_http::{CallIdentity, HttpMethod, TwilioHttp, resolve_url};

/// More documents than this in one call is a redirect loop (Twilio stops much later, but a
/// simulated call that fetches 20 documents has gone wrong).
pub const MAX_DOCUMENTS: usize = 20;

/// Twilio's `<Dial timeout>` when the attribute is missing or out of range (it accepts 5–600 s).
pub const DEFAULT_DIAL_TIMEOUT_S: u32 = 30;

/// The path of the voice webhook on the edge.
pub const INBOUND_PATH: &str = "/telephony/inbound";

/// What the owner's phone does when the TwiML dials it (`--dial-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialStatus {
    /// Answered and talked for a while.
    Completed,
    /// Rang out.
    NoAnswer,
    /// Busy signal.
    Busy,
    /// Could not be routed.
    Failed,
}

impl DialStatus {
    /// Twilio's `DialCallStatus` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Completed => "completed",
            DialStatus::NoAnswer => "no-answer",
            DialStatus::Busy => "busy",
            DialStatus::Failed => "failed",
        }
    }
}

/// `<Stream>` inside `<Connect>` (or `<Start>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamSpec {
    /// The `wss://` (locally `ws://`) URL; the handshake is signed over it.
    pub url: String,
    /// `name`, if given.
    pub name: Option<String>,
    /// `statusCallback`, resolved against the document URL.
    pub status_callback: Option<String>,
    /// `statusCallbackMethod`.
    pub status_callback_method: Option<String>,
    /// `<Parameter name value>` children → `start.customParameters`.
    pub parameters: BTreeMap<String, String>,
}

/// One TwiML verb, with the attributes the simulator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Say>` text.
    Say(String),
    /// `<Play>` URL.
    Play(String),
    /// `<Pause length>` seconds.
    Pause(u32),
    /// `<Hangup/>`.
    Hangup,
    /// `<Reject reason>`.
    Reject(String),
    /// `<Redirect method>URL</Redirect>`.
    Redirect {
        /// Where to fetch the next document.
        url: String,
        /// How.
        method: HttpMethod,
    },
    /// `<Dial action method timeout>` with its number (or other noun) as text.
    Dial {
        /// Where the outcome is posted; `None` continues with the next verb.
        action: Option<String>,
        /// How.
        method: HttpMethod,
        /// The dialed number, client or SIP address.
        target: String,
        /// Seconds the dialed phone rings before Twilio gives up with `no-answer`.
        timeout: u32,
    },
    /// `<Connect action><Stream …/></Connect>`.
    Connect {
        /// Fetched when the stream ends with the caller still on the line.
        action: Option<String>,
        /// How.
        method: HttpMethod,
        /// The stream (`None`: Connect to something the simulator does not speak).
        stream: Option<StreamSpec>,
    },
    /// `<Record action recordingStatusCallback>`.
    Record {
        /// Posted after the recording.
        action: Option<String>,
        /// How.
        method: HttpMethod,
        /// Told when the recording file is ready.
        recording_status_callback: Option<String>,
    },
    /// `<Gather>`: the simulated caller presses nothing, so Twilio continues after it.
    Gather,
    /// `<Start><Stream>`: a one-way fork; noted, not opened.
    Start,
    /// A verb the simulator does not know.
    Other(String),
}

impl Verb {
    /// A short description for the report.
    pub fn describe(&self) -> String {
        match self {
            Verb::Say(text) => format!("Say: {text}"),
            Verb::Play(url) => format!("Play: {url}"),
            Verb::Pause(s) => format!("Pause {s}s"),
            Verb::Hangup => "Hangup".into(),
            Verb::Reject(reason) => format!("Reject ({reason})"),
            Verb::Redirect { url, .. } => format!("Redirect → {url}"),
            Verb::Dial { target, action, .. } => match action {
                Some(action) => format!("Dial {target} (action {action})"),
                None => format!("Dial {target}"),
            },
            Verb::Connect { stream, .. } => match stream {
                Some(s) => format!("Connect/Stream {}", s.url),
                None => "Connect (no Stream)".into(),
            },
            Verb::Record { .. } => "Record".into(),
            Verb::Gather => "Gather".into(),
            Verb::Start => "Start".into(),
            Verb::Other(name) => format!("<{name}> (not simulated)"),
        }
    }
}

/// Parses a TwiML document as Twilio would, resolving URLs against `document_url`.
///
/// Refuses what Twilio refuses: leading bytes before the XML declaration (error 12100), a root
/// other than `<Response>` (12102), malformed XML.
pub fn parse_twiml(document_url: &str, xml: &str) -> Result<Vec<Verb>, String> {
    if !xml.starts_with("<?xml") {
        return Err(
            "TwiML does not start with the XML declaration (Twilio error 12100)".to_owned(),
        );
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("TwiML is not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Response" {
        return Err(format!(
            "TwiML root is <{}>, not <Response> (Twilio error 12102)",
            root.tag_name().name()
        ));
    }
    let url_attr = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.attribute(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| resolve_url(document_url, v))
    };
    let method = |node: roxmltree::Node<'_, '_>| HttpMethod::from_attr(node.attribute("method"));
    let mut verbs = Vec::new();
    for node in root.children().filter(|n| n.is_element()) {
        let text = || node.text().unwrap_or("").trim().to_owned();
        let verb = match node.tag_name().name() {
            "Say" => Verb::Say(
                node.descendants()
                    .filter(|n| n.is_text())
                    .filter_map(|n| n.text())
                    .collect::<String>()
                    .trim()
                    .to_owned(),
            ),
            "Play" => Verb::Play(text()),
            "Pause" => Verb::Pause(
                node.attribute("length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1),
            ),
            "Hangup" => Verb::Hangup,
            "Reject" => Verb::Reject(node.attribute("reason").unwrap_or("rejected").to_owned()),
            "Redirect" => Verb::Redirect {
                url: resolve_url(document_url, &text()),
                method: method(node),
            },
            "Dial" => {
                let nouns: Vec<String> = node
                    .children()
                    .filter(|n| n.is_element())
                    .map(|n| n.text().unwrap_or("").trim().to_owned())
                    .collect();
                let target = if nouns.is_empty() {
                    text()
                } else {
                    nouns.join(",")
                };
                Verb::Dial {
                    action: url_attr(node, "action"),
                    method: method(node),
                    target,
                    timeout: node
                        .attribute("timeout")
                        .and_then(|t| t.trim().parse().ok())
                        .filter(|t| (5..=600).contains(t))
                        .unwrap_or(DEFAULT_DIAL_TIMEOUT_S),
                }
            }
            "Connect" => Verb::Connect {
                action: url_attr(node, "action"),
                method: method(node),
                stream: node
                    .children()
                    .find(|n| n.has_tag_name("Stream"))
                    .map(|s| stream_spec(document_url, s)),
            },
            "Record" => Verb::Record {
                action: url_attr(node, "action"),
                method: method(node),
                recording_status_callback: url_attr(node, "recordingStatusCallback"),
            },
            "Gather" => Verb::Gather,
            "Start" => Verb::Start,
            other => Verb::Other(other.to_owned()),
        };
        verbs.push(verb);
    }
    Ok(verbs)
}

fn stream_spec(document_url: &str, node: roxmltree::Node<'_, '_>) -> StreamSpec {
    StreamSpec {
        url: resolve_url(document_url, node.attribute("url").unwrap_or("")),
        name: node.attribute("name").map(str::to_owned),
        status_callback: node
            .attribute("statusCallback")
            .map(|u| resolve_url(document_url, u)),
        status_callback_method: node.attribute("statusCallbackMethod").map(str::to_owned),
        parameters: node
            .children()
            .filter(|n| n.has_tag_name("Parameter"))
            .filter_map(|p| {
                Some((
                    p.attribute("name")?.to_owned(),
                    p.attribute("value")?.to_owned(),
                ))
            })
            .collect(),
    }
}

/// How a media stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The simulated caller finished the script and hung up (`stop`, then close).
    CallerHungUp,
    /// The node closed the socket cleanly. Nodes hang a finished call up over Twilio's REST API
    /// before closing, so the simulator treats this as the end of the call.
    NodeClosed,
    /// Handshake refused, socket error or protocol breach. Twilio then runs `<Connect action>`.
    Failed(String),
    /// A REST update of the live call stopped the stream (`super::call_control`): the call goes
    /// on with its TwiML, or ends on `Status=completed`.
    Redirected(super::call_control::CallRedirect),
}

/// The media side of a call, run when the TwiML connects a stream.
pub trait MediaLeg {
    /// Opens `stream` for `call`, plays the caller's side, and returns how it ended.
    fn run_stream(
        &mut self,
        call: &CallIdentity,
        stream: &StreamSpec,
    ) -> impl Future<Output = StreamEnd> + Send;
}

/// What the caller does at verbs that wait for them.
#[derive(Debug, Clone, Copy)]
pub struct CallerBehaviour {
    /// How the owner's phone answers a `<Dial>`.
    pub dial_status: DialStatus,
    /// Seconds of voicemail left at a `<Record>`.
    pub voicemail_secs: u32,
    /// An unanswered `<Dial>` rings for its `timeout` before `no-answer` is posted, as on Twilio
    /// (in tokio time, so a test with a paused clock sees the 20 s pass); `Some(limit)` rings at
    /// most this long, for runs that test something else and should not wait.
    pub ring_limit: Option<std::time::Duration>,
}

impl CallerBehaviour {
    /// How long a `<Dial>` with `timeout` seconds rings before its outcome is known: the whole
    /// timeout when nobody answers (capped by `ring_limit`), no wait otherwise (the simulated
    /// owner answers at once, and busy or failed are known as soon as the dial is placed).
    pub fn ring_time(&self, timeout: u32) -> std::time::Duration {
        if self.dial_status != DialStatus::NoAnswer {
            return std::time::Duration::ZERO;
        }
        let full = std::time::Duration::from_secs(u64::from(timeout));
        self.ring_limit.map_or(full, |limit| full.min(limit))
    }
}

/// How the call ended, from Twilio's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// The simulated caller hung up after the script.
    CallerHungUp,
    /// The node ended the call (closed the stream).
    NodeHungUp,
    /// `<Hangup/>`.
    TwimlHangup,
    /// The last document ran out of verbs.
    EndOfTwiml,
    /// `<Reject/>`: never answered.
    Rejected,
    /// The caller hung up after leaving a voicemail.
    AfterVoicemail,
    /// A webhook failed or returned unusable TwiML; Twilio would play its application-error
    /// message and hang up.
    ApplicationError,
}

impl CallEnd {
    /// The final `CallStatus` Twilio reports for this ending.
    pub fn final_call_status(self) -> &'static str {
        match self {
            // [UNVERIFIED] A rejected inbound call reports busy.
            CallEnd::Rejected => "busy",
            _ => "completed",
        }
    }
}

/// One TwiML document the call ran.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentTrace {
    /// The public URL fetched.
    pub url: String,
    /// Milliseconds the edge took to answer.
    pub response_ms: f64,
    /// The verbs, described.
    pub verbs: Vec<String>,
}

/// What following the call's TwiML produced.
#[derive(Debug, Clone)]
pub struct FollowResult {
    /// The documents, in order.
    pub documents: Vec<DocumentTrace>,
    /// How the call ended.
    pub ended: CallEnd,
    /// Every `<Say>` the caller heard from TwiML.
    pub said: Vec<String>,
    /// `(target, DialCallStatus)` for each `<Dial>`.
    pub dials: Vec<(String, &'static str)>,
    /// The `mode` `<Parameter>` of the last stream, if any.
    pub stream_mode: Option<String>,
    /// The last stream opened, if any.
    pub last_stream: Option<StreamSpec>,
    /// Whether a voicemail was left.
    pub voicemail: bool,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// Places the call: posts the voice webhook and follows the TwiML until the call ends.
pub async fn follow_call<M: MediaLeg>(
    http: &TwilioHttp,
    call: &CallIdentity,
    caller: CallerBehaviour,
    media: &mut M,
) -> FollowResult {
    let mut result = FollowResult {
        documents: Vec::new(),
        ended: CallEnd::EndOfTwiml,
        said: Vec::new(),
        dials: Vec::new(),
        stream_mode: None,
        last_stream: None,
        voicemail: false,
        errors: Vec::new(),
    };
    let mut next = Some((
        http.public_url(INBOUND_PATH),
        HttpMethod::Post,
        call.voice_params("ringing"),
    ));
    // TwiML a REST update sent inline: run instead of fetching `next`'s URL (then a label).
    let mut inline: Option<String> = None;
    while let Some((url, method, params)) = next.take() {
        if result.documents.len() >= MAX_DOCUMENTS {
            result.errors.push(format!(
                "more than {MAX_DOCUMENTS} TwiML documents: redirect loop?"
            ));
            result.ended = CallEnd::ApplicationError;
            break;
        }
        let fetched = match inline.take() {
            // Relative URLs in it resolve against the webhook base, like the first document's.
            Some(xml) => parse_twiml(&http.public_url(INBOUND_PATH), &xml).map(|v| (v, 0.0)),
            None => fetch_twiml(http, &url, method, &params).await,
        };
        let verbs = match fetched {
            Ok((verbs, response_ms)) => {
                result.documents.push(DocumentTrace {
                    url: url.clone(),
                    response_ms,
                    verbs: verbs.iter().map(Verb::describe).collect(),
                });
                verbs
            }
            Err(e) => {
                result.errors.push(e);
                result.ended = CallEnd::ApplicationError;
                break;
            }
        };
        result.ended = CallEnd::EndOfTwiml;
        for verb in verbs {
            match verb {
                Verb::Say(text) => result.said.push(text),
                Verb::Play(_) | Verb::Pause(_) | Verb::Gather | Verb::Start => {}
                Verb::Other(name) => result.errors.push(format!(
                    "TwiML verb <{name}> is not one callgate should send"
                )),
                Verb::Hangup => {
                    result.ended = CallEnd::TwimlHangup;
                    break;
                }
                Verb::Reject(_) => {
                    result.ended = CallEnd::Rejected;
                    break;
                }
                Verb::Redirect { url, method } => {
                    next = Some((url, method, call.voice_params("in-progress")));
                    break;
                }
                Verb::Dial {
                    action,
                    method,
                    target,
                    timeout,
                } => {
                    let ring = caller.ring_time(timeout);
                    if !ring.is_zero() {
                        tracing::debug!(%target, ?ring, "the dialed phone rings");
                        tokio::time::sleep(ring).await;
                    }
                    let status = caller.dial_status.as_str();
                    result.dials.push((target, status));
                    if let Some(action) = action {
                        next = Some((action, method, dial_action_params(call, caller.dial_status)));
                        break;
                    }
                }
                Verb::Connect {
                    action,
                    method,
                    stream,
                } => {
                    let Some(stream) = stream else {
                        result
                            .errors
                            .push("<Connect> without <Stream> cannot be simulated".into());
                        continue;
                    };
                    result.stream_mode = stream.parameters.get("mode").cloned();
                    result.last_stream = Some(stream.clone());
                    match media.run_stream(call, &stream).await {
                        StreamEnd::CallerHungUp => {
                            result.ended = CallEnd::CallerHungUp;
                            return result;
                        }
                        StreamEnd::NodeClosed => {
                            result.ended = CallEnd::NodeHungUp;
                            return result;
                        }
                        StreamEnd::Failed(reason) => {
                            result.errors.push(format!("media stream failed: {reason}"));
                            if let Some(action) = action {
                                next = Some((action, method, call.voice_params("in-progress")));
                                break;
                            }
                        }
                        StreamEnd::Redirected(redirect) => {
                            use super::call_control::CallRedirect;
                            match redirect {
                                CallRedirect::Completed => {
                                    result.ended = CallEnd::NodeHungUp;
                                    return result;
                                }
                                CallRedirect::Url { url, method } => {
                                    next = Some((url, method, call.voice_params("in-progress")));
                                }
                                CallRedirect::Twiml(xml) => {
                                    inline = Some(xml);
                                    next = Some((
                                        "REST update (Twiml)".to_owned(),
                                        HttpMethod::Post,
                                        Form::new(),
                                    ));
                                }
                            }
                            break;
                        }
                    }
                }
                Verb::Record {
                    action,
                    method,
                    recording_status_callback,
                } => {
                    result.voicemail = true;
                    let recording_sid = ids::sid("RE");
                    if let Some(callback) = recording_status_callback {
                        let params =
                            recording_status_params(call, &recording_sid, caller.voicemail_secs);
                        match http.send(HttpMethod::Post, &callback, &params).await {
                            Ok(answer) if answer.is_success() => {}
                            Ok(answer) => result.errors.push(format!(
                                "recording status callback {callback} answered {}",
                                answer.status
                            )),
                            Err(e) => result.errors.push(format!("{e:#}")),
                        }
                    }
                    result.ended = CallEnd::AfterVoicemail;
                    if let Some(action) = action {
                        // The caller hangs up after the message: Twilio requests the action
                        // with CallStatus=completed and ignores the TwiML it returns.
                        let params =
                            record_action_params(call, &recording_sid, caller.voicemail_secs);
                        if let Err(e) = fetch_twiml(http, &action, method, &params).await {
                            result.errors.push(e);
                        }
                    }
                    return result;
                }
            }
        }
    }
    result
}

/// Fetches and parses one document; the error says what Twilio would complain about.
async fn fetch_twiml(
    http: &TwilioHttp,
    url: &str,
    method: HttpMethod,
    params: &Form,
) -> Result<(Vec<Verb>, f64), String> {
    let answer = http
        .send(method, url, params)
        .await
        .map_err(|e| format!("webhook failed (Twilio error 11200): {e:#}"))?;
    if !answer.is_success() {
        return Err(format!(
            "{url} answered HTTP {} (Twilio error 11200): {}",
            answer.status,
            answer.body.chars().take(200).collect::<String>()
        ));
    }
    let xml_type = answer.content_type.as_deref().is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/xml") || t.starts_with("application/xml")
    });
    if !xml_type {
        return Err(format!(
            "{url} answered Content-Type {:?}, not text/xml (Twilio error 12300)",
            answer.content_type
        ));
    }
    let verbs = parse_twiml(url, &answer.body)?;
    Ok((verbs, super::report::duration_ms(answer.elapsed)))
}

/// The `<Dial action>` request (twilio.md §2.4).
pub fn dial_action_params(call: &CallIdentity, status: DialStatus) -> Form {
    let mut form = call.voice_params("in-progress");
    form.push("DialCallSid", ids::sid("CA"));
    form.push("DialCallStatus", status.as_str());
    if status == DialStatus::Completed {
        form.push("DialCallDuration", "12");
        form.push("DialBridged", "true");
    } else {
        form.push("DialBridged", "false");
    }
    form
}

fn recording_url(call: &CallIdentity, recording_sid: &str) -> String {
    format!(
        "https://api.twilio.com/2010-04-01/Accounts/{}/Recordings/{recording_sid}",
        call.account_sid
    )
}

fn record_action_params(call: &CallIdentity, recording_sid: &str, secs: u32) -> Form {
    let mut form = call.voice_params("completed");
    form.push("Digits", "hangup");
    form.push("RecordingDuration", secs.to_string());
    form.push("RecordingSid", recording_sid);
    form.push("RecordingUrl", recording_url(call, recording_sid));
    form
}

fn recording_status_params(call: &CallIdentity, recording_sid: &str, secs: u32) -> Form {
    Form::from_pairs([
        ("AccountSid", call.account_sid.as_str()),
        ("CallSid", call.call_sid.as_str()),
        ("RecordingChannels", "1"),
        ("RecordingDuration", &secs.to_string()),
        ("RecordingSid", recording_sid),
        ("RecordingSource", "RecordVerb"),
        ("RecordingStatus", "completed"),
        ("RecordingUrl", &recording_url(call, recording_sid)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "https://edge.example/telephony/inbound";

    #[test]
    fn parses_connect_stream_with_parameters() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="https://edge.example/telephony/stream-fallback?attempt=1&amp;mode=screening" method="POST"><Stream statusCallback="/telephony/stream-status" url="ws://127.0.0.1:9/media/n1"><Parameter name="token" value="t.k" /><Parameter name="mode" value="screening" /></Stream></Connect></Response>"#;
        let verbs = parse_twiml(DOC, xml).unwrap();
        let [
            Verb::Connect {
                action,
                method,
                stream: Some(stream),
            },
        ] = verbs.as_slice()
        else {
            panic!("{verbs:?}")
        };
        assert_eq!(
            action.as_deref(),
            Some("https://edge.example/telephony/stream-fallback?attempt=1&mode=screening")
        );
        assert_eq!(*method, HttpMethod::Post);
        assert_eq!(stream.url, "ws://127.0.0.1:9/media/n1");
        assert_eq!(
            stream.status_callback.as_deref(),
            Some("https://edge.example/telephony/stream-status")
        );
        assert_eq!(stream.parameters["token"], "t.k");
        assert_eq!(stream.parameters["mode"], "screening");
    }

    #[test]
    fn parses_dial_say_pause_hangup_redirect() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">Hello &amp; bye</Say><Pause length="2"/><Dial action="/telephony/dial-result" timeout="20"><Number>+14155550100</Number></Dial><Redirect method="GET">next</Redirect><Hangup/></Response>"#;
        let verbs = parse_twiml(DOC, xml).unwrap();
        assert_eq!(verbs[0], Verb::Say("Hello & bye".into()));
        assert_eq!(verbs[1], Verb::Pause(2));
        assert_eq!(
            verbs[2],
            Verb::Dial {
                action: Some("https://edge.example/telephony/dial-result".into()),
                method: HttpMethod::Post,
                target: "+14155550100".into(),
                timeout: 20,
            }
        );
        assert_eq!(
            verbs[3],
            Verb::Redirect {
                url: "https://edge.example/telephony/next".into(),
                method: HttpMethod::Get
            }
        );
        assert_eq!(verbs[4], Verb::Hangup);
    }

    #[test]
    fn refuses_what_twilio_refuses() {
        assert!(
            parse_twiml(DOC, "\n<?xml version=\"1.0\"?><Response/>")
                .unwrap_err()
                .contains("12100")
        );
        assert!(
            parse_twiml(DOC, "<?xml version=\"1.0\"?><response/>")
                .unwrap_err()
                .contains("12102")
        );
        assert!(parse_twiml(DOC, "<?xml version=\"1.0\"?><Response>").is_err());
        assert_eq!(
            parse_twiml(DOC, "<?xml version=\"1.0\"?><Response/>").unwrap(),
            vec![]
        );
    }

    #[test]
    fn the_shared_builder_output_parses_back() {
        use shared::twiml::{Connect, Stream, VoiceResponse};
        let xml = VoiceResponse::new()
            .connect(
                Connect::new()
                    .stream(Stream::new("wss://n.example/media/a").parameter("mode", "forward")),
            )
            .to_xml();
        let verbs = parse_twiml(DOC, &xml).unwrap();
        assert!(
            matches!(&verbs[0], Verb::Connect { stream: Some(s), .. } if s.parameters["mode"] == "forward")
        );
    }

    #[test]
    fn dial_timeout_is_read_and_defaults_like_twilio() {
        let timeout = |attr: &str| {
            let xml = format!(
                r#"<?xml version="1.0"?><Response><Dial {attr}><Number>+14155550100</Number></Dial></Response>"#
            );
            match parse_twiml(DOC, &xml).unwrap().as_slice() {
                [Verb::Dial { timeout, .. }] => *timeout,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(timeout(r#"timeout="20""#), 20);
        assert_eq!(timeout(""), DEFAULT_DIAL_TIMEOUT_S);
        assert_eq!(timeout(r#"timeout="2""#), DEFAULT_DIAL_TIMEOUT_S);
        assert_eq!(timeout(r#"timeout="soon""#), DEFAULT_DIAL_TIMEOUT_S);
    }

    #[test]
    fn only_an_unanswered_dial_rings_out_its_timeout() {
        use std::time::Duration;
        let caller = |dial_status, ring_limit| CallerBehaviour {
            dial_status,
            voicemail_secs: 0,
            ring_limit,
        };
        assert_eq!(
            caller(DialStatus::NoAnswer, None).ring_time(20),
            Duration::from_secs(20)
        );
        assert_eq!(
            caller(DialStatus::NoAnswer, Some(Duration::from_secs(3))).ring_time(20),
            Duration::from_secs(3)
        );
        for answered in [DialStatus::Completed, DialStatus::Busy, DialStatus::Failed] {
            assert_eq!(caller(answered, None).ring_time(20), Duration::ZERO);
        }
    }

    #[test]
    fn dial_action_fields_follow_the_status() {
        let call = CallIdentity::new("AC1", "+14155550100", "+14155550199");
        let done = dial_action_params(&call, DialStatus::Completed);
        assert_eq!(done.get("DialCallStatus"), Some("completed"));
        assert_eq!(done.get("DialBridged"), Some("true"));
        assert_eq!(done.get("CallStatus"), Some("in-progress"));
        let missed = dial_action_params(&call, DialStatus::NoAnswer);
        assert_eq!(missed.get("DialCallStatus"), Some("no-answer"));
        assert_eq!(missed.get("DialCallDuration"), None);
        assert!(ids::is_sid("CA", missed.get("DialCallSid").unwrap()));
    }
}
