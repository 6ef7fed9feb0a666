//! A local OpenAI Realtime server: a real WebSocket on 127.0.0.1:0 speaking the Realtime event
//! JSON. Each connection follows a script ([`Rt`]); a served connection is handed to the test
//! ([`RtConn`]), which reads the client's events and sends server events built by the helpers
//! below, so a test plays the model turn by turn and asserts both sides.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How the fake treats one connection.
#[derive(Debug, Clone)]
pub enum Rt {
    /// Upgrade, send `session.created`, and hand the connection to the test.
    Serve,
    /// Refuse the upgrade with this status and OpenAI's error body.
    Reject(u16),
    /// Upgrade, then never send `session.created`.
    HangBeforeSession,
}

/// A served connection, as the test drives it.
pub struct RtConn {
    /// Path and query of the upgrade.
    pub uri: String,
    /// `Authorization` of the upgrade.
    pub authorization: String,
    /// `OpenAI-Beta` of the upgrade.
    pub beta: String,
    /// To the client.
    to_client: mpsc::UnboundedSender<Message>,
    /// From the client, parsed.
    from_client: mpsc::UnboundedReceiver<Value>,
}

static EVENT_IDS: AtomicU64 = AtomicU64::new(1);

/// A server event of `kind` with `fields`, with an `event_id` as OpenAI sends.
pub fn event(kind: &str, fields: Value) -> Value {
    let mut v = json!({
        "type": kind,
        "event_id": format!("event_{}", EVENT_IDS.fetch_add(1, Ordering::Relaxed)),
    });
    if let (Some(map), Some(extra)) = (v.as_object_mut(), fields.as_object()) {
        for (k, val) in extra {
            map.insert(k.clone(), val.clone());
        }
    }
    v
}

impl RtConn {
    /// Sends a server event.
    pub fn send(&self, event: Value) {
        let _ = self.to_client.send(Message::text(event.to_string()));
    }

    /// Closes the socket with `code` (a provider outage mid-call).
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.to_client.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })));
    }

    /// The client's next event (5 s at most).
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(5), self.from_client.recv())
            .await
            .expect("a client event in time")
            .expect("the client is connected")
    }

    /// The client's next event of `kind`, skipping others (audio appends, mostly).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let e = self.next().await;
            if e["type"] == kind {
                return e;
            }
        }
    }

    /// Caller audio the client appends, decoded, until `bytes` have arrived.
    pub async fn appended_audio(&mut self, bytes: usize) -> Vec<u8> {
        let mut audio = Vec::new();
        while audio.len() < bytes {
            let e = self.next_of("input_audio_buffer.append").await;
            audio.extend(BASE64.decode(e["audio"].as_str().unwrap()).unwrap());
        }
        audio
    }

    /// The server's side of one spoken response: `response.created`, the message item, its
    /// audio in `chunks` deltas and its transcript, `response.done`.
    pub fn speak(&self, response_id: &str, item_id: &str, audio: &[u8], chunks: usize, text: &str) {
        self.send(event(
            "response.created",
            json!({ "response": { "id": response_id, "object": "realtime.response", "status": "in_progress", "output": [] } }),
        ));
        self.send(event(
            "response.output_item.added",
            json!({ "response_id": response_id, "output_index": 0,
                    "item": { "id": item_id, "object": "realtime.item", "type": "message", "status": "in_progress", "role": "assistant", "content": [] } }),
        ));
        self.send(event(
            "response.content_part.added",
            json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": { "type": "audio", "transcript": "" } }),
        ));
        self.send(event(
            "response.audio_transcript.delta",
            json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0, "delta": text }),
        ));
        for part in audio.chunks(audio.len().div_ceil(chunks.max(1)).max(1)) {
            self.send(event(
                "response.audio.delta",
                json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
                        "delta": BASE64.encode(part) }),
            ));
        }
        self.send(event(
            "response.audio.done",
            json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0 }),
        ));
        self.send(event(
            "response.audio_transcript.done",
            json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0, "transcript": text }),
        ));
        self.send(event(
            "response.output_item.done",
            json!({ "response_id": response_id, "output_index": 0,
                    "item": { "id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "assistant",
                              "content": [{ "type": "audio", "transcript": text }] } }),
        ));
        self.send(event(
            "response.done",
            json!({ "response": { "id": response_id, "object": "realtime.response", "status": "completed", "output": [] } }),
        ));
    }

    /// The caller spoke (server VAD) and the server transcribed it (`input_audio_transcription`).
    pub fn caller_said(&self, item_id: &str, start_ms: u64, end_ms: u64, text: &str) {
        self.speech_started(item_id, start_ms);
        self.send(event(
            "input_audio_buffer.speech_stopped",
            json!({ "audio_end_ms": end_ms, "item_id": item_id }),
        ));
        self.send(event(
            "input_audio_buffer.committed",
            json!({ "previous_item_id": null, "item_id": item_id }),
        ));
        self.send(event(
            "conversation.item.created",
            json!({ "previous_item_id": null, "item": { "id": item_id, "object": "realtime.item", "type": "message",
                    "status": "completed", "role": "user", "content": [{ "type": "input_audio", "transcript": null }] } }),
        ));
        self.send(event(
            "conversation.item.input_audio_transcription.completed",
            json!({ "item_id": item_id, "content_index": 0, "transcript": text }),
        ));
    }

    /// `input_audio_buffer.speech_started`.
    pub fn speech_started(&self, item_id: &str, start_ms: u64) {
        self.send(event(
            "input_audio_buffer.speech_started",
            json!({ "audio_start_ms": start_ms, "item_id": item_id }),
        ));
    }

    /// A response whose only output is a function call, as OpenAI streams it.
    pub fn function_call(&self, response_id: &str, call_id: &str, name: &str, arguments: &str) {
        let item_id = format!("item_{call_id}");
        self.send(event(
            "response.created",
            json!({ "response": { "id": response_id, "object": "realtime.response", "status": "in_progress", "output": [] } }),
        ));
        self.send(event(
            "response.output_item.added",
            json!({ "response_id": response_id, "output_index": 0,
                    "item": { "id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                              "name": name, "call_id": call_id, "arguments": "" } }),
        ));
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        for delta in [head, tail] {
            self.send(event(
                "response.function_call_arguments.delta",
                json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id, "delta": delta }),
            ));
        }
        // Beta servers do not repeat the name here; the client must take it from the item.
        self.send(event(
            "response.function_call_arguments.done",
            json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id, "arguments": arguments }),
        ));
        self.send(event(
            "response.done",
            json!({ "response": { "id": response_id, "object": "realtime.response", "status": "completed", "output": [] } }),
        ));
    }
}

