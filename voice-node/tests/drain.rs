//! Draining with live calls: SIGTERM's path (`run_until_drained` with a test signal).

mod node_support;

use std::time::Duration;

use node_support::*;
use shared::domain::CallMode;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Error as WsError;
use voice_node::server::{NodeState, run_until_drained};

async fn start_draining_node(
    pool: &PgPool,
    grace_secs: &str,
) -> (
    std::net::SocketAddr,
    voice_node::server::AppState,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (listener, addr) = bind().await;
    let state = NodeState::new(
        config(addr, &[("DRAIN_GRACE_SECS", grace_secs)]),
        pool.clone(),
        recorder(3),
    );
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_until_drained(listener, state.clone(), async {
        let _ = signal_rx.await;
    }));
    (addr, state, signal_tx, run)
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn drain_lets_live_calls_finish_refuses_new_ones_and_exits(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let (addr, state, signal, run) = start_draining_node(&pool, "30").await;
    let mut calls = Vec::new();
    for i in 0..3 {
        let mut call = TwilioCall::start(addr, tenant, &format!("CA_drain_{i}")).await;
        call.hear_utterance().await;
        calls.push(call);
    }
    assert_eq!(state.sessions.live(), 3);

    signal.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    match connect(addr, "/media", Some(AUTH_TOKEN)).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!(
            "a new stream during the drain must get 503, got {:?}",
            other.map(|_| ())
        ),
    }
    // The heartbeat says draining.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draining: bool = sqlx::query_scalar("SELECT draining FROM voice_nodes WHERE id = $1")
        .bind(NODE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(draining);

    // Live calls carry on to their natural end.
    for call in &mut calls {
        call.speak(20).await;
        call.hear_utterance().await;
        call.dtmf('#').await;
        call.hear_utterance().await;
        assert_eq!(
            call.recv().await,
            FromNode::Close(Some((1000, "call ended".into())))
        );
    }
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("drained and returned")
        .unwrap()
        .unwrap();

    let outcomes: Vec<Option<String>> =
        sqlx::query_scalar("SELECT outcome FROM calls ORDER BY call_sid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        outcomes,
        vec![Some("message_taken".to_owned()); 3],
        "no call was cut"
    );
    let (draining, active): (bool, i32) =
        sqlx::query_as("SELECT draining, active_calls FROM voice_nodes WHERE id = $1")
            .bind(NODE)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(draining);
    assert_eq!(active, 0);
    assert_eq!(state.store.depth(), 0);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn calls_still_live_when_the_grace_period_ends_are_closed_with_1001(pool: PgPool) {
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;
    let (addr, _state, signal, run) = start_draining_node(&pool, "1").await;
    let mut call = TwilioCall::start(addr, tenant, "CA_overtime").await;
    call.hear_utterance().await;
    signal.send(()).unwrap();
    assert_eq!(
        call.recv().await,
        FromNode::Close(Some((1001, "node shutting down".into())))
    );
    tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("returned after the grace period")
        .unwrap()
        .unwrap();
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = 'CA_overtime'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("failed"));
}
