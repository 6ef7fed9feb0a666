//! Stand-ins for the edge and the node, small enough to read, strict where the simulator must
//! be right: the fake edge checks every `X-Twilio-Signature` like the real one, the fake node
//! checks the handshake signature over its `ws://` URL and speaks the Media Streams protocol
//! through `shared::media_stream`.

#![allow(dead_code)] // each test file uses part of this

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::{SinkExt, StreamExt};
use shared::form::Form;
use shared::media_stream::{InboundMessage, OutboundMessage, parse_inbound};
use shared::stream_token::signed_body::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_body};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};

use voice_node::simulate::call::{CallPlan, RecordSource};
use voice_node::simulate::caller_audio::Utterance;
use voice_node::simulate::media_call::SessionOptions;
use voice_node::simulate::twilio_http::{CallIdentity, TwilioHttp};
use voice_node::simulate::twiml_follow::{CallerBehaviour, DialStatus};

/// The Twilio auth token every fake checks signatures with.
pub const AUTH_TOKEN: &str = "sim-test-auth-token";
/// The edge ↔ node key.
pub const SECRET: &str = "sim-test-edge-shared-secret-0123456789abcdef";
/// The called number.
pub const TO: &str = "+14155550100";
/// The caller.
pub const FROM: &str = "+14155550123";

/// A TwiML document with the XML declaration Twilio requires.
pub fn twiml(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>")
}

// ---------------------------------------------------------------------------------------------
// Fake edge
// ---------------------------------------------------------------------------------------------

/// One request the fake edge received.
#[derive(Debug, Clone)]
pub struct EdgeHit {
    /// Path and query.
    pub path: String,
    /// The decoded form.
    pub form: Form,
}

/// Answers a signed request: `Some(twiml)` → 200 text/xml, `None` → 204.
pub type EdgeAnswer = Arc<dyn Fn(&str, &Form) -> Option<String> + Send + Sync>;

/// A fake edge on a local port.
#[derive(Clone)]
pub struct FakeEdge {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every correctly signed request, in order.
    pub hits: Arc<Mutex<Vec<EdgeHit>>>,
    /// Requests refused for their signature.
    pub refused: Arc<Mutex<Vec<String>>>,
}

