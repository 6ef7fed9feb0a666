//! The call as the node recorded it: `GET {node}/internal/calls/{call_sid}`, HMAC-signed with
//! `EDGE_SHARED_SECRET` like every edge → node request (`X-Callgate-Timestamp`,
//! `X-Callgate-Signature` over an empty body).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use shared::stream_token::signed_body::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body};

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// `caller` or `agent` (as the node writes it).
    pub speaker: String,
    /// What was said.
    pub text: String,
}

/// The screening verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screening {
    /// legit / marketing / spam / unknown.
    pub label: String,
    /// One-line intent.
    #[serde(default)]
    pub intent: String,
    /// 0..1.
    pub confidence: f64,
}

/// What `/internal/calls/{call_sid}` returns (fields beyond these are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCallRecord {
    /// The CallSid.
    pub call_sid: String,
    /// screening / receptionist / forward.
    #[serde(default)]
    pub mode: Option<String>,
    /// The call's outcome; `null` while the node is still finishing it.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Turns in order.
    #[serde(default)]
    pub transcript: Vec<TranscriptLine>,
    /// Screening calls only.
    #[serde(default)]
    pub screening: Option<Screening>,
    /// Twilio's last call status as the node knows it.
    #[serde(default)]
    pub status: Option<String>,
    /// The node's own per-reply latency (end of caller speech → first frame sent), ms.
    #[serde(default)]
    pub turn_latency_ms: Vec<u64>,
    /// Problems the node recorded for the call.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The node's HTTP base URL for a stream URL: `wss://h/media/n1` → `https://h`,
/// `ws://127.0.0.1:8080/media` → `http://127.0.0.1:8080`.
pub fn node_base_from_stream_url(stream_url: &str) -> Option<String> {
    let (scheme, rest) = stream_url.split_once("://")?;
    let scheme = match scheme {
        "wss" => "https",
        "ws" => "http",
        "https" | "http" => scheme,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Fetches the node's record of `call_sid`, waiting up to `wait` for it to exist and have an
/// outcome (the status callback reaches the node through the edge, so it lags the hang-up).
pub async fn fetch(
    node_base: &str,
    secret: &[u8],
    call_sid: &str,
    wait: Duration,
) -> anyhow::Result<NodeCallRecord> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!(
        "{}/internal/calls/{call_sid}",
        node_base.trim_end_matches('/')
    );
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let response = client
            .get(&url)
            .header(TIMESTAMP_HEADER, now_s.to_string())
            .header(SIGNATURE_HEADER, sign_body(secret, now_s, b""))
            .send()
            .await
            .with_context(|| format!("GET {url}"));
        let retry = match response {
            Ok(r) if r.status().is_success() => {
                let record: NodeCallRecord = r
                    .json()
                    .await
                    .with_context(|| format!("{url} did not return the call JSON"))?;
                if record.outcome.is_some() || tokio::time::Instant::now() >= deadline {
                    return Ok(record);
                }
                None
            }
            Ok(r) if r.status().as_u16() == 404 => {
                Some(format!("{url} answered 404 (call not recorded)"))
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                bail!(
                    "{url} answered HTTP {status}: {}",
                    body.chars().take(200).collect::<String>()
                )
            }
            Err(e) => Some(format!("{e:#}")),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!(retry.unwrap_or_else(|| format!("{url}: no outcome")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_base_comes_from_the_stream_url() {
        assert_eq!(
            node_base_from_stream_url("wss://voice.example.com/media/iad-1").as_deref(),
            Some("https://voice.example.com")
        );
        assert_eq!(
            node_base_from_stream_url("ws://127.0.0.1:8080/media").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(node_base_from_stream_url("nonsense"), None);
    }

    #[test]
    fn reads_the_documented_shape() {
        let json = r#"{"call_sid":"CA1","mode":"screening","outcome":"message_taken",
            "transcript":[{"speaker":"agent","text":"Hi"},{"speaker":"caller","text":"Yo"}],
            "screening":{"label":"legit","intent":"dentist","confidence":0.9},"extra":1}"#;
        let record: NodeCallRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.transcript.len(), 2);
        assert_eq!(record.screening.unwrap().label, "legit");
        let bare: NodeCallRecord =
            serde_json::from_str(r#"{"call_sid":"CA1","screening":null}"#).unwrap();
        assert_eq!(bare.outcome, None);
    }
}
