//! The TwiML documents the edge answers with, built with `shared::twiml`.
//!
//! Every callback URL put in TwiML is absolute (`PUBLIC_WEBHOOK_BASE_URL` + path) with its query
//! parameters sorted by key and percent-encoded canonically: Twilio signs the URL as written, and
//! has been reported to re-sort query parameters, so sorted URLs validate either way
//! (reference/twilio.md §1.4).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use shared::domain::CallMode;
use shared::form::encode_component;
use shared::routing::{NodeInfo, NumberRoute, normalize_e164};
use shared::stream_token::{StreamClaims, issue};
use shared::twiml::{
    Connect, Dial, DialRecord, Method, Number, Record, RecordingEvent, Reject, RejectReason, Say,
    Start, Stream, Track, VoiceResponse,
};

use crate::config::Config;

/// How many nodes one call's stream is tried on before the edge gives up on the AI.
pub const MAX_STREAM_ATTEMPTS: u32 = 3;

/// How long the owner's phone rings in forward mode.
pub const DIAL_TIMEOUT_S: u32 = 20;

/// Said when the called number is not in the routing snapshot.
pub const NOT_IN_SERVICE: &str = "We're sorry. The number you have called is not in service. \
                                  Please check the number and try again. Goodbye.";
/// Said when neither a person, the AI nor voicemail can take the call.
pub const UNAVAILABLE: &str =
    "We're sorry, nobody can take your call right now. Please try again later. Goodbye.";
/// Said before the voicemail beep.
pub const VOICEMAIL_PROMPT: &str =
    "Nobody is available to take your call. Please leave a message after the tone.";
/// Said after a voicemail was recorded.
pub const VOICEMAIL_THANKS: &str = "Thank you for your message. Goodbye.";
/// Said when a browser-dialer call cannot be placed.
pub const CANNOT_DIAL: &str = "This call cannot be placed. Please check the number and your \
                               account's phone number setup.";

/// Route paths, shared by the router and the URLs put in TwiML.
pub mod paths {
    /// Voice webhook of every number.
    pub const INBOUND: &str = "/telephony/inbound";
    /// Call status callback.
    pub const STATUS: &str = "/telephony/status";
    /// `<Dial action>`.
    pub const DIAL_RESULT: &str = "/telephony/dial-result";
    /// `<Connect action>`: the stream ended while the caller is still on the line.
    pub const STREAM_FALLBACK: &str = "/telephony/stream-fallback";
    /// `<Stream statusCallback>`.
    pub const STREAM_STATUS: &str = "/telephony/stream-status";
    /// `recordingStatusCallback`.
    pub const RECORDING: &str = "/telephony/recording";
    /// `<Record action>`: after a voicemail.
    pub const VOICEMAIL_DONE: &str = "/telephony/voicemail-done";
    /// TwiML App voice URL of the browser dialer.
    pub const OUTBOUND: &str = "/telephony/outbound";
    /// Incoming SMS.
    pub const SMS_INBOUND: &str = "/sms/inbound";
    /// Outbound SMS delivery reports (`StatusCallback` of the node's sends).
    pub const SMS_STATUS: &str = shared::webhook::SMS_STATUS_PATH;
    /// Liveness, unsigned.
    pub const HEALTHZ: &str = "/healthz";
}

/// A TwiML document as an HTTP response (`Content-Type: text/xml`, as Twilio requires).
#[derive(Debug, Clone)]
pub struct Twiml(pub String);

impl From<VoiceResponse> for Twiml {
    fn from(response: VoiceResponse) -> Self {
        Twiml(response.to_xml())
    }
}

impl IntoResponse for Twiml {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        response
    }
}

/// `base + path`, with `params` sorted by key and percent-encoded.
pub fn callback_url(config: &Config, path: &str, params: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = params.to_vec();
    params.sort_by(|a, b| a.0.cmp(b.0));
    let mut url = config.public_url(path);
    for (i, (key, value)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode_component(key));
        url.push('=');
        url.push_str(&encode_component(value));
    }
    url
}

/// The Media Stream URL of a node: its public URL with `ws(s)://` and `/media/NODE_ID`.
/// Twilio accepts only `wss` in production; `ws` only arises for local nodes.
pub fn media_url(node: &NodeInfo) -> String {
    let base = shared::signature::websocket_base(&node.public_url);
    format!("{base}/media/{}", encode_component(&node.id))
}

