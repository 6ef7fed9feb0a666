//! Unsigned-webhook floods: refused cheaply, rate-limited per source with 429 + Retry-After,
//! while correctly signed requests, from other sources or the same one, are not limited by
//! anyone else's failures. Through the whole Router in-process, and through the native server's
//! accept loop on a real socket (peer address as the source, body cap, header deadline).

mod common;

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use edge_worker::config::Config;
use edge_worker::native_server::{HttpLimits, serve, webhook_limits, with_body_limits};
use edge_worker::platform::Clock;
use edge_worker::rate_limit::ClientAddr;
use edge_worker::{AppState, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn config(control_url: &str) -> Config {
    let vars: Vec<(String, String)> = vec![
        ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        (
            "EDGE_SHARED_SECRET".into(),
            String::from_utf8(SECRET.to_vec()).unwrap(),
        ),
        ("PUBLIC_WEBHOOK_BASE_URL".into(), BASE.into()),
        ("CONTROL_URL".into(), control_url.into()),
    ];
    Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .unwrap()
}

fn from(mut req: Request<Body>, ip: &str) -> Request<Body> {
    req.extensions_mut()
        .insert(ClientAddr(ip.parse::<IpAddr>().unwrap()));
    req
}

fn forged() -> Request<Body> {
    signed_with(
        "/telephony/inbound",
        &voice_params(SCREENING_NUMBER, CALLER),
        "some other account's auth token",
        &[],
    )
}

fn genuine() -> Request<Body> {
    signed(
        "/telephony/inbound",
        &voice_params(SCREENING_NUMBER, CALLER),
    )
}

#[tokio::test]
async fn a_flooding_source_gets_429_while_twilio_is_served() {
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    node.set_snapshot(Some(standard_snapshot(&node.base(), NOW_S)));
    let state = AppState::with_clock(config(&node.base()), clock.clone());
    let router = app(state.clone());
    let attacker = "203.0.113.66";
    let twilio = "54.172.60.1";

    let mut statuses = Vec::new();
    for _ in 0..100 {
        let reply = router
            .clone()
            .oneshot(from(forged(), attacker))
            .await
            .unwrap();
        statuses.push(reply.status());
    }
    let forbidden = statuses
        .iter()
        .filter(|s| **s == StatusCode::FORBIDDEN)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // The default budget: a burst of 20 failures, then refused before the signature check.
    assert_eq!((forbidden, limited), (20, 80), "{statuses:?}");

    let reply = router
        .clone()
        .oneshot(from(forged(), attacker))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = reply.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body = axum::body::to_bytes(reply.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("too many failed requests"));

    // Twilio, from its own address, is answered normally throughout.
    let reply = router
        .clone()
        .oneshot(from(genuine(), twilio))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);

    // Signed requests never take tokens: a thousand from Twilio leave it unlimited.
    for _ in 0..50 {
        let reply = router
            .clone()
            .oneshot(from(genuine(), twilio))
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }

    // The attacker's budget refills with time (one failure forgiven every 2 s).
    clock.advance(2_000);
    let reply = router
        .clone()
        .oneshot(from(forged(), attacker))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let reply = router
        .clone()
        .oneshot(from(forged(), attacker))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(state.limiter.tracked() <= 4096);
}

#[tokio::test]
async fn requests_without_a_known_source_are_not_limited() {
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    let router = app(AppState::with_clock(config(&node.base()), clock));
    for _ in 0..50 {
        let reply = router.clone().oneshot(forged()).await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn malformed_and_unsigned_bodies_also_drain_the_budget() {
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    let router = app(AppState::with_clock(config(&node.base()), clock));
    let unsigned = || {
        Request::post("/telephony/inbound")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("CallSid=CA1"))
            .unwrap()
    };
    for _ in 0..20 {
        let reply = router
            .clone()
            .oneshot(from(unsigned(), "198.51.100.7"))
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    }
    let reply = router
        .clone()
        .oneshot(from(unsigned(), "198.51.100.7"))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// The native server on a real socket: one raw request, the whole answer.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn native_server_limits_by_peer_address_caps_bodies_and_cuts_slow_headers() {
    let clock = Clock::manual(NOW_MS);
    let node = FakeNode::start(clock.clone()).await;
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..webhook_limits()
    };
    let router = with_body_limits(
        app(AppState::with_clock(config(&node.base()), clock)),
        limits,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router, limits, std::future::pending()));

    let body = "CallSid=CA1&From=%2B1";
    let forged = format!(
        "POST /telephony/inbound HTTP/1.1\r\nHost: x\r\nX-Twilio-Signature: bm9wZQ==\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut last = String::new();
    for _ in 0..21 {
        last = raw(addr, forged.as_bytes()).await;
    }
    assert!(
        last.starts_with("HTTP/1.1 429"),
        "the peer address is the source: {last}"
    );
    assert!(last.to_ascii_lowercase().contains("retry-after:"), "{last}");

    let oversized = raw(
        addr,
        b"POST /telephony/inbound HTTP/1.1\r\nHost: x\r\nX-Twilio-Signature: AAAA\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");
    assert!(oversized.contains("65536 bytes"), "{oversized}");

    let started = std::time::Instant::now();
    let slow = raw(addr, b"POST /telephony/inbound HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "slow headers must be cut off"
    );
    assert!(!slow.contains("200 OK"), "{slow}");
}
