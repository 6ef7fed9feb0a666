//! The edge-issued stream token, and HMAC signing of edge ↔ node HTTP bodies.
//!
//! Both use `EDGE_SHARED_SECRET`, the one key edge and nodes share. Configure at least 32
//! random bytes: this module does not refuse short keys, because an empty key is a deployment
//! mistake for config loading to catch, not a per-request error.
//!
//! # Stream tokens
//!
//! A node accepts a Media Stream only if the edge routed it there. When the edge answers a call
//! with `<Connect><Stream>` it adds `<Parameter name="token" value="…">` holding a token from
//! [`issue`]; Twilio hands it back in the stream's `start.customParameters`, and the node calls
//! [`verify`] before accepting audio. A socket nobody routed, a replay after expiry, or a stream
//! meant for another node is refused.
//!
//! Format: `base64url(JSON claims) "." base64url(HMAC-SHA256(key, "callgate-stream-token-v1." +
//! payload))`, both without padding, so it fits a TwiML attribute and a URL path unescaped. The
//! MAC covers a context label so a tag made for one purpose (say, a signed body) can never pass
//! as another.
//!
//! ```
//! use shared::domain::CallMode;
//! use shared::stream_token::{issue, verify, StreamClaims};
//! let claims = StreamClaims {
//!     call_sid: "CA1".into(), tenant_id: "t1".into(), node_id: "iad-1".into(),
//!     mode: CallMode::Screening, expires_at: 1_000_060,
//! };
//! let token = issue(&claims, b"edge shared secret");
//! assert_eq!(verify(&token, b"edge shared secret", 1_000_000, Some("iad-1")), Ok(claims));
//! ```
//!
//! # Signed bodies
//!
//! See [`signed_body`]: forwarded Twilio events and snapshot pulls carry
//! `X-Callgate-Timestamp` and `X-Callgate-Signature` headers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::CallMode;

type HmacSha256 = Hmac<Sha256>;

/// Domain-separation label for stream token MACs; bump the version to change the format.
const TOKEN_CONTEXT: &[u8] = b"callgate-stream-token-v1.";

/// Tokens longer than this are refused before any decoding (real ones are ~250 bytes), so a
/// hostile `start` message cannot make the node hash or parse megabytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// Why a stream token was refused. Each case has its own variant so the node can log (and
/// count) which attack or misconfiguration it is seeing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamTokenError {
    /// Not `payload.tag`, not base64url, too long, or the signed payload is not valid claims.
    #[error("stream token is malformed")]
    Malformed,
    /// The tag does not match: forged, tampered with, or signed with another key.
    #[error("stream token signature does not match")]
    BadSignature,
    /// Genuine but past `expires_at` (a replayed or very late stream).
    #[error("stream token expired at {expires_at}")]
    Expired {
        /// When it expired (unix seconds).
        expires_at: u64,
    },
    /// Genuine but issued for another node (Fly's proxy delivered the socket elsewhere; the
    /// node should `fly-replay` it to the right one rather than refuse the call).
    #[error("stream token is for node {token_node:?}")]
    WrongNode {
        /// The node the edge chose.
        token_node: String,
    },
}

/// What the edge vouches for about a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClaims {
    /// The call the stream must belong to; the node checks it against `start.callSid`.
    pub call_sid: String,
    /// The tenant the edge resolved from the called number, so the node need not look it up
    /// before answering.
    pub tenant_id: String,
    /// The node the edge routed the stream to.
    pub node_id: String,
    /// The flow to run, as resolved at the edge.
    pub mode: CallMode,
    /// Unix seconds after which the token is void. Twilio opens the socket within seconds of
    /// the TwiML, so a minute or two is plenty.
    pub expires_at: u64,
}