/// A scripted Realtime server.
#[derive(Clone)]
pub struct FakeRealtime {
    /// `ws://127.0.0.1:PORT/v1/realtime`.
    pub url: String,
    /// `http://127.0.0.1:PORT/v1` (what a tenant's `llm` row holds as its base URL).
    pub api_base: String,
    script: Arc<Mutex<VecDeque<Rt>>>,
    conns: Arc<Mutex<mpsc::UnboundedReceiver<RtConn>>>,
    /// Connections that reached the handshake.
    pub attempts: Arc<AtomicU64>,
}

impl FakeRealtime {
    pub async fn start(script: Vec<Rt>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns_tx, conns_rx) = mpsc::unbounded_channel();
        let fake = FakeRealtime {
            url: format!("ws://{addr}/v1/realtime"),
            api_base: format!("http://{addr}/v1"),
            script: Arc::new(Mutex::new(script.into())),
            conns: Arc::new(Mutex::new(conns_rx)),
            attempts: Arc::new(AtomicU64::new(0)),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let fake = server.clone();
                let conns = conns_tx.clone();
                tokio::spawn(async move { fake.serve(tcp, conns).await });
            }
        });
        fake
    }

    /// The next served connection (5 s at most).
    pub async fn connection(&self) -> RtConn {
        tokio::time::timeout(Duration::from_secs(5), self.conns.lock().await.recv())
            .await
            .expect("the client connected in time")
            .expect("fake running")
    }

    async fn next(&self) -> Rt {
        let mut s = self.script.lock().await;
        if s.len() > 1 {
            s.pop_front().unwrap()
        } else {
            s.front().cloned().unwrap_or(Rt::Serve)
        }
    }

    async fn serve(&self, tcp: tokio::net::TcpStream, conns: mpsc::UnboundedSender<RtConn>) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let behaviour = self.next().await;
        let reject = match behaviour {
            Rt::Reject(code) => Some(code),
            _ => None,
        };
        let mut seen = (String::new(), String::new(), String::new());
        #[allow(clippy::result_large_err)]
        let callback = |req: &WsRequest, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            seen = (
                req.uri().to_string(),
                header("authorization"),
                header("openai-beta"),
            );
            match reject {
                Some(code) => {
                    let body = json!({ "error": { "type": "invalid_request_error", "code": "invalid_api_key",
                        "message": "Incorrect API key provided.", "param": null } });
                    let mut r = ErrorResponse::new(Some(body.to_string()));
                    *r.status_mut() = axum::http::StatusCode::from_u16(code).unwrap();
                    Err(r)
                }
                None => Ok(resp),
            }
        };
        let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
            return;
        };
        let (mut write, mut read) = ws.split();
        if let Rt::HangBeforeSession = behaviour {
            // Hold the socket open, read and ignore everything, never say session.created.
            while let Some(Ok(_)) = read.next().await {}
            return;
        }
        let created = event(
            "session.created",
            json!({ "session": { "id": "sess_fake", "object": "realtime.session", "model": "gpt-realtime",
                    "modalities": ["text", "audio"], "input_audio_format": "pcm16", "output_audio_format": "pcm16" } }),
        );
        if write
            .send(Message::text(created.to_string()))
            .await
            .is_err()
        {
            return;
        }
        let (to_client, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (incoming, from_client) = mpsc::unbounded_channel();
        let _ = conns.send(RtConn {
            uri: seen.0,
            authorization: seen.1,
            beta: seen.2,
            to_client,
            from_client,
        });
        loop {
            tokio::select! {
                message = outgoing.recv() => match message {
                    Some(Message::Close(frame)) => {
                        let _ = write.send(Message::Close(frame)).await;
                        return;
                    }
                    Some(message) => {
                        if write.send(message).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                message = read.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(text.as_str())
                            .unwrap_or_else(|e| panic!("the client sent invalid JSON ({e}): {text}"));
                        if value["type"] == "session.update" {
                            let _ = write
                                .send(Message::text(event("session.updated", json!({ "session": value["session"] })).to_string()))
                                .await;
                        }
                        let _ = incoming.send(value);
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}