/// The call the edge is sending to a node's AI.
#[derive(Debug, Clone)]
pub struct StreamTarget<'a> {
    /// The node chosen.
    pub node: &'a NodeInfo,
    /// Twilio's `CallSid`, bound into the token.
    pub call_sid: &'a str,
    /// The number's tenant.
    pub tenant_id: &'a str,
    /// The caller (`From`) and the number called (`To`): passed to the node as `<Parameter>`s so
    /// the call row it writes on `start` is complete before any status callback arrives.
    pub from: &'a str,
    /// See [`StreamTarget::from`].
    pub to: &'a str,
    /// The flow the node runs.
    pub mode: CallMode,
    /// 1 for the first node tried, 2 for the first fallback, …
    pub attempt: u32,
    /// Nodes already tried for this call (this one included), so a fallback skips them.
    pub tried: Vec<String>,
    /// The caller is back from a node's transfer that nobody answered: the node starts the
    /// receptionist at lead capture (`<Parameter name="after" value="failed_transfer">`).
    pub after_failed_transfer: bool,
}

/// The stream `<Parameter>` (and stream-fallback query parameter) saying the caller is back from
/// a transfer nobody answered, and its value.
pub const AFTER_PARAMETER: (&str, &str) = ("after", "failed_transfer");

/// `<Connect action=stream-fallback><Stream url=wss://NODE/media/ID statusCallback=…>` with the
/// stream token, tenant and mode as `<Parameter>`s.
///
/// The `<Connect action>` runs when the stream ends with the caller still there. Nodes end a
/// finished call by hanging it up over Twilio's REST API, never by only closing the socket, so
/// reaching the action means the node failed: the fallback route tries the next node, then
/// voicemail.
pub fn connect_stream(config: &Config, now_s: u64, target: &StreamTarget<'_>) -> VoiceResponse {
    let token = issue(
        &StreamClaims {
            call_sid: target.call_sid.to_owned(),
            tenant_id: target.tenant_id.to_owned(),
            node_id: target.node.id.clone(),
            mode: target.mode,
            expires_at: now_s + config.stream_token_ttl_s,
        },
        &config.edge_shared_secret,
    );
    let attempt = target.attempt.to_string();
    let tried = target.tried.join(",");
    let mut action_params = vec![
        ("attempt", attempt.as_str()),
        ("mode", target.mode.as_str()),
        ("tried", tried.as_str()),
    ];
    if target.after_failed_transfer {
        action_params.push(AFTER_PARAMETER);
    }
    let action = callback_url(config, paths::STREAM_FALLBACK, &action_params);
    let status = callback_url(config, paths::STREAM_STATUS, &[("node", &target.node.id)]);
    let stream = Stream::new(media_url(target.node))
        .status_callback(status)
        .status_callback_method(Method::Post)
        .parameter("token", token)
        .parameter("tenant", target.tenant_id)
        .parameter("mode", target.mode.as_str())
        .parameter("from", target.from)
        .parameter("to", target.to);
    let stream = if target.after_failed_transfer {
        stream.parameter(AFTER_PARAMETER.0, AFTER_PARAMETER.1)
    } else {
        stream
    };
    VoiceResponse::new().connect(
        Connect::new()
            .action(action)
            .method(Method::Post)
            .stream(stream),
    )
}

/// The owner's phone rings for [`DIAL_TIMEOUT_S`]; the outcome goes to `/telephony/dial-result`.
/// The caller's number is shown to the owner when it is a real number (Twilio allows an
/// inbound caller's ID on the forwarded leg). `last_resort` marks a dial that is itself the
/// fallback of a failed AI stream, so a missed dial then goes to voicemail, not back to the AI.
pub fn dial_owner(config: &Config, owner: &str, caller: &str, last_resort: bool) -> VoiceResponse {
    let params: &[(&str, &str)] = if last_resort {
        &[("last_resort", "1")]
    } else {
        &[]
    };
    let mut dial = Dial::new()
        .timeout(DIAL_TIMEOUT_S)
        .action(callback_url(config, paths::DIAL_RESULT, params))
        .method(Method::Post);
    if let Some(caller) = normalize_e164(caller) {
        dial = dial.caller_id(caller);
    }
    VoiceResponse::new().dial(dial.number(Number::new(owner)))
}

