//! The node's server under hostile input, through its real accept loop: a source whose Media
//! Stream handshakes keep failing the signature check is answered 429 + Retry-After while
//! Twilio's signed handshakes from elsewhere go through; oversized bodies are 413 naming the
//! limit; slow headers are cut off.

mod node_support;

use std::net::SocketAddr;
use std::time::Duration;

use node_support::*;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use voice_node::server::http_limits::{HttpLimits, serve, with_body_limits};
use voice_node::server::{NodeState, app};

async fn start(pool: PgPool) -> SocketAddr {
    let (listener, addr) = bind().await;
    let state = NodeState::new(config(addr, &[]), pool, recorder(3));
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let router = with_body_limits(app(state), limits);
    tokio::spawn(serve(listener, router, limits, std::future::pending()));
    addr
}

/// A WebSocket handshake to `/media` from the loopback address `from`, signed with `token`
/// (`None`: unsigned); the HTTP status it got.
async fn handshake_from(
    from: &str,
    addr: SocketAddr,
    token: Option<&str>,
) -> (u16, Option<String>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/media");
    let mut request = url.as_str().into_client_request().unwrap();
    if let Some(token) = token {
        let signature = shared::signature::compute(token, &url, &[]);
        request
            .headers_mut()
            .insert("X-Twilio-Signature", signature.parse().unwrap());
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((_ws, response)) => (response.status().as_u16(), None),
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn failing_handshakes_are_limited_per_source_and_twilio_still_connects(pool: PgPool) {
    let addr = start(pool).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(handshake_from("127.0.0.2", addr, Some("not the auth token")).await);
    }
    let forbidden = statuses.iter().filter(|s| s.0 == 403).count();
    let limited: Vec<_> = statuses.iter().filter(|s| s.0 == 429).collect();
    assert_eq!((forbidden, limited.len()), (20, 10), "{statuses:?}");
    assert!(
        limited.iter().all(|s| s.1.is_some()),
        "429 carries Retry-After"
    );

    // Twilio, from another address, completes its signed upgrade.
    let (status, _) = handshake_from("127.0.0.1", addr, Some(AUTH_TOKEN)).await;
    assert_eq!(status, 101);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn oversized_bodies_are_413_naming_the_limit_and_slow_headers_are_cut(pool: PgPool) {
    let addr = start(pool).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 3000000\r\nConnection: close\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut reply = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut reply)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("limit of 2097152 bytes"), "{reply}");

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut out)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "slow headers must be cut off"
    );
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));

    // The server still answers everyone else.
    let ok = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
