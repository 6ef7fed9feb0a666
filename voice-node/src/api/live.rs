//! `WS /api/calls/live`: new calls and transcript turns as they are written, from any node.
//!
//! Triggers (`migrations/0002_live_notify.sql`) `pg_notify('callgate_live', …)` on every call,
//! screening and turn write; one [`LiveHub`] per node LISTENs on one connection and fans the
//! notifications out to its sockets over a broadcast channel. Each socket filters by its tenant
//! scope (and `call_id`), then reads the row it is told about with the same scoped query as the
//! REST endpoints, so nothing out of scope is ever sent.

use std::sync::Once;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use super::calls;
use super::error::ApiError;
use super::session::{self, Session};
use crate::server::AppState;

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "callgate_live";
/// Server pings this often (API.md); the session is re-checked at the same time.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Close code: the session expired or was logged out.
pub const CLOSE_SESSION_ENDED: u16 = 4401;
/// Close code: unknown or other-tenant call.
pub const CLOSE_UNKNOWN_CALL: u16 = 4404;

/// One notification from the triggers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LiveEvent {
    /// The tenant owning the row: the scope filter.
    pub tenant_id: Uuid,
    /// The call it is about.
    pub call_id: Uuid,
    /// `call_started`, `call_updated`, `call_ended` or `turn`.
    pub kind: String,
    /// The turn's `seq` for `turn`.
    pub seq: Option<i32>,
}

/// The node's one LISTEN connection and the channel its sockets subscribe to.
#[derive(Debug)]
pub struct LiveHub {
    /// Fan-out to the sockets; a slow socket lags and skips rather than stalling the others.
    tx: broadcast::Sender<LiveEvent>,
    /// The listener task starts with the first socket, not with the node.
    started: Once,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub {
            tx: broadcast::channel(1024).0,
            started: Once::new(),
        }
    }
}

impl LiveHub {
    /// A receiver of every event, starting the listener task on first use.
    pub fn subscribe(&self, pool: &PgPool) -> broadcast::Receiver<LiveEvent> {
        let rx = self.tx.subscribe();
        self.started.call_once(|| {
            tokio::spawn(listen(pool.clone(), self.tx.clone()));
        });
        rx
    }
}

