//! Twilio Voice SDK access tokens: HS256 JWTs signed with an API Key secret (twilio.md §5).
//!
//! Built by hand with `hmac` + `sha2` + `base64` because JWT crates pull in dependencies that do
//! not build for `wasm32-unknown-unknown`. The byte layout reproduces twilio-python 9.13.0 exactly
//! (header keys sorted, payload keys in python's insertion order, compact JSON), so tokens can be
//! compared byte-for-byte against the SDK in tests; Twilio itself accepts any key order.
//!
//! ```
//! use shared::access_token::{AccessToken, VoiceGrant, decode_and_verify};
//!
//! let token = AccessToken::new("ACxxx", "SKxxx", "secret", "alice")
//!     .voice_grant(VoiceGrant::new().incoming_allow(true).outgoing_application("APxxx"));
//! let jwt = token.encode(1_700_000_000);
//! let claims = decode_and_verify(&jwt, "secret").unwrap();
//! assert_eq!(claims.grants.identity.as_deref(), Some("alice"));
//! assert!(claims.check_time(1_700_000_100).is_ok());
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Twilio rejects tokens valid for more than 24 hours (errors 20157/20104).
pub const MAX_TTL_SECS: u32 = 86_400;

/// The SDKs' default lifetime.
pub const DEFAULT_TTL_SECS: u32 = 3_600;

/// Why a token could not be built or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// The requested lifetime exceeds Twilio's 24 h limit.
    #[error("token lifetime {0} s exceeds Twilio's maximum of 86400 s")]
    TtlTooLong(u32),
    /// The token is not three dot-separated parts.
    #[error("token is not three dot-separated parts")]
    Malformed,
    /// A part is not unpadded base64url.
    #[error("token {0} is not unpadded base64url")]
    BadBase64(&'static str),
    /// A part is not the expected JSON.
    #[error("token {part} is not valid JSON: {message}")]
    BadJson {
        /// `header` or `payload`.
        part: &'static str,
        /// serde_json's description, for logs.
        message: String,
    },
    /// The header's `alg` is not `HS256` (never trust `none` or another algorithm).
    #[error("unsupported JWT algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The HMAC-SHA256 does not match: wrong secret or tampered token.
    #[error("token signature does not match")]
    BadSignature,
    /// `exp` is not after `now`.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time checked against.
        now: u64,
    },
    /// `nbf` is after `now`.
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The time checked against.
        now: u64,
    },
}

/// Parameters for one token. The secret lives here so [`AccessToken::encode`] needs only "now";
/// `Debug` redacts it.
#[derive(Clone)]
pub struct AccessToken {
    /// `sub`: the Account SID.
    account_sid: String,
    /// `iss` and the prefix of `jti`: the API Key SID.
    api_key_sid: String,
    /// HMAC key: the API Key secret (not the Auth Token).
    api_key_secret: String,
    /// `grants.identity`: the client identity calls are routed to.
    identity: String,
    /// Lifetime added to "now" for `exp`.
    ttl_secs: u32,
    /// `nbf`; python sets it to now by default, node only when given.
    nbf: Option<u64>,
    /// Whether to emit `iat` = now (node/jsonwebtoken do, python does not).
    include_iat: bool,
    /// `twr` header: the Twilio region, when pinned.
    region: Option<String>,
    /// `grants.voice`.
    voice: Option<VoiceGrant>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_key_secret", &"<redacted>")
            .field("identity", &self.identity)
            .field("ttl_secs", &self.ttl_secs)
            .field("nbf", &self.nbf)
            .field("include_iat", &self.include_iat)
            .field("region", &self.region)
            .field("voice", &self.voice)
            .finish()
    }
}

impl AccessToken {
    /// A token for `identity` with the default 1 h lifetime, no `nbf`, no `iat` and no grant.
    pub fn new(
        account_sid: impl Into<String>,
        api_key_sid: impl Into<String>,
        api_key_secret: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        AccessToken {
            account_sid: account_sid.into(),
            api_key_sid: api_key_sid.into(),
            api_key_secret: api_key_secret.into(),
            identity: identity.into(),
            ttl_secs: DEFAULT_TTL_SECS,
            nbf: None,
            include_iat: false,
            region: None,
            voice: None,
        }
    }

    /// Sets the lifetime; more than [`MAX_TTL_SECS`] is refused rather than clamped, because a
    /// silently shorter token would surface later as a confusing client disconnect.
    pub fn ttl(mut self, secs: u32) -> Result<Self, AccessTokenError> {
        if secs > MAX_TTL_SECS {
            return Err(AccessTokenError::TtlTooLong(secs));
        }
        self.ttl_secs = secs;
        Ok(self)
    }