impl FakeEdge {
    /// The hits on `path` (ignoring the query).
    pub fn hits_on(&self, path: &str) -> Vec<EdgeHit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct EdgeState {
    edge: FakeEdge,
    answer: EdgeAnswer,
    auth_token: String,
}

/// Starts a fake edge whose answers come from `answer`.
pub async fn start_edge(answer: EdgeAnswer) -> FakeEdge {
    start_edge_with_token(AUTH_TOKEN, answer).await
}

/// Starts a fake edge that checks signatures against `auth_token`.
pub async fn start_edge_with_token(auth_token: &str, answer: EdgeAnswer) -> FakeEdge {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let edge = FakeEdge {
        base,
        hits: Arc::default(),
        refused: Arc::default(),
    };
    let state = EdgeState {
        edge: edge.clone(),
        answer,
        auth_token: auth_token.to_owned(),
    };
    let app = Router::new().fallback(any(edge_handler)).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    edge
}

async fn edge_handler(
    State(state): State<EdgeState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let url = format!("{}{path}", state.edge.base);
    let form = Form::parse(&body).unwrap_or_default();
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    if shared::signature::validate_form(&state.auth_token, &url, &form, signature).is_err() {
        state.edge.refused.lock().unwrap().push(path);
        return (StatusCode::FORBIDDEN, "bad signature").into_response();
    }
    state.edge.hits.lock().unwrap().push(EdgeHit {
        path: path.clone(),
        form: form.clone(),
    });
    let route = path.split('?').next().unwrap_or("").to_owned();
    match (state.answer)(&route, &form) {
        Some(xml) => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fake node: Media Streams
// ---------------------------------------------------------------------------------------------

/// What the fake agent does on the stream.
#[derive(Debug, Clone, Copy)]
pub enum AgentScript {
    /// Greets with `greeting_frames` of audio + mark "greeting" right after `start`, then after
    /// each caller utterance (speech then 300 ms of quiet) replies with `reply_frames` + mark.
    GreetAndReply {
        /// Greeting length, 20 ms frames.
        greeting_frames: usize,
        /// Reply length, 20 ms frames.
        reply_frames: usize,
    },
    /// Sends 1 s of audio + mark "a", 1 s + mark "b", then `clear` after 300 ms.
    MarksThenClear,
    /// Sends a greeting, then closes the socket normally after `after_ms` (hangs the call up).
    CloseAfter {
        /// Milliseconds after `start`.
        after_ms: u64,
    },
    /// Sends a paced utterance with one gap of `gap_ms` in the middle, then a mark.
    GappyUtterance {
        /// The gap, ms.
        gap_ms: u64,
    },
}

/// What the fake node saw.
#[derive(Debug, Default)]
pub struct NodeSeen {
    /// The `X-Twilio-Signature` of each handshake.
    pub signatures: Vec<Option<String>>,
    /// The `start` customParameters.
    pub custom_parameters: BTreeMap<String, String>,
    /// The CallSid from `start`.
    pub call_sid: Option<String>,
    /// Non-media events in order (`connected`, `start`, `mark:NAME`, `stop`).
    pub events: Vec<String>,
    /// Caller media frames received.
    pub media_frames: usize,
    /// Whether every `sequenceNumber` was one more than the last.
    pub sequence_ok: bool,
    /// Mark echoes: name and time since the mark was sent.
    pub mark_echo_after: Vec<(String, Duration)>,
    /// Time from `clear` to each echo that followed it.
    pub echo_after_clear: Vec<(String, Duration)>,
}

/// A fake node.
#[derive(Clone)]
pub struct FakeNode {
    /// `ws://127.0.0.1:PORT/media/fake-node`.
    pub ws_url: String,
    /// What it saw.
    pub seen: Arc<Mutex<NodeSeen>>,
}

/// Starts a fake node playing `script`; handshakes must be signed with [`AUTH_TOKEN`].
pub async fn start_node(script: AgentScript) -> FakeNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!("ws://{}/media/fake-node", listener.local_addr().unwrap());
    let node = FakeNode {
        ws_url: ws_url.clone(),
        seen: Arc::new(Mutex::new(NodeSeen {
            sequence_ok: true,
            ..NodeSeen::default()
        })),
    };
    let seen = node.seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let seen = seen.clone();
            let ws_url = ws_url.clone();
            tokio::spawn(async move {
                let expected = shared::signature::compute(AUTH_TOKEN, &ws_url, &[]);
                let seen_hs = seen.clone();
                // The signature is tungstenite's handshake callback type; its error is an HTTP response.
                #[allow(clippy::result_large_err)]
                let callback =
                    move |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
                        let sig = req
                            .headers()
                            .get("x-twilio-signature")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let ok = sig.as_deref() == Some(expected.as_str());
                        seen_hs.lock().unwrap().signatures.push(sig);
                        if ok {
                            Ok(resp)
                        } else {
                            let mut refusal = ErrorResponse::new(Some("bad signature".into()));
                            *refusal.status_mut() = StatusCode::FORBIDDEN;
                            Err(refusal)
                        }
                    };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                run_agent(ws, script, seen).await;
            });
        }
    });
    node
}

fn agent_audio(frames: usize) -> Vec<u8> {
    vec![0x55; frames * 160]
}

