//! Local servers that speak the cloud providers' real wire protocols, for the `providers_*`
//! tests: OpenAI-style chat completions (SSE), Deepgram's live WebSocket, ElevenLabs' and
//! OpenAI's speech endpoints. Each answers from a script (one [`Reply`] per request, the last
//! one repeating) and records what it received, so tests assert both sides of the exchange.

#![allow(dead_code)]
// tungstenite's handshake callback must return its (large) `ErrorResponse` by value.
#![allow(clippy::result_large_err)]

pub mod realtime;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How the fake answers one HTTP request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `text/event-stream`, each string written as its own chunk 5 ms apart (so a JSON object
    /// split across strings really arrives in pieces).
    Sse(Vec<String>),
    /// A binary body in these chunks, 5 ms apart.
    Bytes(Vec<Vec<u8>>),
    /// A JSON body.
    Json(Value),
    /// An error status with a JSON error body like OpenAI's.
    Status(u16, String),
    /// Accept the request and never answer.
    Hang,
    /// Send these SSE chunks, then stall forever without closing.
    SseThenHang(Vec<String>),
    /// Wait, then answer (a provider's fixed latency, for the benchmark).
    Delayed(Duration, Box<Reply>),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (JSON requests parsed).
    pub body: Value,
}

#[derive(Default)]
struct Script {
    /// Per path (without query): replies in order; the last one repeats.
    replies: HashMap<String, VecDeque<Reply>>,
    /// Everything received.
    seen: Vec<Recorded>,
}

/// A scripted HTTP provider on 127.0.0.1:0.
#[derive(Clone)]
pub struct FakeHttp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    script: Arc<Mutex<Script>>,
}

impl FakeHttp {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&script));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeHttp {
            base: format!("http://{addr}"),
            script,
        }
    }

    /// Scripts the replies for `path`.
    pub async fn on(&self, path: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .await
            .replies
            .insert(path.to_owned(), replies.into());
    }

    /// Requests received so far.
    pub async fn seen(&self) -> Vec<Recorded> {
        self.script.lock().await.seen.clone()
    }
}

async fn handle(State(script): State<Arc<Mutex<Script>>>, request: Request) -> Response {
    let uri = request.uri().to_string();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = {
        let mut s = script.lock().await;
        s.seen.push(Recorded { uri, headers, body });
        let queue = s.replies.entry(path).or_default();
        if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    };
    let mut reply = reply;
    while let Some(Reply::Delayed(wait, inner)) = reply {
        tokio::time::sleep(wait).await;
        reply = Some(*inner);
    }
    match reply {
        None => (StatusCode::NOT_FOUND, "no script for this path").into_response(),
        Some(Reply::Sse(chunks)) => sse(chunks, false),
        Some(Reply::SseThenHang(chunks)) => sse(chunks, true),
        Some(Reply::Bytes(chunks)) => {
            let body = paced(chunks.into_iter().map(Bytes::from).collect());
            Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from_stream(body))
                .unwrap()
        }
        Some(Reply::Json(v)) => axum::Json(v).into_response(),
        Some(Reply::Status(code, message)) => (
            StatusCode::from_u16(code).unwrap(),
            axum::Json(json!({ "error": { "message": message, "type": "fake" } })),
        )
            .into_response(),
        Some(Reply::Hang) => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Reply::Delayed(..)) => unreachable!("unwrapped above"),
    }
}

/// The chunks as a body stream, 5 ms apart (the first at once).
fn paced(chunks: Vec<Bytes>) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    stream::iter(chunks.into_iter().enumerate()).then(|(i, c)| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<_, Infallible>(c)
    })
}

fn sse(chunks: Vec<String>, hang: bool) -> Response {
    let body = paced(chunks.into_iter().map(Bytes::from).collect());
    let body = if hang {
        Body::from_stream(body.chain(stream::pending()))
    } else {
        Body::from_stream(body)
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .unwrap()
}

/// `data: {chunk}\n\n` for a chat-completions chunk with `delta`.
pub fn chunk(delta: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "fake",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": null }],
        })
    )
}

/// The stream of a plain text reply, one delta per word, then `[DONE]`.
pub fn text_reply(text: &str) -> Reply {
    let mut chunks = vec![chunk(json!({ "role": "assistant", "content": "" }))];
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    chunks.extend(words.iter().map(|w| chunk(json!({ "content": w }))));
    chunks.push("data: [DONE]\n\n".into());
    Reply::Sse(chunks)
}

/// A non-streamed completion whose content is `content`.
pub fn completion(content: &str) -> Reply {
    Reply::Json(json!({
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
    }))
}