/// Signs `claims` into a token.
pub fn issue(claims: &StreamClaims, key: &[u8]) -> String {
    // Serializing plain strings, an enum and an integer cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = URL_SAFE_NO_PAD.encode(json);
    let tag = token_mac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

/// Checks a token and returns its claims.
///
/// Order of checks: shape, then signature (in constant time), then expiry (`now >=
/// expires_at` is expired), then node (when `expected_node` is given). Claims are only parsed
/// after the signature holds, so unauthenticated input never reaches the JSON parser.
pub fn verify(
    token: &str,
    key: &[u8],
    now: u64,
    expected_node: Option<&str>,
) -> Result<StreamClaims, StreamTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(StreamTokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(StreamTokenError::Malformed)?;
    if payload.is_empty() || tag.contains('.') {
        return Err(StreamTokenError::Malformed);
    }
    let mut tag_bytes = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_bytes) {
        Ok(32) => {}
        _ => return Err(StreamTokenError::Malformed),
    }
    token_mac(key, payload.as_bytes())
        .verify_slice(&tag_bytes)
        .map_err(|_| StreamTokenError::BadSignature)?;

    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| StreamTokenError::Malformed)?;
    let claims: StreamClaims =
        serde_json::from_slice(&json).map_err(|_| StreamTokenError::Malformed)?;
    if now >= claims.expires_at {
        return Err(StreamTokenError::Expired {
            expires_at: claims.expires_at,
        });
    }
    if let Some(node) = expected_node
        && claims.node_id != node
    {
        return Err(StreamTokenError::WrongNode {
            token_node: claims.node_id,
        });
    }
    Ok(claims)
}

fn token_mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(key);
    mac.update(TOKEN_CONTEXT);
    mac.update(payload);
    mac
}

/// HMAC accepts keys of any length, so this never fails; the fallback keeps the no-panic
/// promise without an `unwrap`.
fn new_mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => HmacSha256::new(&Default::default()),
    }
}

/// HMAC signing of edge ↔ node HTTP requests: events the edge forwards to a node (status,
/// recording and SMS callbacks) and the edge's pulls of the routing snapshot.
///
/// The sender puts the current unix time in [`TIMESTAMP_HEADER`] and
/// [`sign_body`]`(key, timestamp, body)` in [`SIGNATURE_HEADER`]; the receiver calls
/// [`verify_body`] with both header values, the raw body and its own clock. The MAC covers the
/// timestamp, so a captured request can only be replayed within the skew window; receivers
/// should also be idempotent (callbacks are keyed on Twilio SIDs). A `GET` signs an empty body.
///
/// ```
/// use shared::stream_token::signed_body::{sign_body, verify_body};
/// let sig = sign_body(b"secret", 1_700_000_000, b"{}");
/// assert!(verify_body(b"secret", "1700000000", &sig, b"{}", 1_700_000_030, 300).is_ok());
/// ```
pub mod signed_body {
    use super::*;

    /// Header carrying the signing time, decimal unix seconds.
    pub const TIMESTAMP_HEADER: &str = "X-Callgate-Timestamp";

    /// Header carrying [`sign_body`]'s lowercase hex HMAC-SHA256.
    pub const SIGNATURE_HEADER: &str = "X-Callgate-Signature";

    /// A sensible `max_skew_s` for [`verify_body`]: clocks on Fly and Cloudflare are
    /// NTP-synced, so five minutes leaves room for retries without a long replay window.
    pub const DEFAULT_MAX_SKEW_S: u64 = 300;

    /// Domain-separation label, so a body signature can never be used as a stream token tag.
    const BODY_CONTEXT: &[u8] = b"callgate-body-v1.";

