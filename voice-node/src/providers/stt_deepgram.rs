//! Deepgram live transcription over WebSocket.
//!
//! The protocol: `GET wss://api.deepgram.com/v1/listen?encoding=mulaw&sample_rate=8000&…` with
//! `Authorization: Token KEY`; binary messages carry raw audio (Twilio's mu-law as is, no
//! re-encoding); text messages from Deepgram are JSON with a `type` (`Results`, `Metadata`,
//! `UtteranceEnd`, `SpeechStarted`); `{"type":"KeepAlive"}` holds an idle stream open and
//! `{"type":"CloseStream"}` asks Deepgram to flush its last results and close. A failure
//! arrives as an HTTP status on the handshake (401 bad key, 400 bad parameters) or as a close
//! frame with an error code (1008 undecodable audio, 1011 no audio for too long).
//!
//! [`DeepgramStream`] is the stream; [`DeepgramStt::transcribe`] runs one VAD-cut utterance
//! through a stream, which is how the agent uses it (it already cuts utterances with its VAD).

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{ProviderError, RetryPolicy};

/// Bytes of audio per binary message: 100 ms (Deepgram suggests 20–250 ms chunks).
const CHUNK: usize = 800;

/// Deepgram's endpoint and settings.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    /// `wss://api.deepgram.com` (tests: `ws://127.0.0.1:PORT`).
    base_url: String,
    /// The API key (`Authorization: Token …`).
    api_key: String,
    /// `nova-3`, `nova-2-phonecall`, …
    model: String,
    /// Silence (ms) after which Deepgram finalizes speech (`endpointing`).
    endpointing_ms: u32,
    /// Timeouts and retries.
    pub policy: RetryPolicy,
}

/// A `Results` message: a transcript of a stretch of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct SttResult {
    /// The best alternative's transcript (may be empty for silence).
    pub transcript: String,
    /// Final for this stretch of audio (interim results are not).
    pub is_final: bool,
    /// Deepgram's endpointing saw the end of an utterance.
    pub speech_final: bool,
}

/// What the stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// A transcript, interim or final.
    Result(SttResult),
    /// Deepgram detected the start of speech.
    SpeechStarted,
    /// Deepgram detected the end of an utterance (`utterance_end_ms`).
    UtteranceEnd,
    /// Session metadata (request id): sent once, just before a normal close.
    Metadata,
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
}

#[derive(Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    transcript: String,
}

/// Parses one text message from Deepgram; `None` for types this client does not use.
pub fn parse_message(text: &str) -> Result<Option<SttEvent>, ProviderError> {
    let msg: Incoming = serde_json::from_str(text).map_err(|e| {
        ProviderError::Protocol(format!("Deepgram message ({e}): {}", super::snippet(text)))
    })?;
    Ok(match msg.kind.as_str() {
        "Results" => {
            let transcript = msg
                .channel
                .and_then(|c| c.alternatives.into_iter().next())
                .map(|a| a.transcript)
                .ok_or_else(|| {
                    ProviderError::Protocol("Results without channel.alternatives[0]".into())
                })?;
            Some(SttEvent::Result(SttResult {
                transcript,
                is_final: msg.is_final,
                speech_final: msg.speech_final,
            }))
        }
        "SpeechStarted" => Some(SttEvent::SpeechStarted),
        "UtteranceEnd" => Some(SttEvent::UtteranceEnd),
        "Metadata" => Some(SttEvent::Metadata),
        _ => None,
    })
}

impl DeepgramStt {
    /// A client for `model` at `base_url` (default `wss://api.deepgram.com`; an `http(s)://`
    /// base, as the settings API accepts, means the same host over `ws(s)://`).
    pub fn new(base_url: &str, api_key: &str, model: &str, endpointing_ms: u32) -> Self {
        DeepgramStt {
            base_url: shared::signature::websocket_base(base_url),
            api_key: api_key.to_owned(),
            model: model.to_owned(),
            endpointing_ms,
            policy: RetryPolicy::default(),
        }
    }

    /// The listen URL with the call's audio format.
    pub fn listen_url(&self) -> String {
        format!(
            "{}/v1/listen?encoding=mulaw&sample_rate=8000&channels=1&interim_results=true\
             &punctuate=true&smart_format=true&endpointing={}&model={}",
            self.base_url, self.endpointing_ms, self.model
        )
    }

