//! `X-Twilio-Signature` computation and constant-time validation (twilio.md §1).
//!
//! Twilio signs every webhook with `base64(HMAC-SHA1(auth_token, url + sorted params))`. Three
//! request shapes exist, one validator each:
//!
//! * form POST ([`validate_form`]): URL followed by every decoded key and value, keys sorted by
//!   bytes, the values of a repeated key de-duplicated and sorted (python/node SDK behaviour);
//! * GET webhooks and the Media Streams WebSocket upgrade ([`validate_url`]): the raw URL alone
//!   (for the upgrade, the `wss://` URL of `<Stream url>`);
//! * JSON and other non-form bodies ([`validate_body_sha256`]): the URL alone, which carries a
//!   `bodySHA256` query parameter that must equal the hex SHA-256 of the body.
//!
//! Which URL string Twilio signed is not fully predictable (ports, userinfo, re-encoding; §1.4), so
//! every validator tries the same candidate set as the official SDKs, see [`candidate_urls`]. The
//! URL must be the *raw* public URL (configured origin + request path and query exactly as
//! received); never rebuild it from a parsed query.
//!
//! ```
//! use shared::{form::Form, signature};
//!
//! let form = Form::from_pairs([("CallSid", "CA1"), ("From", "+14155551212")]);
//! let url = "https://example.com/voice";
//! let header = signature::compute("token", url, form.pairs());
//! assert!(signature::validate_form("token", url, &form, Some(&header)).is_ok());
//! assert!(signature::validate_form("other", url, &form, Some(&header)).is_err());
//! ```

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::form::Form;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Length of an HMAC-SHA1 tag; a header decoding to anything else cannot be a signature.
const TAG_LEN: usize = 20;

/// Why a request's signature was refused.
///
/// `Missing` and `Malformed` are client errors that never involved the auth token; `Mismatch`
/// and `BodyHashMismatch` mean the request was not signed by Twilio with this token (or the URL
/// used for validation differs from the one Twilio signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Twilio-Signature` header.
    #[error("X-Twilio-Signature header is missing")]
    Missing,
    /// The header is not padded standard base64 of a 20-byte HMAC-SHA1 tag.
    #[error("X-Twilio-Signature is not base64 of a 20-byte HMAC-SHA1")]
    Malformed,
    /// No candidate URL produced the header's signature.
    #[error("X-Twilio-Signature does not match the request")]
    Mismatch,
    /// The URL has no `bodySHA256` query parameter, so a non-form body cannot be validated.
    #[error("URL has no bodySHA256 query parameter for a non-form body")]
    MissingBodyHash,
    /// The signature is valid but `bodySHA256` is not the SHA-256 of the body received.
    #[error("bodySHA256 does not match the SHA-256 of the body")]
    BodyHashMismatch,
}

/// Computes the signature Twilio would send for `url` and `params`.
///
/// `url` is used byte-for-byte (no port or encoding variants: those are the validators' job).
/// `params` are decoded form pairs in any order; pass `&[]` for GET, WebSocket and JSON requests.
/// Used by validators, by tests, and by the simulator to sign requests it sends.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(tag(auth_token, url, params).unwrap_or_default())
}

