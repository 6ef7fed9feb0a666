//! Shared helpers for the node's end-to-end tests: a node on a real port, Twilio's side of a
//! Media Stream over a real WebSocket, signed internal requests, fixture rows.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use shared::domain::CallMode;
use shared::media_stream::{
    Connected, Dtmf, InboundMessage, Media, MediaFormat, MediaPayload, OutboundMessage, Start,
    Stop, Track, parse_outbound,
};
use shared::stream_token::{StreamClaims, issue, sign_body};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;
use voice_node::agent::greeting_recorder::{
    GreetingRecorderFactory, PromptVoice, Prompts, RecorderConfig,
};
use voice_node::config::Config;
use voice_node::server::{AppState, NodeState, app};

pub const AUTH_TOKEN: &str = "test-twilio-auth-token";
pub const SECRET: &str = "test edge shared secret, 32 bytes";
pub const NODE: &str = "node-a";

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The node's configuration for a listener at `addr`, with `extra` overrides.
pub fn config(addr: SocketAddr, extra: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = [
        ("LISTEN_ADDR", addr.to_string()),
        ("PUBLIC_BASE_URL", format!("http://{addr}")),
        ("NODE_ID", NODE.to_owned()),
        ("NODE_REGION", "iad".to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("HEARTBEAT_SECS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test config")
}

/// The minimal agent with tone prompts (no espeak-ng timing in tests).
pub fn recorder(max_turns: u32) -> Arc<GreetingRecorderFactory> {
    Arc::new(GreetingRecorderFactory {
        prompts: Arc::new(Prompts::new(PromptVoice::Tone)),
        config: RecorderConfig {
            max_turns,
            ..RecorderConfig::default()
        },
    })
}

/// A node serving on 127.0.0.1:0.
pub struct TestNode {
    pub addr: SocketAddr,
    pub state: AppState,
    pub server: tokio::task::JoinHandle<()>,
}

impl TestNode {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, &[]).await
    }

    pub async fn start_with(pool: PgPool, extra: &[(&str, &str)]) -> Self {
        let (listener, addr) = bind().await;
        let state = NodeState::new(config(addr, extra), pool, recorder(3));
        let router = app(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestNode {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts `event` to `/internal/events`, signed as the edge signs it; the answer's status.
    pub async fn post_event(&self, event: &shared::forwarded::ForwardedEvent) -> u16 {
        self.send_event(event).await.status().as_u16()
    }

    /// Posts `event` to `/internal/events`, signed as the edge signs it; the whole answer.
    pub async fn send_event(&self, event: &shared::forwarded::ForwardedEvent) -> reqwest::Response {
        let body = event.to_json();
        let mut request = reqwest::Client::new()
            .post(self.url("/internal/events"))
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in signed(body.as_bytes()) {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

pub async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A tenant and a number for it; returns (tenant id, number id).
pub async fn tenant_with_number(pool: &PgPool, e164: &str, mode: CallMode) -> (Uuid, Uuid) {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Acme Dental') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    let number: Uuid = sqlx::query_scalar(
        "INSERT INTO phone_numbers (tenant_id, e164, mode, owner_phone) VALUES ($1, $2, $3, '+14155550199') RETURNING id",
    )
    .bind(tenant)
    .bind(e164)
    .bind(mode.as_str())
    .fetch_one(pool)
    .await
    .unwrap();
    (tenant, number)
}

pub fn stream_token(call_sid: &str, tenant: Uuid, node: &str) -> String {
    issue(
        &StreamClaims {
            call_sid: call_sid.to_owned(),
            tenant_id: tenant.to_string(),
            node_id: node.to_owned(),
            mode: CallMode::Screening,
            expires_at: now_unix() + 120,
        },
        SECRET.as_bytes(),
    )
}

/// Headers for a signed internal request over `body`.
pub fn signed(body: &[u8]) -> [(&'static str, String); 2] {
    let ts = now_unix();
    [
        (shared::stream_token::TIMESTAMP_HEADER, ts.to_string()),
        (
            shared::stream_token::SIGNATURE_HEADER,
            sign_body(SECRET.as_bytes(), ts, body),
        ),
    ]
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `ws://ADDR{path}` with an `X-Twilio-Signature` computed with `sign_with` (None: no
/// header) over the node's public URL.
pub async fn connect(addr: SocketAddr, path: &str, sign_with: Option<&str>) -> Result<Ws, WsError> {
    let url = format!("ws://{addr}{path}");
    let mut request = url.as_str().into_client_request().unwrap();
    if let Some(token) = sign_with {
        let signature = shared::signature::compute(token, &url, &[]);
        request
            .headers_mut()
            .insert("X-Twilio-Signature", signature.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// Twilio's side of one call.
pub struct TwilioCall {
    pub ws: Ws,
    pub call_sid: String,
    pub stream_sid: String,
    seq: u64,
    chunk: u64,
}

/// What the node sent, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromNode {
    Media(usize),
    Mark(String),
    Clear,
    Close(Option<(u16, String)>),
}

impl TwilioCall {
    /// Connects with a valid signature and sends `connected` + `start` with a valid token.
    pub async fn start(addr: SocketAddr, tenant: Uuid, call_sid: &str) -> Self {
        let ws = connect(addr, &format!("/media/{NODE}"), Some(AUTH_TOKEN))
            .await
            .expect("signed handshake accepted");
        let token = stream_token(call_sid, tenant, NODE);
        Self::start_on(ws, call_sid, Some(token)).await
    }

    pub async fn start_on(ws: Ws, call_sid: &str, token: Option<String>) -> Self {
        let custom_parameters = token
            .map(|t| BTreeMap::from([("token".to_owned(), t)]))
            .unwrap_or_default();
        Self::start_with_parameters(ws, call_sid, custom_parameters).await
    }

    /// Sends `connected` + `start` with these `<Parameter>`s (token, from, to, …).
    pub async fn start_with_parameters(
        ws: Ws,
        call_sid: &str,
        custom_parameters: BTreeMap<String, String>,
    ) -> Self {
        let mut call = TwilioCall {
            ws,
            call_sid: call_sid.to_owned(),
            stream_sid: format!("MZ{call_sid}"),
            seq: 0,
            chunk: 0,
        };
        call.send(InboundMessage::Connected(Connected {
            protocol: "Call".into(),
            version: "1.0.0".into(),
        }))
        .await;
        call.seq += 1;
        let start = InboundMessage::Start(Start {
            sequence_number: call.seq,
            account_sid: "AC1".into(),
            stream_sid: call.stream_sid.clone(),
            call_sid: call_sid.to_owned(),
            tracks: vec![Track::Inbound],
            custom_parameters,
            media_format: MediaFormat {
                encoding: "audio/x-mulaw".into(),
                sample_rate: 8000,
                channels: 1,
            },
        });
        call.send(start).await;
        call
    }

    pub async fn send(&mut self, message: InboundMessage<'_>) {
        self.ws
            .send(Message::text(message.to_json()))
            .await
            .expect("send to node");
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), WsError> {
        self.ws.send(Message::text(text)).await
    }

    /// One 20 ms frame of `byte` (0x90: loud, 0xFF: silence).
    pub async fn media(&mut self, byte: u8) {
        self.seq += 1;
        self.chunk += 1;
        let message = InboundMessage::Media(Media {
            sequence_number: self.seq,
            stream_sid: self.stream_sid.clone().into(),
            track: Track::Inbound,
            chunk: self.chunk,
            timestamp_ms: self.chunk * 20,
            payload: MediaPayload::encode(&[byte; 160]),
        });
        self.send(message).await;
    }

    /// Caller audio (8 kHz mu-law) in 20 ms frames at Twilio's real-time pace, then
    /// `silence_ms` of silence so the VAD ends the utterance.
    pub async fn say_audio(&mut self, mulaw: &[u8], silence_ms: usize) {
        let silence = vec![0xFFu8; silence_ms * 8];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for frame in mulaw.chunks(160).chain(silence.chunks(160)) {
            tick.tick().await;
            self.seq += 1;
            self.chunk += 1;
            let mut padded = frame.to_vec();
            padded.resize(160, 0xFF);
            let message = InboundMessage::Media(Media {
                sequence_number: self.seq,
                stream_sid: self.stream_sid.clone().into(),
                track: Track::Inbound,
                chunk: self.chunk,
                timestamp_ms: self.chunk * 20,
                payload: MediaPayload::encode(&padded),
            });
            self.send(message).await;
        }
    }

    pub async fn dtmf(&mut self, digit: char) {
        self.seq += 1;
        let message = InboundMessage::Dtmf(Dtmf {
            sequence_number: self.seq,
            stream_sid: self.stream_sid.clone(),
            track: Track::Inbound,
            digit,
        });
        self.send(message).await;
    }

    pub async fn mark(&mut self, name: &str) {
        self.seq += 1;
        let message = InboundMessage::Mark(shared::media_stream::Mark {
            sequence_number: self.seq,
            stream_sid: self.stream_sid.clone(),
            name: name.to_owned(),
        });
        self.send(message).await;
    }

    pub async fn stop(&mut self) {
        self.seq += 1;
        let message = InboundMessage::Stop(Stop {
            sequence_number: self.seq,
            stream_sid: self.stream_sid.clone(),
            account_sid: "AC1".into(),
            call_sid: self.call_sid.clone(),
        });
        self.send(message).await;
    }

    /// The next message from the node (10 s timeout).
    pub async fn recv(&mut self) -> FromNode {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("node answered in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return match parse_outbound(&text).expect("node sends valid Media Streams JSON")
                    {
                        OutboundMessage::Media { payload, .. } => {
                            FromNode::Media(payload.decode_to_vec().unwrap().len())
                        }
                        OutboundMessage::Mark { name, .. } => FromNode::Mark(name.into_owned()),
                        OutboundMessage::Clear { .. } => FromNode::Clear,
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return FromNode::Close(
                        frame.map(|CloseFrame { code, reason }| (code.into(), reason.to_string())),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return FromNode::Close(None),
            }
        }
    }

    /// Media frames until the next other message; returns (frames, message).
    pub async fn frames_until_other(&mut self) -> (usize, FromNode) {
        let mut n = 0;
        loop {
            match self.recv().await {
                FromNode::Media(_) => n += 1,
                other => return (n, other),
            }
        }
    }

    /// Plays the caller's part of a turn in real time: `loud_frames` of speech, then enough
    /// silence for the VAD to end the utterance, short turns included (they need the longer
    /// stop hangover). Twilio would go on sending silence; this caller stops and waits.
    pub async fn speak(&mut self, loud_frames: usize) {
        let silence =
            voice_node::agent::vad::VadConfig::default().longest_stop_frames() as usize + 5;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..loud_frames + silence {
            tick.tick().await;
            self.media(if i < loud_frames { 0x90 } else { 0xFF }).await;
        }
    }

    /// Waits for the node's next utterance to finish and echoes its mark (as Twilio does once
    /// the audio has played).
    pub async fn hear_utterance(&mut self) -> usize {
        let (frames, after) = self.frames_until_other().await;
        match after {
            FromNode::Mark(name) => {
                self.mark(&name).await;
                frames
            }
            other => panic!("expected a mark after {frames} frames, got {other:?}"),
        }
    }
}