    /// Sets `nbf` (python's default is "now").
    pub fn not_before(mut self, nbf: u64) -> Self {
        self.nbf = Some(nbf);
        self
    }

    /// Emits `iat` = now (Twilio's error docs list it among standard claims; python omits it).
    pub fn issued_at(mut self, include: bool) -> Self {
        self.include_iat = include;
        self
    }

    /// Sets the `twr` header (Twilio region).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the voice grant.
    pub fn voice_grant(mut self, grant: VoiceGrant) -> Self {
        self.voice = Some(grant);
        self
    }

    /// The claims this token will carry when issued at `now` (unix seconds).
    pub fn claims(&self, now: u64) -> Claims {
        Claims {
            jti: format!("{}-{}", self.api_key_sid, now),
            grants: Grants {
                voice: self.voice.clone(),
                identity: Some(self.identity.clone()),
            },
            iss: self.api_key_sid.clone(),
            exp: now.saturating_add(u64::from(self.ttl_secs)),
            nbf: self.nbf,
            iat: self.include_iat.then_some(now),
            sub: self.account_sid.clone(),
        }
    }

    /// Encodes and signs the token issued at `now` (unix seconds).
    pub fn encode(&self, now: u64) -> String {
        let header = Header {
            alg: "HS256".into(),
            cty: Some("twilio-fpa;v=1".into()),
            twr: self.region.clone(),
            typ: Some("JWT".into()),
        };
        sign(&header, &self.claims(now), &self.api_key_secret)
    }
}

/// Free-function form of [`AccessToken::encode`].
pub fn encode(token: &AccessToken, now: u64) -> String {
    token.encode(now)
}

/// JWT header. Fields are declared in sorted order because PyJWT sorts header keys.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Must be `HS256`.
    alg: String,
    /// `twilio-fpa;v=1`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cty: Option<String>,
    /// Region, optional.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    twr: Option<String>,
    /// `JWT`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    typ: Option<String>,
}

fn sign(header: &Header, claims: &Claims, secret: &str) -> String {
    // Serialising these plain structs cannot fail (string keys, no maps with non-string keys).
    let header_json = serde_json::to_vec(header).unwrap_or_default();
    let payload_json = serde_json::to_vec(claims).unwrap_or_default();
    let mut out = URL_SAFE_NO_PAD.encode(header_json);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload_json));
    let signature = hs256(secret, out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    out
}

fn hs256(secret: &str, message: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; an empty tag never verifies.
        Err(_) => Vec::new(),
    }
}

/// Verifies the HS256 signature with `secret` and returns the claims.
///
/// Time is not checked here (this crate has no clock): call [`Claims::check_time`] with "now".
/// Accepts any key order and extra claims (node's `iat`, future fields), so it verifies tokens
/// from either SDK.
pub fn decode_and_verify(token: &str, secret: &str) -> Result<Claims, AccessTokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AccessTokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AccessTokenError::BadBase64("header"))?;
    let header: Header =
        serde_json::from_slice(&header_json).map_err(|e| AccessTokenError::BadJson {
            part: "header",
            message: e.to_string(),
        })?;
    if header.alg != "HS256" {
        return Err(AccessTokenError::UnsupportedAlgorithm(header.alg));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| AccessTokenError::BadBase64("signature"))?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let expected = hs256(
        secret,
        token.as_bytes().get(..signed_len).unwrap_or_default(),
    );
    if expected.is_empty() || !bool::from(expected.as_slice().ct_eq(signature.as_slice())) {
        return Err(AccessTokenError::BadSignature);
    }
    let payload_json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| AccessTokenError::BadBase64("payload"))?;
    serde_json::from_slice(&payload_json).map_err(|e| AccessTokenError::BadJson {
        part: "payload",
        message: e.to_string(),
    })
}

/// The payload of an access token. Field order is python's insertion order (`jti, grants, iss,
/// exp, nbf, sub`), which `serde_json` follows, so encoding matches the SDK byte-for-byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `<API Key SID>-<issued-at>`: unique token id.
    pub jti: String,
    /// What the token allows.
    pub grants: Grants,
    /// The API Key SID that signed it.
    pub iss: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Not-before, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nbf: Option<u64>,
    /// Issued-at, unix seconds (node emits it; optional here).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iat: Option<u64>,
    /// The Account SID.
    pub sub: String,
}

