//! Delivery of validated Twilio callbacks to a voice node's `/internal/events`.
//!
//! The envelope is `shared::forwarded::ForwardedEvent` (JSON), signed with
//! `shared::stream_token::sign_body` in `X-Callgate-Timestamp` / `X-Callgate-Signature`. The
//! event is offered to the nodes in turn until one answers 2xx, `forward_attempts` tries in all:
//! with fewer live nodes than that, the same nodes get it again (a single node slow for one
//! moment, e.g. 500 calls starting at once, must not cost Twilio's status callback). The same
//! idempotency key goes with each try, so a node that applied it but whose answer was lost does
//! no harm when it or another node applies it again (nodes share Postgres and dedupe on the
//! key).

use shared::forwarded::{EVENTS_PATH, ForwardedEvent};
use shared::routing::NodeInfo;
use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body};

use crate::AppState;
use crate::platform::{OutboundMethod, OutboundRequest};

/// Why no node took an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The snapshot (and fallback) lists no available node.
    #[error("no available voice node")]
    NoNodes,
    /// Every try failed; one `id: reason` per try.
    #[error("every node failed: {}", .0.join("; "))]
    AllFailed(Vec<String>),
}

/// Offers `event` to `nodes` in order, round again while tries are left (see the module docs);
/// returns the id of the node that accepted it.
pub async fn deliver(
    state: &AppState,
    nodes: &[&NodeInfo],
    event: &ForwardedEvent,
) -> Result<String, ForwardError> {
    if nodes.is_empty() {
        return Err(ForwardError::NoNodes);
    }
    let body = event.to_json().into_bytes();
    let mut failures = Vec::new();
    let tries = state.config.forward_attempts.max(1);
    for node in nodes.iter().cycle().take(tries) {
        let ts = state.clock.now_s();
        let request = OutboundRequest {
            method: OutboundMethod::Post,
            url: format!("{}{EVENTS_PATH}", node.public_url.trim_end_matches('/')),
            headers: vec![
                ("content-type", "application/json".to_owned()),
                (TIMESTAMP_HEADER, ts.to_string()),
                (
                    SIGNATURE_HEADER,
                    sign_body(&state.config.edge_shared_secret, ts, &body),
                ),
            ],
            body: body.clone(),
            timeout_ms: state.config.node_timeout_ms,
        };
        match state.http.send(request).await {
            Ok(response) if (200..300).contains(&response.status) => {
                tracing::info!(
                    kind = %event.kind,
                    node = %node.id,
                    idempotency_key = %event.idempotency_key,
                    "event forwarded"
                );
                return Ok(node.id.clone());
            }
            Ok(response) => {
                tracing::warn!(kind = %event.kind, node = %node.id, status = response.status, "node refused event");
                failures.push(format!("{}: HTTP {}", node.id, response.status));
            }
            Err(err) => {
                tracing::warn!(kind = %event.kind, node = %node.id, error = %err, "node unreachable for event");
                failures.push(format!("{}: {err}", node.id));
            }
        }
    }
    Err(ForwardError::AllFailed(failures))
}