    /// Why a signed request was refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum SignedBodyError {
        /// The timestamp header is absent, empty or not decimal unix seconds.
        #[error("{TIMESTAMP_HEADER} is missing or not unix seconds")]
        BadTimestamp,
        /// The timestamp is further from the receiver's clock than the allowed skew.
        #[error("{TIMESTAMP_HEADER} is {skew_s} s away from now")]
        Skewed {
            /// Absolute difference between the header and now.
            skew_s: u64,
        },
        /// The signature header is absent or not 64 hex digits.
        #[error("{SIGNATURE_HEADER} is missing or not hex HMAC-SHA256")]
        MalformedSignature,
        /// The signature does not match the body and timestamp under our key.
        #[error("{SIGNATURE_HEADER} does not match")]
        BadSignature,
    }

    /// Lowercase hex HMAC-SHA256 of `body` under `key`: the generic primitive, for callers
    /// that sign something other than a timestamped body.
    pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
        let mut mac = new_mac(key);
        mac.update(body);
        hex(&mac.finalize().into_bytes())
    }

    /// Checks a [`hmac_sha256_hex`] value in constant time.
    pub fn verify_hmac_sha256_hex(key: &[u8], body: &[u8], signature_hex: &str) -> bool {
        let Some(tag) = unhex32(signature_hex) else {
            return false;
        };
        let mut mac = new_mac(key);
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    }

    /// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (unix seconds, also sent
    /// in [`TIMESTAMP_HEADER`]).
    pub fn sign_body(key: &[u8], timestamp: u64, body: &[u8]) -> String {
        hex(&body_mac(key, timestamp, body).finalize().into_bytes())
    }

    /// Checks a signed request: `timestamp` and `signature` are the raw header values (pass
    /// `""` for an absent header; it is refused like any malformed one), `now` the receiver's
    /// unix time, `max_skew_s` the accepted clock difference either way.
    pub fn verify_body(
        key: &[u8],
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: u64,
        max_skew_s: u64,
    ) -> Result<(), SignedBodyError> {
        let ts = parse_unix_seconds(timestamp).ok_or(SignedBodyError::BadTimestamp)?;
        let skew_s = now.abs_diff(ts);
        if skew_s > max_skew_s {
            return Err(SignedBodyError::Skewed { skew_s });
        }
        let tag = unhex32(signature).ok_or(SignedBodyError::MalformedSignature)?;
        body_mac(key, ts, body)
            .verify_slice(&tag)
            .map_err(|_| SignedBodyError::BadSignature)
    }

    fn body_mac(key: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
        let mut mac = new_mac(key);
        mac.update(BODY_CONTEXT);
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    fn parse_unix_seconds(s: &str) -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }

    fn hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for &b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
        }
        out
    }

    /// Decodes exactly 64 hex digits (either case). Not constant-time, but it only reveals
    /// the signature's *format*, which is public.
    fn unhex32(s: &str) -> Option<[u8; 32]> {
        let s = s.trim().as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(out)
    }
}