/// LISTENs until the process ends, reconnecting after a lost connection.
async fn listen(pool: PgPool, tx: broadcast::Sender<LiveEvent>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "LISTEN failed");
                } else {
                    loop {
                        match listener.recv().await {
                            Ok(note) => match serde_json::from_str::<LiveEvent>(note.payload()) {
                                Ok(event) => {
                                    let _ = tx.send(event);
                                }
                                Err(err) => {
                                    tracing::warn!(error = %err, "malformed live notification")
                                }
                            },
                            Err(err) => {
                                tracing::warn!(error = %err, "live listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "live listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Query of the socket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    call_id: Option<String>,
    #[allow(dead_code)] // read by the session extractor
    tenant_id: Option<String>,
}

/// `GET /api/calls/live` (WebSocket upgrade).
pub async fn socket(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<LiveQuery>, QueryRejection>,
    upgrade: Result<IncomingUpgrade, axum::http::StatusCode>,
) -> Result<Response, ApiError> {
    let scope = session.scope()?;
    let Query(query) = query?;
    let call_id = match query.call_id.as_deref() {
        None | Some("") => None,
        Some(id) => Some(Uuid::parse_str(id).ok()),
    };
    // Some(None): a malformed id, closed like an unknown one.
    let unknown_call = match call_id {
        Some(Some(id)) => calls::summary(&state.pool, scope, id).await?.is_none(),
        Some(None) => true,
        None => false,
    };
    let upgrade = upgrade.map_err(|_| ApiError::bad_request("expected a WebSocket upgrade"))?;
    let (response, upgraded) = upgrade
        .upgrade()
        .map_err(|_| ApiError::bad_request("WebSocket upgrade failed"))?;
    let events = state.api.live.subscribe(&state.pool);
    tokio::spawn(async move {
        let Ok(ws) = upgraded.await else { return };
        let filter = Filter {
            scope,
            call_id: call_id.flatten(),
        };
        run(ws, state, session, filter, unknown_call, events).await;
    });
    Ok(response.map(Body::new).into_response())
}

/// Which events a socket carries.
#[derive(Debug, Clone, Copy)]
struct Filter {
    /// None: every tenant (a superadmin).
    scope: Option<Uuid>,
    /// One call's events including turns, or (None) the call-level events of every call.
    call_id: Option<Uuid>,
}

impl Filter {
    fn wants(&self, event: &LiveEvent) -> bool {
        if self.scope.is_some_and(|t| t != event.tenant_id) {
            return false;
        }
        match self.call_id {
            Some(id) => id == event.call_id,
            None => event.kind != "turn",
        }
    }
}

/// The message for `event`, read with the socket's scope; None when the row is gone.
async fn message(
    pool: &PgPool,
    filter: &Filter,
    event: &LiveEvent,
) -> Result<Option<String>, sqlx::Error> {
    let value = if event.kind == "turn" {
        let Some(seq) = event.seq else {
            return Ok(None);
        };
        if calls::summary(pool, filter.scope, event.call_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        calls::turn(pool, event.call_id, seq)
            .await?
            .map(|turn| json!({ "type": "turn", "call_id": event.call_id, "turn": turn }))
    } else {
        calls::summary(pool, filter.scope, event.call_id)
            .await?
            .map(|call| {
                let kind = match event.kind.as_str() {
                    "call_started" => "call_started",
                    _ if !call.is_live() => "call_ended",
                    _ => "call_updated",
                };
                json!({ "type": kind, "call": call })
            })
    };
    Ok(value.map(|v| v.to_string()))
}

async fn run<S>(
    ws: fastwebsockets::WebSocket<S>,
    state: AppState,
    session: Session,
    filter: Filter,
    unknown_call: bool,
    mut events: broadcast::Receiver<LiveEvent>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut read, mut write) = ws.split(tokio::io::split);
    if unknown_call {
        let _ = write
            .write_frame(Frame::close(CLOSE_UNKNOWN_CALL, b"unknown call"))
            .await;
        return;
    }
    // The client sends nothing but control frames; a reader task notices when it leaves.
    read.set_auto_close(false);
    read.set_auto_pong(false);
    let (gone_tx, mut gone) = oneshot::channel::<()>();
    let (pong_tx, mut pongs) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        loop {
            let frame = read
                .read_frame::<_, WebSocketError>(&mut |_| async { Ok(()) })
                .await;
            match frame {
                Ok(frame) if frame.opcode == OpCode::Ping => {
                    let _ = pong_tx.send(frame.payload.to_vec()).await;
                }
                Ok(frame) if frame.opcode == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = gone_tx.send(());
    });
    let mut drain = state.drain.subscribe();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = &mut gone => return,
            Some(payload) = pongs.recv() => {
                if write.write_frame(Frame::pong(Payload::Owned(payload))).await.is_err() {
                    return;
                }
            }
            changed = drain.changed() => {
                if changed.is_err() || state.drain.is_draining() {
                    let _ = write.write_frame(Frame::close(1001, b"node draining")).await;
                    return;
                }
            }
            _ = ping.tick() => {
                if !session_alive(&state.pool, session.session_id).await {
                    let _ = write
                        .write_frame(Frame::close(CLOSE_SESSION_ENDED, b"session ended"))
                        .await;
                    return;
                }
                if write.write_frame(Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b""))).await.is_err() {
                    return;
                }
            }
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "live socket lagged");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if !filter.wants(&event) {
                    continue;
                }
                match message(&state.pool, &filter, &event).await {
                    Ok(Some(text)) => {
                        if write.write_frame(Frame::text(Payload::Owned(text.into_bytes()))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, "live event not sent"),
                }
            }
        }
    }
}

/// Whether the session still exists, is in date and its user enabled.
async fn session_alive(pool: &PgPool, session_id: Uuid) -> bool {
    let idle_limit = chrono::Utc::now() - session::IDLE_TIMEOUT;
    // An open socket is use: it keeps the session from going idle.
    let alive = sqlx::query_scalar::<_, bool>(
        "UPDATE sessions s SET last_seen_at = now() FROM users u
          WHERE s.id = $1 AND u.id = s.user_id AND s.expires_at > now()
            AND s.last_seen_at > $2 AND u.disabled_at IS NULL
      RETURNING true",
    )
    .bind(session_id)
    .bind(idle_limit)
    .fetch_optional(pool)
    .await;
    match alive {
        Ok(found) => found.is_some(),
        // A database hiccup does not end the socket; the next ping asks again.
        Err(_) => true,
    }
}