/// Validates a form POST: `url` is the public URL Twilio requested (query string included),
/// `form` the decoded body, `header` the `X-Twilio-Signature` value.
pub fn validate_form(
    auth_token: &str,
    url: &str,
    form: &Form,
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let expected = decode_header(header)?;
    if matches_any_candidate(auth_token, url, form.pairs(), &expected) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Validates a request whose body is not a form (JSON webhooks): the signature covers the URL only
/// and the URL's `bodySHA256` parameter must be the lowercase hex SHA-256 of `body`.
///
/// The signature is checked first, so a forged `bodySHA256` is reported as `Mismatch`; only a
/// correctly signed URL whose hash disagrees with the body gives `BodyHashMismatch`.
pub fn validate_body_sha256(
    auth_token: &str,
    url: &str,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let expected = decode_header(header)?;
    let claimed = body_sha256_param(url).ok_or(SignatureError::MissingBodyHash)?;
    if !matches_any_candidate(auth_token, url, &[], &expected) {
        return Err(SignatureError::Mismatch);
    }
    let actual = hex_lower(&sha2::Sha256::digest(body));
    if bool::from(actual.as_bytes().ct_eq(claimed.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

/// Validates a request signed over its URL alone: GET webhooks (parameters in the query string)
/// and the Media Streams WebSocket upgrade (pass the `wss://` URL, see twilio.md §1.5).
pub fn validate_url(
    auth_token: &str,
    url: &str,
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let expected = decode_header(header)?;
    if matches_any_candidate(auth_token, url, &[], &expected) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The URL strings Twilio may have signed for a request seen at `url`, first `url` itself.
///
/// Mirrors the official SDKs (twilio.md §1.4): for the URL as given, and for its WHATWG
/// re-encoding if that differs (node's extra tries, vector V11), try it **without any explicit
/// port** and **with its explicit port, or the scheme's default** (`https`/`wss` 443, `http`/`ws`
/// 80). When the URL carries userinfo (`user:pass@`), the same variants without userinfo are tried
/// too, because Twilio's historic docs say it drops credentials before signing. Duplicates are
/// removed. A URL that does not look like `scheme://authority…` is only tried as given.
pub fn candidate_urls(url: &str) -> Vec<String> {
    let mut bases = vec![url.to_owned()];
    let reencoded = whatwg_reencode(url);
    if reencoded != url {
        bases.push(reencoded);
    }
    let mut out: Vec<String> = vec![url.to_owned()];
    for base in &bases {
        let Some(parts) = UrlParts::split(base) else {
            push_unique(&mut out, base.clone());
            continue;
        };
        let mut userinfo_options = vec![parts.userinfo];
        if parts.userinfo.is_some() {
            userinfo_options.push(None);
        }
        for userinfo in userinfo_options {
            push_unique(&mut out, parts.assemble(userinfo, None));
            if let Some(port) = parts.port.or_else(|| default_port(parts.scheme)) {
                push_unique(&mut out, parts.assemble(userinfo, Some(port)));
            }
        }
    }
    out
}

fn push_unique(out: &mut Vec<String>, candidate: String) {
    if !out.contains(&candidate) {
        out.push(candidate);
    }
}

/// Checks every candidate URL without stopping at the first match, so the time taken does not
/// reveal which variant matched.
fn matches_any_candidate(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    expected: &[u8; TAG_LEN],
) -> bool {
    let mut matched = subtle::Choice::from(0);
    for candidate in candidate_urls(url) {
        if let Some(tag) = tag(auth_token, &candidate, params) {
            matched |= tag.ct_eq(expected);
        }
    }
    matched.into()
}

/// HMAC-SHA1 over `url` + sorted keys and values. `None` only if the HMAC rejects the key length,
/// which HMAC never does; callers treat it as "no match" rather than panicking.
fn tag(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<[u8; TAG_LEN]> {
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    // Sorted by key alone (never by key+value: vector G1), values of a repeated key de-duplicated
    // and sorted like python's `sorted(set(values))` and node's `Array.from(new Set(v)).sort()`.
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        grouped.entry(k.as_str()).or_default().insert(v.as_str());
    }
    for (key, values) in grouped {
        for value in values {
            mac.update(key.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    let bytes = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    if bytes.len() != TAG_LEN {
        return None;
    }
    out.copy_from_slice(&bytes);
    Some(out)
}

/// Decodes the header into the 20 tag bytes. Comparing bytes (not base64 text) means two base64
/// spellings of one tag cannot differ; the STANDARD engine also rejects non-canonical padding.
fn decode_header(header: Option<&str>) -> Result<[u8; TAG_LEN], SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let bytes = STANDARD
        .decode(header.as_bytes())
        .map_err(|_| SignatureError::Malformed)?;
    <[u8; TAG_LEN]>::try_from(bytes.as_slice()).map_err(|_| SignatureError::Malformed)
}

/// The decoded `bodySHA256` query parameter of `url`, if any (first occurrence, like the SDKs).
fn body_sha256_param(url: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn default_port(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some("443")
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some("80")
    } else {
        None
    }
}

/// A URL split just enough to swap its port and userinfo while keeping every other byte as is.
/// Deliberately not a full URL parser: re-serialising through one would normalise the path and
/// query and break the signature (twilio.md §1.7).
struct UrlParts<'a> {
    /// `https`, `wss`, … as written.
    scheme: &'a str,
    /// `user:pass` (without the `@`), if present.
    userinfo: Option<&'a str>,
    /// Host as written, IPv6 brackets included.
    host: &'a str,
    /// Explicit port text after `:` (may be empty for `host:`).
    port: Option<&'a str>,
    /// Everything from the first `/`, `?` or `#` after the authority.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, after_scheme) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let authority_end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(authority_end);
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (host, port) = if host_port.starts_with('[') {
            let close = host_port.find(']')?;
            let (host, after) = host_port.split_at(close + 1);
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return None,
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        Some(UrlParts {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    fn assemble(&self, userinfo: Option<&str>, port: Option<&str>) -> String {
        let mut out =
            String::with_capacity(self.scheme.len() + self.host.len() + self.rest.len() + 16);
        out.push_str(self.scheme);
        out.push_str("://");
        if let Some(userinfo) = userinfo {
            out.push_str(userinfo);
            out.push('@');
        }
        out.push_str(self.host);
        if let Some(port) = port {
            out.push(':');
            out.push_str(port);
        }
        out.push_str(self.rest);
        out
    }
}

/// Percent-encodes the bytes of the query that the WHATWG URL serializer encodes for special
/// schemes (controls, space, `"`, `<`, `>`, `'`, non-ASCII bytes),
/// which is the re-encoding twilio-node applies before its extra validation attempts (V11).
/// Characters already percent-encoded are left alone.
fn whatwg_reencode(url: &str) -> String {
    let Some((before, query_and_fragment)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query_and_fragment.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query_and_fragment, None),
    };
    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(before);
    out.push('?');
    for &b in query.as_bytes() {
        if b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'\'') {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0x0f)]));
        } else {
            out.push(char::from(b));
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `url` with `https://` → `wss://` and `http://` → `ws://` (other schemes unchanged), trailing
/// `/` dropped: the WebSocket form of a public base URL, which is what Twilio signs for a Media
/// Streams upgrade (twilio.md §1.5) and what WebSocket clients connect to.
pub fn websocket_base(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn p1() -> Form {
        Form::from_pairs([
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn accepts_official_vector_v1() {
        assert_eq!(
            compute(TOKEN, URL, p1().pairs()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            validate_form(TOKEN, URL, &p1(), Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampered_param() {
        let mut form = p1();
        form.push("Digits", "9");
        assert_eq!(
            validate_form(TOKEN, URL, &form, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")),
            Err(SignatureError::Mismatch)
        );
        let changed = Form::from_pairs(
            p1().iter()
                .map(|(k, v)| (k, if k == "To" { "+18005551213" } else { v })),
        );
        assert_eq!(
            validate_form(TOKEN, URL, &changed, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_tampered_url_query() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            validate_form(TOKEN, url, &p1(), Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_signature_from_other_auth_token() {
        let header = compute("other-token", URL, p1().pairs());
        assert_eq!(
            validate_form(TOKEN, URL, &p1(), Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_missing_header() {
        assert_eq!(
            validate_form(TOKEN, URL, &p1(), None),
            Err(SignatureError::Missing)
        );
        assert_eq!(validate_url(TOKEN, URL, None), Err(SignatureError::Missing));
        assert_eq!(
            validate_body_sha256(TOKEN, URL, b"{}", None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        for header in [
            "",
            "not base64!",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
            "AAAA",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8==",
        ] {
            assert_eq!(
                validate_form(TOKEN, URL, &p1(), Some(header)),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn accepts_https_request_signed_with_explicit_443() {
        let header = compute(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            p1().pairs(),
        );
        assert_eq!(validate_form(TOKEN, URL, &p1(), Some(&header)), Ok(()));
    }

    #[test]
    fn accepts_request_seen_with_port_signed_without() {
        let seen = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        let header = compute(TOKEN, URL, p1().pairs());
        assert_eq!(validate_form(TOKEN, seen, &p1(), Some(&header)), Ok(()));
    }

    #[test]
    fn accepts_nonstandard_port_kept_in_signature() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let header = compute(TOKEN, url, p1().pairs());
        assert_eq!(validate_form(TOKEN, url, &p1(), Some(&header)), Ok(()));
    }

    #[test]
    fn does_not_accept_a_different_nondefault_port() {
        let signed = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let seen = "https://mycompany.com:4321/myapp.php?foo=1&bar=2";
        let header = compute(TOKEN, signed, p1().pairs());
        assert_eq!(
            validate_form(TOKEN, seen, &p1(), Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn websocket_upgrade_is_signed_over_wss_url_with_default_port_variant() {
        let header = compute(TOKEN, "wss://mycompany.com:443/media", &[]);
        assert_eq!(
            validate_url(TOKEN, "wss://mycompany.com/media", Some(&header)),
            Ok(())
        );
        let https = compute(TOKEN, "https://mycompany.com/media", &[]);
        assert_eq!(
            validate_url(TOKEN, "wss://mycompany.com/media", Some(&https)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn candidates_cover_port_and_userinfo_variants() {
        assert_eq!(
            candidate_urls("https://u:p@h.com:8080/x?y=1"),
            vec![
                "https://u:p@h.com:8080/x?y=1",
                "https://u:p@h.com/x?y=1",
                "https://h.com/x?y=1",
                "https://h.com:8080/x?y=1",
            ]
        );
        assert_eq!(
            candidate_urls("http://[::1]/x"),
            vec!["http://[::1]/x", "http://[::1]:80/x"]
        );
        assert_eq!(candidate_urls("not a url"), vec!["not a url"]);
        assert_eq!(
            candidate_urls("https://h.com?a='"),
            vec![
                "https://h.com?a='",
                "https://h.com:443?a='",
                "https://h.com?a=%27",
                "https://h.com:443?a=%27",
            ]
        );
    }

    #[test]
    fn body_hash_requires_bodysha256_param() {
        let header = compute(TOKEN, URL, &[]);
        assert_eq!(
            validate_body_sha256(TOKEN, URL, b"{}", Some(&header)),
            Err(SignatureError::MissingBodyHash)
        );
    }

    #[test]
    fn rejects_body_that_does_not_match_signed_hash() {
        let url = "https://mycompany.com/myapp.php?bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let header = compute(TOKEN, url, &[]);
        assert_eq!(
            validate_body_sha256(TOKEN, url, b"{}", Some(&header)),
            Ok(())
        );
        assert_eq!(
            validate_body_sha256(TOKEN, url, b"{ }", Some(&header)),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn never_panics_on_odd_urls() {
        for url in [
            "",
            "://",
            "https://",
            "https://[",
            "https://[::1",
            "https://[::1]x/",
            "a://@:",
            "ws://h:/p",
            "https://h.com?é\u{0}",
        ] {
            let _ = candidate_urls(url);
            let _ = validate_url(TOKEN, url, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
            let _ = validate_body_sha256(TOKEN, url, b"", Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        }
    }

    #[test]
    fn websocket_base_maps_http_schemes() {
        assert_eq!(
            websocket_base("https://voice.example.com/"),
            "wss://voice.example.com"
        );
        assert_eq!(
            websocket_base("http://127.0.0.1:8080"),
            "ws://127.0.0.1:8080"
        );
        assert_eq!(
            websocket_base("wss://api.deepgram.com"),
            "wss://api.deepgram.com"
        );
    }
}
