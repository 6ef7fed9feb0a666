//! Issue 4's node fixes over real sockets and a real Postgres: `NODE_CAPACITY` enforced before
//! the upgrade, and transcript numbering that continues when a call's stream reconnects.

mod node_support;

use std::time::Duration;

use node_support::*;
use shared::domain::CallMode;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Error as WsError;

fn refusal(result: Result<Ws, WsError>) -> (u16, String) {
    match result {
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade was accepted"),
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_stream_beyond_node_capacity_is_refused_with_503_before_the_upgrade(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let node = TestNode::start_with(pool, &[("NODE_CAPACITY", "2")]).await;
    let mut first = TwilioCall::start(node.addr, tenant, "CA_cap_1").await;
    let mut second = TwilioCall::start(node.addr, tenant, "CA_cap_2").await;
    first.hear_utterance().await;
    second.hear_utterance().await;

    let (status, body) =
        refusal(connect(node.addr, &format!("/media/{NODE}"), Some(AUTH_TOKEN)).await);
    assert_eq!(status, 503);
    assert!(body.contains("capacity"), "{body}");
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("callgate_streams_refused_capacity_total 1\n"),
        "{metrics}"
    );

    // Room again once a call ends.
    hang_up(&mut first).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.state.sessions.live() >= 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first session never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = TwilioCall::start(node.addr, tenant, "CA_cap_3").await;
    assert!(third.hear_utterance().await > 0);
    assert_eq!(node.state.metrics.streams_refused_capacity.get(), 1);
}

/// Sends `stop` and reads until the node closes the socket (the session has wrapped up and
/// queued its last writes).
async fn hang_up(call: &mut TwilioCall) {
    call.stop().await;
    while !matches!(call.recv().await, FromNode::Close(_)) {}
}

/// Turn numbers of `call_sid`, in order, with speakers.
async fn turns(pool: &PgPool, call_sid: &str) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT t.seq, t.speaker FROM transcript_turns t JOIN calls c ON c.id = t.call_id
          WHERE c.call_sid = $1 ORDER BY t.seq",
    )
    .bind(call_sid)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn a_reconnected_stream_continues_the_transcript_numbering(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;

    // First stream: greeting, the caller speaks, acknowledgement; then the socket goes away.
    let node = TestNode::start(pool.clone()).await;
    let mut call = TwilioCall::start(node.addr, tenant, "CA_reconnect").await;
    call.hear_utterance().await;
    call.speak(40).await;
    call.hear_utterance().await;
    hang_up(&mut call).await;
    node.state.store.flush(Duration::from_secs(5)).await;
    let first = turns(&pool, "CA_reconnect").await;
    assert_eq!(first.len(), 3, "{first:?}");

    // Twilio reconnects the same CallSid, to another node (nothing in its memory): numbering
    // continues from the stored maximum, so no turn collides and none is dropped.
    let other = TestNode::start(pool.clone()).await;
    let mut again = TwilioCall::start(other.addr, tenant, "CA_reconnect").await;
    again.hear_utterance().await;
    again.speak(40).await;
    again.hear_utterance().await;
    hang_up(&mut again).await;
    other.state.store.flush(Duration::from_secs(5)).await;
    let all = turns(&pool, "CA_reconnect").await;
    let seqs: Vec<i32> = all.iter().map(|t| t.0).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5], "{all:?}");
    assert_eq!(other.state.metrics.db_writes_dropped.get(), 0);

    // And to the same node, whose memory knows where the last session stopped.
    let mut third = TwilioCall::start(node.addr, tenant, "CA_reconnect").await;
    third.hear_utterance().await;
    hang_up(&mut third).await;
    node.state.store.flush(Duration::from_secs(5)).await;
    let all = turns(&pool, "CA_reconnect").await;
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(all.last().unwrap().0, 6);
}