pub use signed_body::{
    SIGNATURE_HEADER, SignedBodyError, TIMESTAMP_HEADER, hmac_sha256_hex, sign_body, verify_body,
    verify_hmac_sha256_hex,
};

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> StreamClaims {
        StreamClaims {
            call_sid: "CA45397943c1c7a49f7b7713c230107a39".into(),
            tenant_id: "6f1c2a4e-8b7d-4c1e-9a3f-2d5e7b9c1a01".into(),
            node_id: "iad-1".into(),
            mode: CallMode::Receptionist,
            expires_at: NOW + 120,
        }
    }

    /// Flips one character of the token at `index` to another base64url character.
    fn tamper(token: &str, index: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn round_trips_claims() {
        let token = issue(&claims(), KEY);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        assert_eq!(verify(&token, KEY, NOW, Some("iad-1")), Ok(claims()));
        assert_eq!(verify(&token, KEY, NOW, None), Ok(claims()));
    }

    #[test]
    fn rejects_expired_token_at_and_after_expiry() {
        let token = issue(&claims(), KEY);
        assert_eq!(verify(&token, KEY, NOW + 119, None), Ok(claims()));
        for now in [NOW + 120, NOW + 10_000] {
            assert_eq!(
                verify(&token, KEY, now, None),
                Err(StreamTokenError::Expired {
                    expires_at: NOW + 120
                })
            );
        }
    }

    #[test]
    fn rejects_tampered_payload() {
        let token = issue(&claims(), KEY);
        for i in [0, 5, token.find('.').unwrap() - 1] {
            assert_eq!(
                verify(&tamper(&token, i), KEY, NOW, None),
                Err(StreamTokenError::BadSignature)
            );
        }
        // Re-encoding different claims under the old tag fails too.
        let mut other = claims();
        other.node_id = "lhr-1".into();
        let forged_payload = issue(&other, KEY).split_once('.').unwrap().0.to_owned();
        let tag = token.split_once('.').unwrap().1;
        assert_eq!(
            verify(&format!("{forged_payload}.{tag}"), KEY, NOW, None),
            Err(StreamTokenError::BadSignature)
        );
    }

    #[test]
    fn rejects_tampered_tag() {
        let token = issue(&claims(), KEY);
        let dot = token.find('.').unwrap();
        assert_eq!(
            verify(&tamper(&token, dot + 1), KEY, NOW, None),
            Err(StreamTokenError::BadSignature)
        );
    }

    #[test]
    fn rejects_token_signed_with_other_key() {
        let token = issue(&claims(), b"another edge's secret");
        assert_eq!(
            verify(&token, KEY, NOW, None),
            Err(StreamTokenError::BadSignature)
        );
    }

    #[test]
    fn rejects_token_for_another_node() {
        let token = issue(&claims(), KEY);
        assert_eq!(
            verify(&token, KEY, NOW, Some("lhr-1")),
            Err(StreamTokenError::WrongNode {
                token_node: "iad-1".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_tokens() {
        let token = issue(&claims(), KEY);
        let (payload, tag) = token.split_once('.').unwrap();
        for bad in [
            String::new(),
            ".".into(),
            payload.to_owned(),
            format!("{payload}."),
            format!(".{tag}"),
            format!("{token}.{tag}"),
            format!("{payload}.{}", &tag[1..]),
            format!("{payload}.{tag}A"),
            format!(
                "{payload}.{}",
                tag.replace(|c: char| c.is_alphanumeric(), "+")
            ),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                verify(&bad, KEY, NOW, None),
                Err(StreamTokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn genuine_tag_over_non_claims_payload_is_malformed_not_accepted() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"call_sid":"CA1"}"#);
        let tag =
            URL_SAFE_NO_PAD.encode(token_mac(KEY, payload.as_bytes()).finalize().into_bytes());
        assert_eq!(
            verify(&format!("{payload}.{tag}"), KEY, NOW, None),
            Err(StreamTokenError::Malformed)
        );
    }

    #[test]
    fn body_signature_round_trips_within_skew() {
        let body = br#"{"CallSid":"CA1","CallStatus":"completed"}"#;
        let sig = sign_body(KEY, NOW, body);
        assert_eq!(sig.len(), 64);
        for now in [NOW - 300, NOW, NOW + 300] {
            assert_eq!(
                verify_body(KEY, &NOW.to_string(), &sig, body, now, 300),
                Ok(())
            );
        }
        assert_eq!(
            verify_body(KEY, &NOW.to_string(), &sig.to_uppercase(), body, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn body_signature_rejects_skew_tampering_and_other_keys() {
        let body = b"To=%2B14155550100";
        let ts = NOW.to_string();
        let sig = sign_body(KEY, NOW, body);
        assert_eq!(
            verify_body(KEY, &ts, &sig, body, NOW + 301, 300),
            Err(SignedBodyError::Skewed { skew_s: 301 })
        );
        assert_eq!(
            verify_body(KEY, &ts, &sig, b"To=%2B14155550101", NOW, 300),
            Err(SignedBodyError::BadSignature)
        );
        // Moving the timestamp breaks the signature even when it is within the window.
        assert_eq!(
            verify_body(KEY, &(NOW + 1).to_string(), &sig, body, NOW, 300),
            Err(SignedBodyError::BadSignature)
        );
        assert_eq!(
            verify_body(b"other", &ts, &sig, body, NOW, 300),
            Err(SignedBodyError::BadSignature)
        );
        for bad_ts in ["", "abc", "-5", "1e9", "99999999999999999999999"] {
            assert_eq!(
                verify_body(KEY, bad_ts, &sig, body, NOW, 300),
                Err(SignedBodyError::BadTimestamp),
                "{bad_ts}"
            );
        }
        for bad_sig in ["", "zz", &sig[..63], &format!("{sig}0"), &"g".repeat(64)] {
            assert_eq!(
                verify_body(KEY, &ts, bad_sig, body, NOW, 300),
                Err(SignedBodyError::MalformedSignature),
                "{bad_sig}"
            );
        }
    }

    #[test]
    fn generic_hmac_hex_matches_rfc_4231_case_2() {
        let sig = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_hmac_sha256_hex(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_hmac_sha256_hex(
            b"Jefe",
            b"what do ya want for nothing!",
            &sig
        ));
        assert!(!verify_hmac_sha256_hex(b"Jefe", b"", "not hex"));
    }
}