/// How the fake Deepgram treats one connection.
#[derive(Debug, Clone)]
pub enum Dg {
    /// Interim results while audio comes, then these finals on `CloseStream`, metadata, and a
    /// normal close.
    Transcribe(Vec<String>),
    /// Close with this code and reason after the first audio.
    CloseWith(u16, String),
    /// Refuse the handshake with this HTTP status.
    Reject(u16),
    /// Accept TCP and never answer the handshake.
    Hang,
}

/// What the fake Deepgram received on one connection.
#[derive(Debug, Clone, Default)]
pub struct DgSeen {
    pub uri: String,
    pub authorization: String,
    pub audio_bytes: usize,
    pub keep_alives: usize,
    pub close_stream: bool,
}

/// A scripted Deepgram on 127.0.0.1:0.
#[derive(Clone)]
pub struct FakeDeepgram {
    /// `ws://127.0.0.1:PORT`.
    pub base: String,
    script: Arc<Mutex<VecDeque<Dg>>>,
    seen: Arc<Mutex<Vec<DgSeen>>>,
    /// Wait before the final results (a provider's fixed latency, for the benchmark).
    latency: Duration,
}

impl FakeDeepgram {
    pub async fn start(script: Vec<Dg>) -> Self {
        Self::start_with_latency(script, Duration::ZERO).await
    }

    /// Like [`Self::start`], answering `CloseStream` after `latency`.
    pub async fn start_with_latency(script: Vec<Dg>, latency: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let fake = FakeDeepgram {
            base: format!("ws://{addr}"),
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::new(Mutex::new(Vec::new())),
            latency,
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let fake = server.clone();
                tokio::spawn(async move { fake.serve(tcp).await });
            }
        });
        fake
    }

    /// The connections that ended so far, waiting up to 2 s for at least `n` (a connection is
    /// recorded when its socket closes, just after the client saw the close).
    pub async fn seen(&self, n: usize) -> Vec<DgSeen> {
        for _ in 0..200 {
            let seen = self.seen.lock().await.clone();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the fake Deepgram saw fewer than {n} connections end");
    }

    async fn next(&self) -> Dg {
        let mut s = self.script.lock().await;
        if s.len() > 1 {
            s.pop_front().unwrap()
        } else {
            s.front().cloned().unwrap_or(Dg::Reject(500))
        }
    }

    async fn serve(&self, tcp: tokio::net::TcpStream) {
        let behaviour = self.next().await;
        if let Dg::Hang = behaviour {
            // Hold the connection open and never answer the handshake.
            let _hold = tcp;
            return std::future::pending::<()>().await;
        }
        let mut seen = DgSeen::default();
        let reject = match behaviour {
            Dg::Reject(code) => Some(code),
            _ => None,
        };
        let callback = |req: &WsRequest, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
            seen.uri = req.uri().to_string();
            seen.authorization = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            match reject {
                Some(code) => {
                    let mut r = ErrorResponse::new(Some(
                        "{\"err_code\":\"INVALID_AUTH\",\"err_msg\":\"Invalid credentials.\"}"
                            .into(),
                    ));
                    *r.status_mut() = axum::http::StatusCode::from_u16(code).unwrap();
                    Err(r)
                }
                None => Ok(resp),
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
            self.seen.lock().await.push(seen);
            return;
        };
        let results = |text: &str, is_final: bool| {
            Message::text(
                json!({
                    "type": "Results",
                    "channel_index": [0, 1],
                    "duration": 1.0,
                    "start": 0.0,
                    "is_final": is_final,
                    "speech_final": is_final,
                    "channel": { "alternatives": [{ "transcript": text, "confidence": 0.99, "words": [] }] },
                })
                .to_string(),
            )
        };
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Binary(audio) => {
                    seen.audio_bytes += audio.len();
                    match &behaviour {
                        Dg::CloseWith(code, reason) => {
                            let _ = ws
                                .send(Message::Close(Some(CloseFrame {
                                    code: CloseCode::from(*code),
                                    reason: reason.clone().into(),
                                })))
                                .await;
                            break;
                        }
                        Dg::Transcribe(finals) => {
                            // An interim guess: must never end up in the transcript.
                            let _ = ws.send(results("interim guess", false)).await;
                            let _ = finals;
                        }
                        _ => {}
                    }
                }
                Message::Text(text) => {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("KeepAlive") => seen.keep_alives += 1,
                        Some("CloseStream") => {
                            seen.close_stream = true;
                            tokio::time::sleep(self.latency).await;
                            if let Dg::Transcribe(finals) = &behaviour {
                                for f in finals {
                                    let _ = ws.send(results(f, true)).await;
                                }
                            }
                            let _ = ws
                                .send(Message::text(
                                    json!({ "type": "Metadata", "request_id": "fake" }).to_string(),
                                ))
                                .await;
                            let _ = ws.close(None).await;
                        }
                        _ => {}
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        self.seen.lock().await.push(seen);
    }
}