    /// Opens a stream (the handshake within the first-byte timeout).
    pub async fn connect(&self) -> Result<DeepgramStream, ProviderError> {
        let mut request = self
            .listen_url()
            .into_client_request()
            .map_err(|e| ProviderError::Config(format!("Deepgram URL: {e}")))?;
        let auth = HeaderValue::from_str(&format!("Token {}", self.api_key))
            .map_err(|_| ProviderError::Config("the Deepgram key has invalid characters".into()))?;
        request.headers_mut().insert("Authorization", auth);
        let (socket, _) = self
            .policy
            .first_byte(async {
                tokio_tungstenite::connect_async(request)
                    .await
                    .map_err(super::ws_handshake_error)
            })
            .await?;
        Ok(DeepgramStream { socket })
    }

    /// Transcribes one utterance of 8 kHz mu-law: stream it, ask for the close, and join the
    /// final results. Retries connection failures and 429/5xx handshakes.
    pub async fn transcribe(
        &self,
        mulaw: &[u8],
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<String, ProviderError> {
        self.policy
            .run(
                || async {
                    let mut stream = self.connect().await?;
                    for chunk in mulaw.chunks(CHUNK) {
                        stream.send_audio(chunk).await?;
                    }
                    stream.close_stream().await?;
                    let mut finals: Vec<String> = Vec::new();
                    while let Some(event) = stream.next_event().await? {
                        if let SttEvent::Result(r) = event
                            && r.is_final
                            && !r.transcript.trim().is_empty()
                        {
                            finals.push(r.transcript.trim().to_owned());
                        }
                    }
                    Ok(finals.join(" "))
                },
                on_retry,
            )
            .await
    }
}

/// An open Deepgram stream.
#[derive(Debug)]
pub struct DeepgramStream {
    /// The socket.
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl DeepgramStream {
    /// Sends raw mu-law audio.
    pub async fn send_audio(&mut self, mulaw: &[u8]) -> Result<(), ProviderError> {
        self.send(Message::Binary(mulaw.to_vec().into())).await
    }

    /// Keeps an idle stream open (Deepgram closes after ~10 s without audio).
    pub async fn keep_alive(&mut self) -> Result<(), ProviderError> {
        self.send(Message::text(r#"{"type":"KeepAlive"}"#)).await
    }

    /// Asks Deepgram to finish: it sends the last results, metadata, then closes.
    pub async fn close_stream(&mut self) -> Result<(), ProviderError> {
        self.send(Message::text(r#"{"type":"CloseStream"}"#)).await
    }

    async fn send(&mut self, message: Message) -> Result<(), ProviderError> {
        self.socket
            .send(message)
            .await
            .map_err(|e| ProviderError::Connect(format!("sending to Deepgram: {e}")))
    }

    /// The next event; `None` once Deepgram closed the stream normally. A close with an error
    /// code is [`ProviderError::Closed`].
    pub async fn next_event(&mut self) -> Result<Option<SttEvent>, ProviderError> {
        loop {
            let Some(message) = self.socket.next().await else {
                return Ok(None);
            };
            let message = message.map_err(|e| match e {
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                    ProviderError::Closed {
                        code: 1006,
                        reason: "closed without a close frame".into(),
                    }
                }
                other => ProviderError::Protocol(format!("Deepgram stream: {other}")),
            });
            match message {
                Err(ProviderError::Closed { code: 1006, .. }) => return Ok(None),
                Err(err) => return Err(err),
                Ok(Message::Text(text)) => {
                    if let Some(event) = parse_message(text.as_str())? {
                        return Ok(Some(event));
                    }
                }
                Ok(Message::Close(frame)) => {
                    // Send the close reply tungstenite queued, so Deepgram sees a clean close.
                    let _ = self.socket.flush().await;
                    return match frame {
                        Some(f) if f.code != CloseCode::Normal => Err(ProviderError::Closed {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        }),
                        _ => Ok(None),
                    };
                }
                Ok(_) => {} // pings are answered by tungstenite; binary is not expected
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_and_ignores_unknown_types() {
        let r = parse_message(
            r#"{"type":"Results","channel_index":[0,1],"duration":1.2,"start":0.0,"is_final":true,"speech_final":false,"channel":{"alternatives":[{"transcript":"hi there","confidence":0.98,"words":[]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Some(SttEvent::Result(SttResult {
                transcript: "hi there".into(),
                is_final: true,
                speech_final: false
            }))
        );
        assert_eq!(parse_message(r#"{"type":"Warning"}"#).unwrap(), None);
        assert!(parse_message(r#"{"type":"Results"}"#).is_err());
        assert!(parse_message("not json").is_err());
    }

    #[test]
    fn listen_url_names_the_phone_audio_format() {
        let d = DeepgramStt::new("https://api.deepgram.com/", "k", "nova-3", 300);
        let url = d.listen_url();
        assert!(
            url.starts_with("wss://api.deepgram.com/v1/listen?encoding=mulaw&sample_rate=8000")
        );
        assert!(url.contains("endpointing=300") && url.contains("interim_results=true"));
    }
}
