//! Twilio's HTTP side: the voice-request parameters of one call, and a client that signs every
//! request with `X-Twilio-Signature` exactly as Twilio does (reference/twilio.md §1.1–1.2).
//!
//! Twilio signs the URL *as configured* (the edge's public URL, or the absolute URL a TwiML
//! `action` names), but the simulator may reach the edge at another address (a local port). So a
//! request has a public URL, which is signed, and a transport URL, where it is sent: every URL
//! under `--public-base-url` is rewritten onto `--edge`.

use std::time::Duration;

use anyhow::Context;
use shared::form::Form;
use tokio::time::Instant;

use super::ids;

/// Twilio's webhook timeout: it gives up on a response after 15 s (twilio.md §2).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// Who the call is: the values every voice request repeats.
#[derive(Debug, Clone)]
pub struct CallIdentity {
    /// `AC…`: the account the call belongs to.
    pub account_sid: String,
    /// `CA…`: the call.
    pub call_sid: String,
    /// The caller, E.164.
    pub from: String,
    /// The called number, E.164 (the tenant's number).
    pub to: String,
}

impl CallIdentity {
    /// A new call from `from` to `to` with a fresh CallSid.
    pub fn new(account_sid: &str, from: &str, to: &str) -> Self {
        Self {
            account_sid: account_sid.to_owned(),
            call_sid: ids::sid("CA"),
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    /// The base voice-request parameters (twilio.md §2.1) with `CallStatus=status`, including the
    /// legacy `Caller`/`Called` duplicates and (empty) geo fields, which Twilio sends and signs.
    pub fn voice_params(&self, status: &str) -> Form {
        let country = |n: &str| if n.starts_with("+1") { "US" } else { "" };
        let mut form = Form::new();
        form.push("AccountSid", &self.account_sid);
        form.push("ApiVersion", "2010-04-01");
        form.push("CallSid", &self.call_sid);
        form.push("CallStatus", status);
        form.push("Called", &self.to);
        for (prefix, number) in [
            ("Called", &self.to),
            ("Caller", &self.from),
            ("From", &self.from),
            ("To", &self.to),
        ] {
            form.push(format!("{prefix}City"), "");
            form.push(format!("{prefix}Country"), country(number));
            form.push(format!("{prefix}State"), "");
            form.push(format!("{prefix}Zip"), "");
        }
        form.push("Caller", &self.from);
        form.push("Direction", "inbound");
        form.push("From", &self.from);
        form.push("StirVerstat", "TN-Validation-Passed-A");
        form.push("To", &self.to);
        form
    }
}

/// HTTP method of a TwiML fetch or callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// Parameters in a form body (Twilio's default).
    Post,
    /// Parameters appended to the query string.
    Get,
}

impl HttpMethod {
    /// TwiML's `method` attribute (`POST` when absent or unknown, as Twilio defaults).
    pub fn from_attr(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(m) if m.eq_ignore_ascii_case("GET") => HttpMethod::Get,
            _ => HttpMethod::Post,
        }
    }
}

/// A response as Twilio sees it.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body as text.
    pub body: String,
    /// Time from sending to the full body.
    pub elapsed: Duration,
}