impl Claims {
    /// Checks `nbf <= now < exp`.
    pub fn check_time(&self, now: u64) -> Result<(), AccessTokenError> {
        if now >= self.exp {
            return Err(AccessTokenError::Expired { exp: self.exp, now });
        }
        match self.nbf {
            Some(nbf) if now < nbf => Err(AccessTokenError::NotYetValid { nbf, now }),
            _ => Ok(()),
        }
    }
}

/// `grants`: python emits `voice` before `identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// The Voice grant.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub voice: Option<VoiceGrant>,
    /// The client identity.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identity: Option<String>,
}

/// `grants.voice`: which calls the Voice SDK client may receive and make.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceGrant {
    /// `incoming`: present (with `allow: true`) only when incoming calls are allowed, like python.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub incoming: Option<IncomingGrant>,
    /// `outgoing`: the TwiML App that handles the client's outgoing calls.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outgoing: Option<OutgoingGrant>,
    /// `push_credential_sid` (`CR…`) for mobile push.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub push_credential_sid: Option<String>,
    /// `endpoint_id`, optional.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint_id: Option<String>,
}

impl VoiceGrant {
    /// An empty grant.
    pub fn new() -> Self {
        Self::default()
    }
    /// Allows incoming calls to the identity (`false` omits `incoming`, as python does).
    pub fn incoming_allow(mut self, allow: bool) -> Self {
        self.incoming = allow.then_some(IncomingGrant { allow: true });
        self
    }
    /// Outgoing calls run the TwiML App `application_sid`.
    pub fn outgoing_application(mut self, application_sid: impl Into<String>) -> Self {
        let params = self.outgoing.take().and_then(|o| o.params);
        self.outgoing = Some(OutgoingGrant {
            application_sid: application_sid.into(),
            params,
        });
        self
    }
    /// Parameters delivered with every outgoing call's webhook (only with an application; ignored
    /// otherwise, as python does). Kept in the given order.
    pub fn outgoing_params<K: Into<String>, V: Into<String>>(
        mut self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        if let Some(outgoing) = self.outgoing.as_mut() {
            outgoing.params = Some(OrderedParams(
                params
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ));
        }
        self
    }
    /// Sets `push_credential_sid`.
    pub fn push_credential_sid(mut self, sid: impl Into<String>) -> Self {
        self.push_credential_sid = Some(sid.into());
        self
    }
}

/// `grants.voice.incoming`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingGrant {
    /// Always `true` when present.
    pub allow: bool,
}

/// `grants.voice.outgoing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingGrant {
    /// TwiML App SID (`AP…`).
    pub application_sid: String,
    /// Extra webhook parameters, in order.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub params: Option<OrderedParams>,
}

/// String parameters serialised as a JSON object in insertion order (serde_json's own map sorts
/// keys, python keeps insertion order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedParams(pub Vec<(String, String)>);

impl Serialize for OrderedParams {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for OrderedParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = OrderedParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(OrderedParams(out))
            }
        }
        deserializer.deserialize_map(ParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ttl_over_24_hours() {
        let t = AccessToken::new("AC", "SK", "s", "a");
        assert!(t.clone().ttl(MAX_TTL_SECS).is_ok());
        assert_eq!(
            t.ttl(MAX_TTL_SECS + 1).unwrap_err(),
            AccessTokenError::TtlTooLong(86_401)
        );
    }

    #[test]
    fn debug_redacts_secret() {
        let t = AccessToken::new("AC", "SK", "very-secret", "a");
        assert!(!format!("{t:?}").contains("very-secret"));
    }

    #[test]
    fn time_checks_exp_and_nbf() {
        let t = AccessToken::new("AC", "SK", "s", "a").not_before(100);
        let claims = decode_and_verify(&t.encode(100), "s").unwrap();
        assert_eq!(
            claims.check_time(99),
            Err(AccessTokenError::NotYetValid { nbf: 100, now: 99 })
        );
        assert_eq!(claims.check_time(100), Ok(()));
        assert_eq!(
            claims.check_time(3_700),
            Err(AccessTokenError::Expired {
                exp: 3_700,
                now: 3_700
            })
        );
    }

    #[test]
    fn rejects_alg_none_and_garbage() {
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let token = format!("{none_header}.e30.");
        assert_eq!(
            decode_and_verify(&token, "s"),
            Err(AccessTokenError::UnsupportedAlgorithm("none".into()))
        );
        for bad in ["", ".", "a.b", "a.b.c.d", "!!.e30.x", "e30.e30.e30"] {
            assert!(decode_and_verify(bad, "s").is_err(), "{bad:?}");
        }
    }
}
