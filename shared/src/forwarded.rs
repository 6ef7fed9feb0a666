//! The envelope in which the edge forwards Twilio callbacks to a voice node.
//!
//! Status, stream-status, recording and SMS callbacks (and the `<Dial action>` outcome, which
//! starts the text-back) reach the edge, which checks their Twilio signature and hands them to a
//! voice node's [`EVENTS_PATH`] as one JSON [`ForwardedEvent`]. The body is signed with
//! [`crate::stream_token::sign_body`] (headers `X-Callgate-Timestamp`, `X-Callgate-Signature`),
//! so the node trusts the fields without the Twilio auth token and without re-deriving the URL
//! Twilio signed.
//!
//! The envelope carries the validated form **as pairs**, not as typed structs: the node parses
//! them with [`crate::webhook`] exactly as if Twilio had posted to it, so a field Twilio adds
//! tomorrow reaches the node even through an edge that predates it.
//!
//! Retried callbacks must be applied once: [`ForwardedEvent::idempotency_key`] is Twilio's
//! `I-Twilio-Idempotency-Token` header when present, else [`body_idempotency_key`] (a SHA-256 of
//! the kind and the raw body, identical for identical retries). Nodes keep the keys they applied.
//!
//! ```
//! use shared::forwarded::{EventKind, ForwardedEvent};
//! use shared::form::Form;
//!
//! let form = Form::from_pairs([("CallSid", "CA1"), ("CallStatus", "completed")]);
//! let event = ForwardedEvent::new(EventKind::CallStatus, "tok-1".into(), 1_800_000_000, &form);
//! let back = ForwardedEvent::from_json(&event.to_json()).unwrap();
//! assert_eq!(back.form().get("CallStatus"), Some("completed"));
//! assert_eq!(back.kind.as_str(), "call_status");
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::form::Form;

/// Path on a voice node that receives forwarded events (POST, JSON, signed body).
pub const EVENTS_PATH: &str = "/internal/events";

/// Path on a voice node that serves the routing snapshot (GET, signed empty body).
pub const ROUTING_SNAPSHOT_PATH: &str = "/internal/routing-snapshot";

/// Prefix of the path on a voice node that reports one call (GET `{CALLS_PATH}/{call_sid}`, signed
/// empty body): the edge asks it whether a stream that ended was ended on purpose, and
/// `voice-node simulate` prints it.
pub const CALLS_PATH: &str = "/internal/calls";

/// The header Twilio puts on webhook requests (retries included) to let receivers de-duplicate.
pub const TWILIO_IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";

/// Which Twilio callback an event came from; decides which [`crate::webhook`] type the node
/// parses [`ForwardedEvent::fields`] as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `/telephony/status`: [`crate::webhook::CallStatusCallback`].
    CallStatus,
    /// `/telephony/stream-status`: [`crate::webhook::StreamStatusCallback`].
    StreamStatus,
    /// `/telephony/recording`: [`crate::webhook::RecordingStatusCallback`].
    Recording,
    /// `/sms/inbound`: [`crate::webhook::IncomingSms`].
    Sms,
    /// `/telephony/dial-result`: [`crate::webhook::DialActionRequest`]; on a missed call the
    /// node starts the text-back.
    DialResult,
    /// `/sms/status`: [`crate::webhook::SmsStatusCallback`], an outbound message's delivery.
    SmsStatus,
}

impl EventKind {
    /// Every kind, for exhaustive tests.
    pub const ALL: &'static [EventKind] = &[
        EventKind::CallStatus,
        EventKind::StreamStatus,
        EventKind::Recording,
        EventKind::Sms,
        EventKind::DialResult,
        EventKind::SmsStatus,
    ];

    /// The JSON spelling (`call_status`, …), also used in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::CallStatus => "call_status",
            EventKind::StreamStatus => "stream_status",
            EventKind::Recording => "recording",
            EventKind::Sms => "sms",
            EventKind::DialResult => "dial_result",
            EventKind::SmsStatus => "sms_status",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Twilio callback, validated by the edge, on its way to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedEvent {
    /// Which callback this is.
    pub kind: EventKind,
    /// Same value for every delivery of the same callback (Twilio retries, edge retries to
    /// another node): the node applies an event once per key.
    pub idempotency_key: String,
    /// When the edge received it (unix seconds): Twilio's own timestamps are absent on some
    /// callbacks and use two date formats on others.
    pub received_at: u64,
    /// The tenant whose number the edge matched, when it matched one: saves the node a lookup
    /// and tells it which tenant an SMS thread belongs to. `None` when no number matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The Twilio form fields exactly as validated, in wire order (repeated keys kept).
    pub fields: Vec<(String, String)>,
}

