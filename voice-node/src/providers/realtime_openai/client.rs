//! Opening a Realtime session: the WebSocket handshake (`Authorization: Bearer`,
//! `OpenAI-Beta: realtime=v1`), `session.created`, then `session.update`. Each step has its own
//! deadline, because a caller is waiting on the line: a handshake that does not finish within
//! `connect_timeout` or a server that accepts the socket but never says `session.created`
//! within `session_timeout` is a failure the agent falls back from.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::protocol::{ClientEvent, ServerEvent, SessionConfig};
use crate::providers::{ProviderError, RetryPolicy};

/// The public endpoint.
pub const DEFAULT_URL: &str = "wss://api.openai.com/v1/realtime";
/// The model when none is configured.
pub const DEFAULT_MODEL: &str = "gpt-realtime";
/// The voice when none is configured.
pub const DEFAULT_VOICE: &str = "alloy";

/// The socket of an open session.
pub type RealtimeSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to open Realtime sessions.
#[derive(Clone)]
pub struct RealtimeConfig {
    /// `wss://api.openai.com/v1/realtime` (an `http(s)://` URL means the same over `ws(s)://`;
    /// tests: `ws://127.0.0.1:PORT/v1/realtime`).
    pub url: String,
    /// Bearer key; `None` only for local servers that need none.
    pub api_key: Option<String>,
    /// `?model=`.
    pub model: String,
    /// The model's voice.
    pub voice: String,
    /// Retries of the handshake (connect errors, 429, 5xx only).
    pub policy: RetryPolicy,
    /// TCP + TLS + upgrade, per attempt.
    pub connect_timeout: Duration,
    /// From the upgrade to `session.created`.
    pub session_timeout: Duration,
}

impl std::fmt::Debug for RealtimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

impl RealtimeConfig {
    /// A configuration with the default budgets (the providers' first-byte budget for each
    /// step).
    pub fn new(url: &str, api_key: Option<String>, model: &str, voice: &str) -> Self {
        let policy = RetryPolicy::default();
        RealtimeConfig {
            url: shared::signature::websocket_base(url),
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.to_owned(),
            voice: voice.to_owned(),
            policy,
            connect_timeout: policy.first_byte,
            session_timeout: policy.first_byte,
        }
    }

    /// The same, with `policy`'s retries and its first-byte budget for both steps.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self.connect_timeout = policy.first_byte;
        self.session_timeout = policy.first_byte;
        self
    }

    /// The endpoint with the model.
    pub fn endpoint(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}model={}", self.url, self.model)
    }

    /// Opens a session configured with `session`: handshake (retried on connect errors,
    /// 429 and 5xx), `session.created`, `session.update`.
    pub async fn open(
        &self,
        session: &SessionConfig,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<RealtimeSocket, ProviderError> {
        let mut socket = self.policy.run(|| self.handshake(), on_retry).await?;
        let created = tokio::time::timeout(self.session_timeout, async {
            loop {
                match next_event(&mut socket).await? {
                    Some(ServerEvent::SessionCreated {}) => return Ok(()),
                    Some(ServerEvent::Error { error }) => {
                        return Err(ProviderError::Protocol(format!(
                            "error before session.created: {} ({})",
                            error.message, error.kind
                        )));
                    }
                    Some(_) => {}
                    None => {
                        return Err(ProviderError::Closed {
                            code: 1006,
                            reason: "closed before session.created".into(),
                        });
                    }
                }
            }
        })
        .await;
        match created {
            Ok(result) => result?,
            Err(_) => return Err(ProviderError::FirstByteTimeout(self.session_timeout)),
        }
        let update = ClientEvent::SessionUpdate {
            session: session.clone(),
        };
        send(&mut socket, &update).await?;
        Ok(socket)
    }

    async fn handshake(&self) -> Result<RealtimeSocket, ProviderError> {
        let mut request = self
            .endpoint()
            .into_client_request()
            .map_err(|e| ProviderError::Config(format!("Realtime URL: {e}")))?;
        if let Some(key) = &self.api_key {
            let auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ProviderError::Config("the Realtime key has invalid characters".into())
            })?;
            request.headers_mut().insert("Authorization", auth);
        }
        request
            .headers_mut()
            .insert("OpenAI-Beta", HeaderValue::from_static("realtime=v1"));
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(err)) => Err(crate::providers::ws_handshake_error(err)),
            Err(_) => Err(ProviderError::FirstByteTimeout(self.connect_timeout)),
        }
    }
}

/// Sends one client event.
pub async fn send<S>(socket: &mut S, event: &ClientEvent) -> Result<(), ProviderError>
where
    S: SinkExt<Message, Error = tungstenite::Error> + Unpin,
{
    socket
        .send(Message::text(event.to_json()))
        .await
        .map_err(|e| ProviderError::Connect(format!("sending to Realtime: {e}")))
}

/// The next server event; `None` once the server closed normally. A close with an error code
/// is [`ProviderError::Closed`]; a frame that is not a server event is a protocol error.
pub async fn next_event<S>(socket: &mut S) -> Result<Option<ServerEvent>, ProviderError>
where
    S: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        let Some(message) = socket.next().await else {
            return Ok(None);
        };
        match message {
            Ok(Message::Text(text)) => {
                return ServerEvent::parse(text.as_str()).map(Some).map_err(|e| {
                    ProviderError::Protocol(format!(
                        "Realtime event ({e}): {}",
                        crate::providers::snippet(text.as_str())
                    ))
                });
            }
            Ok(Message::Close(frame)) => {
                return match frame {
                    Some(f) if u16::from(f.code) != 1000 => Err(ProviderError::Closed {
                        code: u16::from(f.code),
                        reason: f.reason.to_string(),
                    }),
                    _ => Ok(None),
                };
            }
            Ok(_) => {} // pings are answered by tungstenite; binary is not part of the protocol
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(None);
            }
            Err(err) => {
                return Err(ProviderError::Closed {
                    code: 1006,
                    reason: err.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_carries_the_model_and_keys_stay_out_of_debug() {
        let c = RealtimeConfig::new(
            "https://api.openai.com/v1/realtime",
            Some("sk-x".into()),
            "gpt-realtime",
            "alloy",
        );
        assert_eq!(
            c.endpoint(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert!(!format!("{c:?}").contains("sk-x"));
    }
}
