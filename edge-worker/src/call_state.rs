//! Asking the node that held a call's stream how the call ended.
//!
//! Twilio requests the `<Connect action>` whenever a stream ends with the caller still on the
//! line: after a node failure, but also when a node's agent finished the call and closed the
//! socket without Twilio REST credentials (local development, the simulator, a REST outage).
//! Before rerouting the caller to another node, the edge asks the previous node; a call it
//! closed with an outcome is hung up instead of being answered a second time.

use shared::form::encode_component;
use shared::forwarded::CALLS_PATH;
use shared::routing::NodeInfo;
use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body};

use crate::AppState;
use crate::platform::{OutboundMethod, OutboundRequest};

/// How the previous node says the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviousNode {
    /// The node's agent ended the call on purpose with this outcome: hang up.
    Finished(String),
    /// The node does not know the call, reports no outcome or a failure, or did not answer:
    /// the stream failed, so fall back.
    Failed,
}

/// Asks `node` for its record of `call_sid`.
pub async fn previous_node(state: &AppState, node: &NodeInfo, call_sid: &str) -> PreviousNode {
    let ts = state.clock.now_s();
    let request = OutboundRequest {
        method: OutboundMethod::Get,
        url: format!(
            "{}{CALLS_PATH}/{}",
            node.public_url.trim_end_matches('/'),
            encode_component(call_sid)
        ),
        headers: vec![
            (TIMESTAMP_HEADER, ts.to_string()),
            (
                SIGNATURE_HEADER,
                sign_body(&state.config.edge_shared_secret, ts, b""),
            ),
            ("accept", "application/json".to_owned()),
        ],
        body: Vec::new(),
        timeout_ms: state.config.node_timeout_ms,
    };
    match state.http.send(request).await {
        Ok(response) if response.status == 200 => outcome_of(&response.body),
        Ok(response) => {
            tracing::warn!(node = %node.id, status = response.status, "previous node has no report of the call");
            PreviousNode::Failed
        }
        Err(err) => {
            tracing::warn!(node = %node.id, error = %err, "previous node unreachable");
            PreviousNode::Failed
        }
    }
}

/// Reads `outcome` from a node's call report; `failed` (the node gave up) counts as a failure.
fn outcome_of(body: &[u8]) -> PreviousNode {
    let outcome = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|report| report.get("outcome")?.as_str().map(str::to_owned));
    match outcome {
        Some(outcome) if outcome != "failed" => PreviousNode::Finished(outcome),
        _ => PreviousNode::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_an_outcome_means_finished() {
        assert_eq!(
            outcome_of(br#"{"call_sid":"CA1","outcome":"message_taken"}"#),
            PreviousNode::Finished("message_taken".into())
        );
    }

    #[test]
    fn no_outcome_failed_outcome_or_garbage_means_failed() {
        for body in [
            &br#"{"call_sid":"CA1","outcome":null}"#[..],
            br#"{"call_sid":"CA1","outcome":"failed"}"#,
            br#"{"call_sid":"CA1"}"#,
            b"not json",
        ] {
            assert_eq!(
                outcome_of(body),
                PreviousNode::Failed,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