/// Why an envelope could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedEventError {
    /// Not JSON, or not shaped like an envelope.
    #[error("malformed forwarded event: {0}")]
    Malformed(String),
}

impl ForwardedEvent {
    /// An envelope for `form`, with no tenant (see [`ForwardedEvent::with_tenant`]).
    pub fn new(kind: EventKind, idempotency_key: String, received_at: u64, form: &Form) -> Self {
        ForwardedEvent {
            kind,
            idempotency_key,
            received_at,
            tenant_id: None,
            fields: form.pairs().to_vec(),
        }
    }

    /// Sets the tenant the edge resolved.
    pub fn with_tenant(mut self, tenant_id: Option<String>) -> Self {
        self.tenant_id = tenant_id;
        self
    }

    /// The fields as a [`Form`], ready for [`crate::webhook::FromForm::from_form`].
    pub fn form(&self) -> Form {
        Form::from_pairs(self.fields.iter().cloned())
    }

    /// The JSON body the edge signs and sends.
    pub fn to_json(&self) -> String {
        // Strings, an enum and an integer: serialization cannot fail; the fallback keeps the
        // no-panic promise without an `unwrap`.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a body received by the node (after its signature was checked).
    pub fn from_json(text: &str) -> Result<Self, ForwardedEventError> {
        serde_json::from_str(text).map_err(|e| ForwardedEventError::Malformed(e.to_string()))
    }
}

/// The idempotency key for a callback that came without Twilio's token: `sha256:` and the hex
/// SHA-256 of the kind and the raw body. Twilio's retries repeat the body byte for byte, so they
/// get the same key; two distinct callbacks differ at least in a SID, status or sequence number.
pub fn body_idempotency_key(kind: EventKind, raw_body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(kind.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(raw_body);
    let digest = hash.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    out
}

/// The key to use for a callback: Twilio's token when it sent a non-empty one, else the body
/// hash.
pub fn idempotency_key(kind: EventKind, twilio_token: Option<&str>, raw_body: &[u8]) -> String {
    match twilio_token.map(str::trim) {
        Some(token) if !token.is_empty() => token.to_owned(),
        _ => body_idempotency_key(kind, raw_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *kind);
        }
    }

    #[test]
    fn envelope_round_trips_with_repeated_keys_and_tenant() {
        let form = Form::from_pairs([("A", "1"), ("A", "2"), ("Body", "hi & bye")]);
        let event = ForwardedEvent::new(EventKind::Sms, "k".into(), 7, &form)
            .with_tenant(Some("t1".into()));
        let back = ForwardedEvent::from_json(&event.to_json()).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.form(), form);
        assert!(ForwardedEvent::from_json("{}").is_err());
    }

    #[test]
    fn body_key_is_stable_and_separates_kinds_and_bodies() {
        let a = body_idempotency_key(EventKind::CallStatus, b"CallSid=CA1");
        assert_eq!(
            a,
            body_idempotency_key(EventKind::CallStatus, b"CallSid=CA1")
        );
        assert_ne!(
            a,
            body_idempotency_key(EventKind::Recording, b"CallSid=CA1")
        );
        assert_ne!(
            a,
            body_idempotency_key(EventKind::CallStatus, b"CallSid=CA2")
        );
        assert!(a.starts_with("sha256:") && a.len() == 71);
    }

    #[test]
    fn twilio_token_wins_unless_blank() {
        let body = b"x=1";
        assert_eq!(idempotency_key(EventKind::Sms, Some("tok"), body), "tok");
        for blank in [None, Some(""), Some("  ")] {
            assert_eq!(
                idempotency_key(EventKind::Sms, blank, body),
                body_idempotency_key(EventKind::Sms, body)
            );
        }
    }
}
