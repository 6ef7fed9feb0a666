//! What differs between the Worker and the native server, behind one small surface so the
//! handlers are the same code on both:
//!
//! | need | native ([`native`]) | Worker ([`wasm`]) |
//! |---|---|---|
//! | HTTP to nodes ([`HttpClient`]) | reqwest (rustls) | `worker::Fetch` |
//! | work after the response ([`Background`]) | `tokio::spawn` | `ctx.wait_until` |
//! | wall clock ([`Clock`]) | `SystemTime` | `Date.now()` (`SystemTime` panics on wasm32) |
//! | where the request came from ([`RequestLocation`]) | dev headers, if the binary adds them | `request.cf` coordinates |
//!
//! Both sides give `Send` futures, which axum requires: the Worker is single-threaded, so
//! `worker::send::SendFuture` marks its JS-backed futures `Send` without risk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use shared::routing::GeoPoint;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{Background, HttpClient, system_now_ms};

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use wasm::{Background, HttpClient, WaitUntil, system_now_ms};

/// An HTTP request the edge makes to a voice node.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// `GET` for the snapshot pull, `POST` for forwarded events.
    pub method: OutboundMethod,
    /// Absolute URL.
    pub url: String,
    /// Extra headers (content type, HMAC headers).
    pub headers: Vec<(&'static str, String)>,
    /// Request body; empty for `GET`.
    pub body: Vec<u8>,
    /// Give up after this long: Twilio waits 15 s for the whole webhook.
    pub timeout_ms: u64,
}

/// The two methods the edge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundMethod {
    /// Snapshot pulls.
    Get,
    /// Forwarded events.
    Post,
}

/// A node's answer.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// HTTP status code.
    pub status: u16,
    /// The whole body (snapshots are a few KB; event answers are empty).
    pub body: Vec<u8>,
}

/// Why a request to a node produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No answer within [`OutboundRequest::timeout_ms`].
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// Connection refused, DNS, TLS, a bad URL…: the platform's description.
    #[error("{0}")]
    Transport(String),
}

/// Wall-clock time for the handlers: the system clock, or a manual one tests move by hand
/// (snapshot TTLs, token expiry and node staleness all read it).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: milliseconds set by a test.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The platform's wall clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands still at `start_ms` until [`Clock::advance`] or [`Clock::set_ms`].
    pub fn manual(start_ms: u64) -> Self {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => system_now_ms(),
        }
    }

    /// Unix seconds.
    pub fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, ms: u64) {
        if let Some(clock) = &self.manual {
            clock.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set_ms(&self, ms: u64) {
        if let Some(clock) = &self.manual {
            clock.store(ms, Ordering::SeqCst);
        }
    }
}

/// Where the webhook came from, as a request extension: the Worker entry sets it from
/// `request.cf`; the native dev server may set it from `X-Dev-Lat`/`X-Dev-Lon`. Absent when
/// unknown. For Twilio this is Twilio's egress, a rough proxy for where the media runs, which
/// is why `X-Home-Region` is preferred when Twilio sends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLocation(pub GeoPoint);

impl<S: Send + Sync> FromRequestParts<S> for Background {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Background::from_parts(parts))
    }
}
