//! The HTTP/1.1 accept loop with the limits `axum::serve` does not set: a deadline for a
//! request's headers and for its body, and a body size cap answered 413 with the limit named.
//! One crate because the voice node and the edge's native build serve the same way (in the
//! Worker none of this applies: Cloudflare terminates HTTP and enforces its own limits).
//!
//! `axum::serve` gives hyper no timer, so a client that sends one header byte a minute (slow
//! loris) holds its connection and task forever; a thousand of them starve a server of file
//! descriptors while real calls need them. Here hyper gets tokio's timer and a header read
//! timeout, the body is read under a deadline (`tower_http`'s request body timeout, reported by
//! the extractors), and a declared `Content-Length` over the cap is refused before any of it is
//! read.
//!
//! Upgraded WebSockets (the node's Media Streams and live dashboard socket) leave this loop once
//! upgraded: their frames have their own size cap, and their lifetime belongs to the server's
//! drain, not to these timeouts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// The limits every request is held to.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time from accepting a connection (or finishing the previous request on it) to having the
    /// full request head.
    pub header_timeout: Duration,
    /// Time to receive a whole request body.
    pub body_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
}

impl Default for HttpLimits {
    /// 10 s for headers and for a body, 2 MiB bodies (the node's largest upload, a knowledge
    /// base document, is well under it; Twilio's webhooks are a few KB).
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Adds the body limits to `router`: the size cap by `Content-Length` (413 naming the limit),
/// axum's own buffered-body cap at the same size for chunked bodies, and the body deadline.
pub fn with_body_limits(router: Router, limits: HttpLimits) -> Router {
    let max = limits.max_body_bytes;
    router
        .layer(axum::extract::DefaultBodyLimit::max(
            usize::try_from(max).unwrap_or(usize::MAX),
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| refuse_oversized(req, next, max),
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
}

async fn refuse_oversized(req: Request, next: Next, max: u64) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared
        && length > max
    {
        tracing::debug!(length, max, "request body over the limit refused");
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body of {length} bytes is over the limit of {max} bytes\n"),
        )
            .into_response();
    }
    next.run(req).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (connections that were upgraded to WebSockets are not waited for). Each request carries
/// `ConnectInfo<SocketAddr>`, as with `into_make_service_with_connect_info`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_tagged(listener, router, limits, shutdown, |extensions, peer| {
        extensions.insert(ConnectInfo(peer));
    })
    .await;
}

/// [`serve`], with `tag` putting what the app needs to know about the peer into each request's
/// extensions (the edge files it as the source its rate limiter counts).
pub async fn serve_tagged(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
    tag: impl Fn(&mut Extensions, SocketAddr) + Clone + Send + Sync + 'static,
) {
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut closing = closing_rx.clone();
        let tag = tag.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    tag(req.extensions_mut(), peer);
                    let router = router.clone();
                    async move {
                        let response = router.oneshot(req.map(Body::new)).await;
                        Ok::<_, Infallible>(match response {
                            Ok(response) => response,
                            Err(never) => match never {},
                        })
                    }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    changed = closing.changed() => {
                        connection.as_mut().graceful_shutdown();
                        if changed.is_err() {
                            // The sender is gone: nothing more to hear, finish the connection.
                            let _ = connection.as_mut().await;
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(closing_rx);
    closing_tx.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: HttpLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let router = with_body_limits(
            Router::new().route("/echo", post(|body: String| async move { body })),
            limits,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn short() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            max_body_bytes: 1024,
        }
    }

    async fn read_all(stream: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn slow_headers_are_cut_off() {
        let (addr, _stop) = start(short()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let reply = read_all(&mut stream).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the connection must be closed soon after the header deadline"
        );
        // hyper answers 408 or just closes; never a normal reply.
        assert!(!reply.contains("200 OK"), "{reply}");
    }

    #[tokio::test]
    async fn slow_body_is_refused_after_the_deadline() {
        let (addr, _stop) = start(short()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let reply = read_all(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(3), "{reply}");
        // The extractor reports the body timeout (axum answers it as a 400 naming it).
        assert!(
            reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 408"),
            "{reply}"
        );
        assert!(reply.contains("timeout"), "{reply}");
    }

    #[tokio::test]
    async fn oversized_body_gets_413_naming_the_limit() {
        let (addr, _stop) = start(short()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(reply.contains("limit of 1024 bytes"), "{reply}");
    }

    #[tokio::test]
    async fn normal_requests_pass_and_shutdown_returns() {
        let (addr, stop) = start(short()).await;
        let reply = reqwest::Client::new()
            .post(format!("http://{addr}/echo"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.text().await.unwrap(), "hello");
        stop.send(()).unwrap();
    }
}
