//! Unsigned-webhook floods: per-source failure budgets, in memory per isolate (Worker) or per
//! process (native).
//!
//! A request without a valid `X-Twilio-Signature` is already refused with a 403 before any
//! handler runs ([`crate::verify`]). Each such refusal also takes a token from its source's
//! bucket ([`shared::failure_limit`]); a source with no tokens left is answered 429 with
//! `Retry-After` before its body is read or any HMAC computed. Only failures count, and each
//! source has its own bucket, so Twilio's correctly signed requests are never limited by anyone
//! else's garbage.
//!
//! The source is [`ClientAddr`], a request extension set by whoever knows it: the Worker entry
//! from `CF-Connecting-IP` (Cloudflare sets it and overwrites any value the client sent), the
//! native server from the TCP peer address. A request without one is not limited (tests
//! in-process, or a runtime that cannot tell).
//!
//! Per isolate means an attacker spread over many PoPs gets a budget in each; that is fine, the
//! goal is that refusing garbage stays cheap everywhere, not a global quota.

use std::net::IpAddr;
use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::failure_limit::{FailureBudget, FailureLimiter, Limited};

/// Where a request came from, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// From Cloudflare's `CF-Connecting-IP` header; `None` when absent or not an address.
    pub fn from_cloudflare(headers: &HeaderMap) -> Option<Self> {
        headers
            .get("cf-connecting-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(ClientAddr)
    }
}

/// The isolate's failure buckets. A std mutex: the Worker is single-threaded, and natively it is
/// held for a hash-map lookup only, never across an await.
#[derive(Debug)]
pub struct SourceLimiter {
    /// The buckets.
    buckets: Mutex<FailureLimiter>,
}

impl Default for SourceLimiter {
    fn default() -> Self {
        Self::new(FailureBudget::default())
    }
}

impl SourceLimiter {
    /// Buckets with `budget`.
    pub fn new(budget: FailureBudget) -> Self {
        SourceLimiter {
            buckets: Mutex::new(FailureLimiter::new(budget)),
        }
    }

    /// `Err` when `source` used up its failure budget.
    pub fn check(&self, source: Option<ClientAddr>, now_ms: u64) -> Result<(), RateLimited> {
        let Some(ClientAddr(ip)) = source else {
            return Ok(());
        };
        self.lock().check(ip, now_ms).map_err(RateLimited)
    }

    /// Counts a refused (unsigned or badly signed) request against `source`.
    pub fn record_failure(&self, source: Option<ClientAddr>, now_ms: u64) {
        if let Some(ClientAddr(ip)) = source {
            self.lock().record_failure(ip, now_ms);
        }
    }

    /// Sources tracked now (bounded by the budget's `max_sources`).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A 429: this source failed too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RateLimited(pub Limited);

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        // Not logged per request: under a flood that would be the expensive part.
        let mut response = (StatusCode::TOO_MANY_REQUESTS, format!("{}\n", self.0)).into_response();
        if let Ok(value) = HeaderValue::from_str(&self.0.retry_after_s.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudflare_header_is_parsed_and_garbage_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cf-connecting-ip",
            HeaderValue::from_static(" 203.0.113.9 "),
        );
        assert_eq!(
            ClientAddr::from_cloudflare(&headers),
            Some(ClientAddr("203.0.113.9".parse().unwrap()))
        );
        headers.insert("cf-connecting-ip", HeaderValue::from_static("not-an-ip"));
        assert_eq!(ClientAddr::from_cloudflare(&headers), None);
    }

    #[test]
    fn a_request_without_a_source_is_never_limited() {
        let limiter = SourceLimiter::new(FailureBudget {
            burst: 1.0,
            per_second: 0.0,
            max_sources: 8,
        });
        limiter.record_failure(None, 0);
        assert!(limiter.check(None, 0).is_ok());
        let source = Some(ClientAddr("192.0.2.1".parse().unwrap()));
        limiter.record_failure(source, 0);
        let limited = limiter.check(source, 0).unwrap_err();
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