impl HttpAnswer {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Signs and sends requests like Twilio.
#[derive(Debug, Clone)]
pub struct TwilioHttp {
    /// Shared connection pool (one per simulator run, also across load-test calls).
    client: reqwest::Client,
    /// The account's auth token: the HMAC key of every signature.
    auth_token: String,
    /// What the edge believes its public URL is (`PUBLIC_WEBHOOK_BASE_URL`), no trailing slash.
    public_base: String,
    /// Where the edge really listens, no trailing slash.
    transport_base: String,
}

impl TwilioHttp {
    /// A client for an edge reachable at `edge` whose public URL is `public_base`.
    pub fn new(auth_token: &str, public_base: &str, edge: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent("TwilioProxy/1.1")
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            auth_token: auth_token.to_owned(),
            public_base: public_base.trim_end_matches('/').to_owned(),
            transport_base: edge.trim_end_matches('/').to_owned(),
        })
    }

    /// The public URL of an edge path, e.g. `/telephony/inbound`.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.public_base)
    }

    /// The auth token (the media leg signs its handshake with it too).
    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }

    /// Where a request for `public_url` is sent: URLs under the public base move to the edge.
    pub fn transport_url(&self, public_url: &str) -> String {
        match public_url.strip_prefix(&self.public_base) {
            Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                format!("{}{rest}", self.transport_base)
            }
            _ => public_url.to_owned(),
        }
    }

    /// Sends `params` to `public_url` by `method`, signed over the public URL.
    pub async fn send(
        &self,
        method: HttpMethod,
        public_url: &str,
        params: &Form,
    ) -> anyhow::Result<HttpAnswer> {
        let started = Instant::now();
        let request = match method {
            HttpMethod::Post => {
                let signature =
                    shared::signature::compute(&self.auth_token, public_url, params.pairs());
                self.client
                    .post(self.transport_url(public_url))
                    .header("X-Twilio-Signature", signature)
                    .header(
                        "Content-Type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .body(params.to_urlencoded())
            }
            HttpMethod::Get => {
                let separator = if public_url.contains('?') { '&' } else { '?' };
                let signed_url = format!("{public_url}{separator}{}", params.to_urlencoded());
                let signature = shared::signature::compute(&self.auth_token, &signed_url, &[]);
                self.client
                    .get(self.transport_url(&signed_url))
                    .header("X-Twilio-Signature", signature)
            }
        };
        let response = request
            .header("I-Twilio-Idempotency-Token", ids::sid("ID"))
            .header("Accept", "*/*")
            .send()
            .await
            .with_context(|| format!("{method:?} {public_url}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .with_context(|| format!("reading the response of {public_url}"))?;
        Ok(HttpAnswer {
            status,
            content_type,
            body,
            elapsed: started.elapsed(),
        })
    }
}

/// Resolves a TwiML URL against the URL of the document that named it (relative URLs are
/// allowed in `action`, `<Redirect>` and `<Stream url>`).
pub fn resolve_url(document_url: &str, target: &str) -> String {
    let target = target.trim();
    if target.contains("://") {
        return target.to_owned();
    }
    let (scheme, rest) = document_url
        .split_once("://")
        .unwrap_or(("https", document_url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if target.starts_with('/') {
        return format!("{origin}{target}");
    }
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    format!("{origin}{dir}/{target}")
}

/// The current time as RFC 2822 (`Tue, 31 Aug 2010 20:36:44 +0000`), Twilio's `Timestamp` format.
pub fn rfc2822_now() -> String {
    chrono::Utc::now().to_rfc2822()
}

/// The current time as ISO 8601 UTC, the stream status callback's `Timestamp` format.
pub fn iso8601_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_sent_to_the_edge_and_others_as_they_are() {
        let http =
            TwilioHttp::new("tok", "https://edge.example.com/", "http://127.0.0.1:8787").unwrap();
        assert_eq!(
            http.public_url("/telephony/inbound"),
            "https://edge.example.com/telephony/inbound"
        );
        assert_eq!(
            http.transport_url("https://edge.example.com/telephony/dial-result?last_resort=1"),
            "http://127.0.0.1:8787/telephony/dial-result?last_resort=1"
        );
        assert_eq!(
            http.transport_url("https://edge.example.com.evil/x"),
            "https://edge.example.com.evil/x"
        );
        assert_eq!(http.transport_url("http://other/x"), "http://other/x");
    }

    #[test]
    fn resolves_relative_twiml_urls() {
        let doc = "https://e.example/telephony/inbound?x=1";
        assert_eq!(resolve_url(doc, "/voice"), "https://e.example/voice");
        assert_eq!(resolve_url(doc, "next"), "https://e.example/telephony/next");
        assert_eq!(
            resolve_url(doc, "https://o.example/a"),
            "https://o.example/a"
        );
    }

    #[test]
    fn voice_params_carry_the_legacy_duplicates() {
        let call = CallIdentity::new("AC1", "+14155550100", "+14155550199");
        let form = call.voice_params("ringing");
        assert_eq!(form.get("Caller"), Some("+14155550100"));
        assert_eq!(form.get("Called"), Some("+14155550199"));
        assert_eq!(form.get("CallStatus"), Some("ringing"));
        assert_eq!(form.get("Direction"), Some("inbound"));
        assert_eq!(form.get("CalledCountry"), Some("US"));
        assert!(ids::is_sid("CA", form.get("CallSid").unwrap()));
    }
}