/// A voicemail: a prompt, then `<Record>` whose recording callback reaches a node (preferring
/// `node` when given).
pub fn voicemail(config: &Config, node: Option<&str>) -> VoiceResponse {
    let params: Vec<(&str, &str)> = node.map(|id| ("node", id)).into_iter().collect();
    VoiceResponse::new().say(Say::new(VOICEMAIL_PROMPT)).record(
        Record::new()
            .action(callback_url(config, paths::VOICEMAIL_DONE, &[]))
            .method(Method::Post)
            .max_length(120)
            .timeout(5)
            .play_beep(true)
            .recording_status_callback(callback_url(config, paths::RECORDING, &params))
            .recording_status_callback_method(Method::Post)
            .recording_status_callback_event([RecordingEvent::Completed, RecordingEvent::Absent]),
    )
}

/// Voicemail if the number offers it, else a polite goodbye.
pub fn voicemail_or_goodbye(config: &Config, route: &NumberRoute) -> VoiceResponse {
    if route.voicemail {
        voicemail(config, None)
    } else {
        goodbye(UNAVAILABLE)
    }
}

/// What a call gets when no AI node can take it: the owner's phone if there is one (and the
/// owner was not just tried), else voicemail or goodbye.
pub fn without_ai(
    config: &Config,
    route: &NumberRoute,
    caller: &str,
    owner_already_tried: bool,
) -> VoiceResponse {
    match route.owner_phone.as_deref() {
        Some(owner) if !owner_already_tried => dial_owner(config, owner, caller, true),
        _ => voicemail_or_goodbye(config, route),
    }
}

/// `<Say>text</Say><Hangup/>`.
pub fn goodbye(text: &str) -> VoiceResponse {
    VoiceResponse::new().say(Say::new(text)).hangup()
}

/// `<Reject reason="rejected"/>`: the call is refused without being answered (not billed).
pub fn reject() -> VoiceResponse {
    VoiceResponse::new().reject(Reject::new().reason(RejectReason::Rejected))
}

/// `<Hangup/>`.
pub fn hangup() -> VoiceResponse {
    VoiceResponse::new().hangup()
}

/// Browser dialer: a one-way `<Start><Stream>` of both tracks to a node for the live
/// transcript (when a node is available), then `<Dial>` the callee from the tenant's number,
/// recorded in two channels.
pub fn dialer_call(
    config: &Config,
    now_s: u64,
    caller_id: &str,
    callee: &str,
    transcript: Option<(&NodeInfo, &str, &str)>,
) -> VoiceResponse {
    let mut response = VoiceResponse::new();
    let mut recording_params: Vec<(&str, &str)> = Vec::new();
    if let Some((node, call_sid, tenant_id)) = transcript {
        let token = issue(
            &StreamClaims {
                call_sid: call_sid.to_owned(),
                tenant_id: tenant_id.to_owned(),
                node_id: node.id.clone(),
                // The claims have no "dialer" mode; `forward` (a person-to-person call) is the
                // closest, and the `kind` parameter tells the node to only transcribe.
                mode: CallMode::Forward,
                expires_at: now_s + config.stream_token_ttl_s,
            },
            &config.edge_shared_secret,
        );
        let stream = Stream::new(media_url(node))
            .track(Track::BothTracks)
            .status_callback(callback_url(
                config,
                paths::STREAM_STATUS,
                &[("node", &node.id)],
            ))
            .status_callback_method(Method::Post)
            .parameter("token", token)
            .parameter("tenant", tenant_id)
            .parameter("mode", CallMode::Forward.as_str())
            .parameter("kind", "dialer");
        response = response.start(Start::new().stream(stream));
        recording_params.push(("node", &node.id));
    }
    response.dial(
        Dial::new()
            .caller_id(caller_id)
            .record(DialRecord::RecordFromAnswerDual)
            .recording_status_callback(callback_url(config, paths::RECORDING, &recording_params))
            .recording_status_callback_event([RecordingEvent::Completed, RecordingEvent::Absent])
            .number(Number::new(callee)),
    )
}
