//! Postgres stops in the middle of a call and comes back: the call goes on, and every turn is in
//! the database afterwards. Uses a private cluster this test controls (never the shared test
//! cluster), stopped and restarted on the same port with `pg_ctl`.

mod node_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use node_support::*;
use shared::domain::CallMode;
use sqlx::postgres::PgPoolOptions;
use voice_node::local_postgres::{LocalPostgres, PgBinaries};
use voice_node::server::{NodeState, app};

/// `pg_ctl ARGS -D DATA_DIR`, as the cluster's owner (the `postgres` user when we are root).
fn pg_ctl(data_dir: PathBuf, args: Vec<String>) {
    let pg_ctl = PgBinaries::find().expect("Postgres binaries").pg_ctl;
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    cmd.current_dir("/").args(&args).arg("-D").arg(&data_dir);
    let out = cmd.output().expect("run pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn stop(pg: &LocalPostgres) {
    let dir = pg.data_dir().to_owned();
    tokio::task::spawn_blocking(move || {
        pg_ctl(
            dir,
            vec!["stop".into(), "-w".into(), "-m".into(), "fast".into()],
        )
    })
    .await
    .unwrap();
}

async fn restart(pg: &LocalPostgres) {
    let dir = pg.data_dir().to_owned();
    let log = pg.log_file();
    let options = format!(
        "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=. -c unix_socket_permissions=0700 -c fsync=off",
        pg.port()
    );
    tokio::task::spawn_blocking(move || {
        pg_ctl(
            dir,
            vec![
                "start".into(),
                "-w".into(),
                "-l".into(),
                log.display().to_string(),
                "-o".into(),
                options,
            ],
        )
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn turns_written_during_a_database_outage_are_all_there_afterwards() {
    voice_node::telemetry::init();
    let pg = tokio::task::spawn_blocking(LocalPostgres::ephemeral)
        .await
        .unwrap()
        .expect("private cluster");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&pg.url())
        .await
        .unwrap();
    voice_node::db::migrate(&pool).await.unwrap();
    let (tenant, _) = tenant_with_number(&pool, "+14155550100", CallMode::Screening).await;

    let (listener, addr) = bind().await;
    let state = NodeState::new(config(addr, &[]), pool.clone(), recorder(3));
    let router = app(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut call = TwilioCall::start(addr, tenant, "CA_outage").await;
    call.hear_utterance().await; // greeting

    stop(&pg).await;
    // Two turns while the database is down: the caller is still acknowledged.
    for _ in 0..2 {
        call.speak(25).await;
        assert!(
            call.hear_utterance().await > 10,
            "acknowledgment during the outage"
        );
    }
    assert!(
        state.store.depth() >= 4,
        "writes are queued: {}",
        state.store.depth()
    );
    assert!(state.metrics.db_write_retries.get() >= 1);

    restart(&pg).await;
    call.speak(25).await; // third turn → goodbye
    call.hear_utterance().await;
    assert_eq!(
        call.recv().await,
        FromNode::Close(Some((1000, "call ended".into())))
    );

    assert!(
        state.store.flush(Duration::from_secs(20)).await,
        "queue flushed after the restart"
    );
    let turns: Vec<(i32, String)> = sqlx::query_as(
        "SELECT t.seq, t.speaker FROM transcript_turns t JOIN calls c ON c.id = t.call_id
         WHERE c.call_sid = 'CA_outage' ORDER BY t.seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let speakers: Vec<&str> = turns.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        speakers,
        [
            "agent", "caller", "agent", "caller", "agent", "caller", "agent"
        ]
    );
    assert_eq!(
        turns.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = 'CA_outage'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("message_taken"));
    assert_eq!(state.metrics.db_writes_dropped.get(), 0);
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}
