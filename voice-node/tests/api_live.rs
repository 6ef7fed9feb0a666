//! `WS /api/calls/live` against real Postgres: rows written by another connection arrive through
//! LISTEN/NOTIFY, scoped to the socket's tenant; unknown calls close with 4404.

mod api_support;
mod node_support;

use std::time::Duration;

use api_support::*;
use futures_util::StreamExt;
use node_support::TestNode;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(node: &TestNode, cookie: &str, query: &str) -> Socket {
    let url = format!("ws://{}/api/calls/live{query}", node.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // Let the node's listener LISTEN before rows are written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket
}

/// The next JSON message within `wait`, or None.
async fn next(socket: &mut Socket, wait: Duration) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn inbox_socket_gets_new_calls_of_its_tenant_only(pool: PgPool) {
    let world = World::new(&pool).await;
    let node = TestNode::start(pool.clone()).await;
    let mut inbox_a = open(&node, &world.member_a, "").await;
    let mut superadmin = open(&node, &world.superadmin, "").await;

    // Another connection (another node, as far as Postgres can tell) writes the rows.
    let b_call = call(&pool, world.tenant_b, "+13125550100", "forward", 0, true).await;
    let a_call = call(&pool, world.tenant_a, "+14155550101", "screening", 0, true).await;
    turn(&pool, world.tenant_a, a_call, 0, "caller", "hello there").await;

    let first = next(&mut inbox_a, Duration::from_secs(5))
        .await
        .expect("a message");
    assert_eq!(first["type"], "call_started");
    assert_eq!(first["call"]["id"], a_call.to_string());
    assert_eq!(first["call"]["live"], true);
    // No turn on an inbox socket, and never tenant B's call.
    assert!(
        next(&mut inbox_a, Duration::from_millis(700))
            .await
            .is_none()
    );

    let mut seen = Vec::new();
    while let Some(message) = next(&mut superadmin, Duration::from_millis(1500)).await {
        seen.push(message["call"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, [b_call.to_string(), a_call.to_string()]);

    sqlx::query("UPDATE calls SET ended_at = now(), outcome = 'completed', status = 'completed', duration_s = 5 WHERE id = $1")
        .bind(a_call)
        .execute(&pool)
        .await
        .unwrap();
    let ended = next(&mut inbox_a, Duration::from_secs(5))
        .await
        .expect("call_ended");
    assert_eq!(ended["type"], "call_ended");
    assert_eq!(ended["call"]["live"], false);
    assert_eq!(ended["call"]["duration_s"], 5);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn call_socket_streams_turns_written_by_another_connection(pool: PgPool) {
    let world = World::new(&pool).await;
    let node = TestNode::start(pool.clone()).await;
    let a_call = call(&pool, world.tenant_a, "+14155550101", "screening", 0, true).await;
    let mut socket = open(&node, &world.member_a, &format!("?call_id={a_call}")).await;

    turn(
        &pool,
        world.tenant_a,
        a_call,
        0,
        "agent",
        "Hi, who is calling?",
    )
    .await;
    turn(
        &pool,
        world.tenant_a,
        a_call,
        1,
        "caller",
        "It is Dana about Tuesday",
    )
    .await;
    let mut turns = Vec::new();
    while turns.len() < 2 {
        let message = next(&mut socket, Duration::from_secs(5))
            .await
            .expect("a turn");
        if message["type"] == "turn" {
            assert_eq!(message["call_id"], a_call.to_string());
            turns.push(message["turn"]["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(turns, ["Hi, who is calling?", "It is Dana about Tuesday"]);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn another_tenants_call_closes_with_4404_and_no_session_is_refused(pool: PgPool) {
    let world = World::new(&pool).await;
    let node = TestNode::start(pool.clone()).await;
    let b_call = call(&pool, world.tenant_b, "+13125550100", "forward", 0, true).await;
    for query in [
        format!("?call_id={b_call}"),
        format!("?call_id={}", Uuid::new_v4()),
    ] {
        let mut socket = open(&node, &world.member_a, &query).await;
        let close = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap();
        match close {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4404),
            other => panic!("expected a 4404 close, got {other:?}"),
        }
    }
    let request = format!("ws://{}/api/calls/live", node.addr)
        .into_client_request()
        .unwrap();
    let refused = tokio_tungstenite::connect_async(request).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
}
