//! Media Streams over real sockets against a node on 127.0.0.1:0 with its own database.

mod node_support;

use std::time::Duration;

use node_support::*;
use shared::domain::CallMode;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Error as WsError;

fn http_status(result: Result<Ws, WsError>) -> (u16, Option<String>) {
    match result {
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("fly-replay")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade was accepted"),
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn signed_call_plays_greeting_records_turns_and_hangs_up_on_hash(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let node = TestNode::start(pool.clone()).await;
    let mut call = TwilioCall::start(node.addr, tenant, "CA_e2e_1").await;
    let greeting = call.hear_utterance().await;
    assert!(greeting > 20, "greeting of {greeting} frames");
    call.speak(40).await; // 0.8 s of speech
    let ack = call.hear_utterance().await;
    assert!(ack > 10);
    call.dtmf('#').await;
    call.hear_utterance().await; // goodbye
    assert_eq!(
        call.recv().await,
        FromNode::Close(Some((1000, "call ended".into())))
    );

    node.state.store.flush(Duration::from_secs(5)).await;
    let (outcome, status): (Option<String>, String) =
        sqlx::query_as("SELECT outcome, status FROM calls WHERE call_sid = 'CA_e2e_1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("message_taken"));
    assert_eq!(status, "completed");
    let turns: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT t.seq, t.speaker, t.text FROM transcript_turns t JOIN calls c ON c.id = t.call_id
         WHERE c.call_sid = 'CA_e2e_1' ORDER BY t.seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let speakers: Vec<&str> = turns.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(speakers, ["agent", "caller", "agent", "agent"], "{turns:?}");
    assert!(turns[1].2.contains("not transcribed"), "{}", turns[1].2);
    // Late frames are not asserted here: on a loaded 2-core CI box a debug build can oversleep
    // 20 ms; pacing itself is tested on the paused clock (media::player, media::session).
    assert_eq!(node.state.metrics.active_calls.get(), 0);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn unsigned_and_wrongly_signed_handshakes_are_refused_with_403(pool: PgPool) {
    let node = TestNode::start(pool).await;
    for path in ["/media", &format!("/media/{NODE}")] {
        assert_eq!(http_status(connect(node.addr, path, None).await).0, 403);
        assert_eq!(
            http_status(connect(node.addr, path, Some("another-auth-token")).await).0,
            403
        );
    }
    // The same signature over the other path does not pass either.
    let url = format!("ws://{}/media", node.addr);
    let signature = shared::signature::compute(AUTH_TOKEN, &format!("{url}/elsewhere"), &[]);
    let response = reqwest::Client::new()
        .get(node.url("/media"))
        .header("X-Twilio-Signature", signature)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(node.state.metrics.streams_accepted.get(), 0);
    // A correct signature is accepted on both paths.
    assert!(connect(node.addr, "/media", Some(AUTH_TOKEN)).await.is_ok());
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn stream_for_another_node_is_replayed_without_upgrading(pool: PgPool) {
    let node = TestNode::start(pool).await;
    let (status, replay) =
        http_status(connect(node.addr, "/media/other-node", Some(AUTH_TOKEN)).await);
    assert_eq!(status, 409);
    assert_eq!(replay.as_deref(), Some("instance=other-node"));
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn garbage_and_oversized_frames_close_only_their_socket(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let node = TestNode::start(pool).await;
    let mut healthy = TwilioCall::start(node.addr, tenant, "CA_healthy").await;
    assert!(matches!(healthy.recv().await, FromNode::Media(160)));

    let mut garbage = TwilioCall::start(node.addr, tenant, "CA_garbage").await;
    garbage.send_text("this is not JSON".into()).await.unwrap();
    let FromNode::Close(Some((code, reason))) = skip_media(&mut garbage).await else {
        panic!("garbage socket not closed with a frame")
    };
    assert_eq!(code, 1007);
    assert!(reason.contains("malformed"), "{reason}");

    let mut oversized = TwilioCall::start(node.addr, tenant, "CA_oversized").await;
    let _ = oversized.send_text("x".repeat(100 * 1024)).await;
    let FromNode::Close(Some((code, reason))) = skip_media(&mut oversized).await else {
        panic!("oversized socket not closed with a frame")
    };
    assert_eq!(code, 1009);
    assert!(reason.contains("65536"), "{reason}");

    // The healthy call goes on: its greeting completes with a mark, and it can still hang up.
    let (_, after) = healthy.frames_until_other().await;
    assert!(matches!(after, FromNode::Mark(_)), "{after:?}");
    healthy.stop().await;
    assert_eq!(
        healthy.recv().await,
        FromNode::Close(Some((1000, "stream stopped".into())))
    );
    assert_eq!(node.state.metrics.protocol_errors.get(), 2);
}

/// Reads past the greeting's media to the next non-media message.
async fn skip_media(call: &mut TwilioCall) -> FromNode {
    call.frames_until_other().await.1
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn token_for_another_node_is_refused_after_start(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let node = TestNode::start(pool).await;
    let ws = connect(node.addr, "/media", Some(AUTH_TOKEN))
        .await
        .unwrap();
    let token = stream_token("CA_wrong_node", tenant, "node-b");
    let mut call = TwilioCall::start_on(ws, "CA_wrong_node", Some(token)).await;
    let FromNode::Close(Some((code, reason))) = call.recv().await else {
        panic!("not closed")
    };
    assert_eq!(code, 1008);
    assert!(reason.contains("node-b"), "{reason}");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn health_readiness_metrics_and_draining_refusal(pool: PgPool) {
    let node = TestNode::start(pool).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(node.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(node.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\ncallgate_active_calls 0\n"), "{metrics}");
    assert!(metrics.contains("\ncallgate_draining 0\n"));
    assert!(metrics.contains("callgate_db_queue_depth"));
    node.state.drain.start();
    assert_eq!(
        http.get(node.url("/readyz")).send().await.unwrap().status(),
        503
    );
    assert_eq!(
        http_status(connect(node.addr, "/media", Some(AUTH_TOKEN)).await).0,
        503
    );
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\ncallgate_draining 1\n"), "{metrics}");
}