async fn run_agent(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    script: AgentScript,
    seen: Arc<Mutex<NodeSeen>>,
) {
    let (mut tx, mut rx) = ws.split();
    let mut stream_sid = String::new();
    let mut last_seq = 0u64;
    let mut marks_sent: BTreeMap<String, Instant> = BTreeMap::new();
    let mut clear_at: Option<Instant> = None;
    let mut clear_timer: Option<Instant> = None;
    let mut close_timer: Option<Instant> = None;
    let mut heard_speech = false;
    let mut quiet = 0usize;
    let mut replies = 0usize;
    let far = Instant::now() + Duration::from_secs(3600);
    loop {
        let deadline = clear_timer.or(close_timer).unwrap_or(far);
        let message = tokio::select! {
            m = rx.next() => m,
            _ = tokio::time::sleep_until(deadline) => {
                if clear_timer.take().is_some() {
                    tx.send(Message::text(OutboundMessage::clear(&stream_sid).to_json())).await.ok();
                    clear_at = Some(Instant::now());
                } else if close_timer.take().is_some() {
                    tx.send(Message::Close(None)).await.ok();
                }
                continue;
            }
        };
        let Some(Ok(message)) = message else { break };
        let text = match message {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(inbound) = parse_inbound(&text) else {
            seen.lock()
                .unwrap()
                .events
                .push(format!("unparseable: {text}"));
            continue;
        };
        if let Some(seq) = inbound.sequence_number() {
            let mut s = seen.lock().unwrap();
            if seq != last_seq + 1 {
                s.sequence_ok = false;
            }
            last_seq = seq;
        }
        let mut out: Vec<OutboundMessage<'static>> = Vec::new();
        match inbound {
            InboundMessage::Connected(_) => seen.lock().unwrap().events.push("connected".into()),
            InboundMessage::Start(start) => {
                stream_sid = start.stream_sid.clone();
                {
                    let mut s = seen.lock().unwrap();
                    s.events.push("start".into());
                    s.custom_parameters = start.custom_parameters.clone();
                    s.call_sid = Some(start.call_sid.clone());
                }
                let sid: &'static str = Box::leak(stream_sid.clone().into_boxed_str());
                match script {
                    AgentScript::GreetAndReply {
                        greeting_frames, ..
                    } => {
                        out.push(
                            OutboundMessage::media(sid, &agent_audio(greeting_frames))
                                .into_static(),
                        );
                        out.push(OutboundMessage::mark(sid, "greeting"));
                    }
                    AgentScript::MarksThenClear => {
                        for name in ["a", "b"] {
                            for _ in 0..50 {
                                out.push(
                                    OutboundMessage::media(sid, &agent_audio(1)).into_static(),
                                );
                            }
                            out.push(OutboundMessage::mark(sid, name));
                        }
                        clear_timer = Some(Instant::now() + Duration::from_millis(300));
                    }
                    AgentScript::CloseAfter { after_ms } => {
                        out.push(OutboundMessage::media(sid, &agent_audio(10)).into_static());
                        close_timer = Some(Instant::now() + Duration::from_millis(after_ms));
                    }
                    AgentScript::GappyUtterance { gap_ms } => {
                        // Paced like a node, slightly faster than real time, with one gap in the middle.
                        for i in 0..20 {
                            tx.send(Message::text(
                                OutboundMessage::media(sid, &agent_audio(1)).to_json(),
                            ))
                            .await
                            .ok();
                            let pause = if i == 9 { gap_ms } else { 15 };
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                        out.push(OutboundMessage::mark(sid, "gappy"));
                    }
                }
            }
            InboundMessage::Media(media) => {
                seen.lock().unwrap().media_frames += 1;
                let audio = media.payload.decode_to_vec().unwrap_or_default();
                let loud = audio
                    .iter()
                    .any(|&b| shared::mulaw::decode(b).unsigned_abs() > 1000);
                if let AgentScript::GreetAndReply { reply_frames, .. } = script {
                    if loud {
                        heard_speech = true;
                        quiet = 0;
                    } else if heard_speech {
                        quiet += 1;
                        if quiet == 15 {
                            heard_speech = false;
                            replies += 1;
                            let sid: &'static str = Box::leak(stream_sid.clone().into_boxed_str());
                            let name: &'static str =
                                Box::leak(format!("reply-{replies}").into_boxed_str());
                            out.push(
                                OutboundMessage::media(sid, &agent_audio(reply_frames))
                                    .into_static(),
                            );
                            out.push(OutboundMessage::mark(sid, name));
                        }
                    }
                }
            }
            InboundMessage::Mark(mark) => {
                let now = Instant::now();
                let mut s = seen.lock().unwrap();
                s.events.push(format!("mark:{}", mark.name));
                if let Some(sent) = marks_sent.get(&mark.name) {
                    s.mark_echo_after.push((mark.name.clone(), now - *sent));
                }
                if let Some(cleared) = clear_at {
                    s.echo_after_clear.push((mark.name.clone(), now - cleared));
                }
            }
            InboundMessage::Dtmf(d) => seen
                .lock()
                .unwrap()
                .events
                .push(format!("dtmf:{}", d.digit)),
            InboundMessage::Stop(_) => seen.lock().unwrap().events.push("stop".into()),
        }
        for message in out {
            if let OutboundMessage::Mark { name, .. } = &message {
                marks_sent.insert(name.to_string(), Instant::now());
            }
            if tx.send(Message::text(message.to_json())).await.is_err() {
                return;
            }
        }
    }
}

/// Detaches an outbound message from the buffers it borrowed.
trait IntoStatic {
    fn into_static(self) -> OutboundMessage<'static>;
}

impl IntoStatic for OutboundMessage<'_> {
    fn into_static(self) -> OutboundMessage<'static> {
        match self {
            OutboundMessage::Media {
                stream_sid,
                payload,
            } => OutboundMessage::Media {
                stream_sid: stream_sid.into_owned().into(),
                payload: payload.into_owned(),
            },
            OutboundMessage::Mark { stream_sid, name } => OutboundMessage::Mark {
                stream_sid: stream_sid.into_owned().into(),
                name: name.into_owned().into(),
            },
            OutboundMessage::Clear { stream_sid } => OutboundMessage::Clear {
                stream_sid: stream_sid.into_owned().into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fake node: /internal/calls/{call_sid}
// ---------------------------------------------------------------------------------------------

/// Serves `/internal/calls/{sid}` with a fixed transcript, checking the HMAC headers.
pub async fn start_record_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/internal/calls/{call_sid}", get(record));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn record(Path(call_sid): Path<String>, headers: HeaderMap) -> Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if verify_body(
        SECRET.as_bytes(),
        &h(TIMESTAMP_HEADER),
        &h(SIGNATURE_HEADER),
        b"",
        now,
        300,
    )
    .is_err()
    {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let json = serde_json::json!({
        "call_sid": call_sid,
        "mode": "screening",
        "outcome": "message_taken",
        "status": "completed",
        "transcript": [
            {"speaker": "agent", "text": "Hi, who is calling?"},
            {"speaker": "caller", "text": "It's Dana from the dentist."}
        ],
        "screening": {"label": "legit", "intent": "dentist appointment", "confidence": 0.91},
        "turn_latency_ms": [420],
        "errors": []
    });
    axum::Json(json).into_response()
}

// ---------------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------------

/// A loud "utterance" of `frames` frames followed by 10 frames of silence, as a caller sentence.
pub fn loud_utterance(frames: usize) -> Utterance {
    let mut audio = vec![0x10u8; frames * 160];
    audio.extend(vec![0xFFu8; 10 * 160]);
    Utterance::from_mulaw("loud", audio)
}

/// A call plan against `edge` with quick turn-taking for tests.
pub fn plan(edge: &FakeEdge, script: Vec<Utterance>, dial_status: DialStatus) -> CallPlan {
    CallPlan {
        http: TwilioHttp::new(AUTH_TOKEN, &edge.base, &edge.base).unwrap(),
        call: CallIdentity::new("AC00000000000000000000000000000000", FROM, TO),
        script: Arc::new(script),
        behaviour: CallerBehaviour {
            dial_status,
            voicemail_secs: 3,
            // These tests are about the TwiML, not the ring time (`flow_timers` waits it out).
            ring_limit: Some(Duration::ZERO),
        },
        session: SessionOptions {
            turn_gap: Duration::from_millis(300),
            reply_timeout: Duration::from_secs(5),
            max_duration: Duration::from_secs(30),
            ..SessionOptions::default()
        },
        record: None,
        record_unavailable: None,
    }
}

/// `plan` that also reads the record from `record_base`.
pub fn plan_with_record(edge: &FakeEdge, record_base: &str, script: Vec<Utterance>) -> CallPlan {
    let mut plan = plan(edge, script, DialStatus::Completed);
    plan.record = Some(RecordSource {
        secret: SECRET.as_bytes().to_vec(),
        node_override: Some(record_base.to_owned()),
        wait: Duration::from_secs(3),
    });
    plan
}
