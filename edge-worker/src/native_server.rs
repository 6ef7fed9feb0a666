//! The native build's HTTP server: the shared accept loop ([`http_limits`]) with header and body
//! deadlines and a body cap sized for webhooks. Each request carries the peer address as
//! [`ClientAddr`], the source [`crate::rate_limit`] counts refused webhooks against. In the
//! Worker none of this applies: Cloudflare terminates HTTP and enforces its own limits.

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use http_limits::{HttpLimits, with_body_limits};

use crate::rate_limit::ClientAddr;

/// Largest webhook body the edge reads: Twilio's webhooks are a few KB.
pub const MAX_WEBHOOK_BODY_BYTES: u64 = 64 * 1024;

/// The edge's limits: 10 s for headers and for a body, 64 KiB bodies.
pub fn webhook_limits() -> HttpLimits {
    HttpLimits {
        max_body_bytes: MAX_WEBHOOK_BODY_BYTES,
        ..HttpLimits::default()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
/// Each request carries the peer's [`ClientAddr`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    http_limits::serve_tagged(listener, router, limits, shutdown, |extensions, peer| {
        extensions.insert(ClientAddr(peer.ip()));
    })
    .await;
}
