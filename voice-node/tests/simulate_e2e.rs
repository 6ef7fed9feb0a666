//! `voice-node simulate` through the real chain: the edge's Router (in-process, as `cargo run -p
//! edge-worker` serves it) → TwiML → the node (in-process, with its heartbeat and the minimal
//! agent) → Media Stream → Postgres → the edge's forwarded status callback → the node's record.
//! One call per mode, each run as the built binary, checking the JSON it prints.

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::stream_token::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body};
use sqlx::PgPool;
use sqlx::types::Uuid;
use voice_node::agent::greeting_recorder::{
    GreetingRecorderFactory, PromptVoice, Prompts, RecorderConfig,
};
use voice_node::server::NodeState;

const BIN: &str = env!("CARGO_BIN_EXE_voice-node");
const AUTH_TOKEN: &str = "e2e-twilio-auth-token";
const SECRET: &str = "e2e edge shared secret, at least 32 bytes";
const OWNER: &str = "+14155550199";

fn lookup<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

struct Chain {
    edge: String,
    node: String,
    _stop_node: tokio::sync::oneshot::Sender<()>,
}

async fn start_chain(pool: PgPool) -> Chain {
    // Node, with its heartbeat (run_until_drained), so it appears in the routing snapshot.
    let node_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = node_listener.local_addr().unwrap();
    let node_vars = [
        ("LISTEN_ADDR", node_addr.to_string()),
        ("PUBLIC_BASE_URL", format!("http://{node_addr}")),
        ("NODE_ID", "e2e-node".to_owned()),
        ("NODE_REGION", "iad".to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("HEARTBEAT_SECS", "1".to_owned()),
    ];
    let config = voice_node::config::Config::from_lookup(lookup(&node_vars)).unwrap();
    let agents = Arc::new(GreetingRecorderFactory {
        prompts: Arc::new(Prompts::new(PromptVoice::Tone)),
        config: RecorderConfig::default(),
    });
    let state = NodeState::new(config, pool, agents);
    let (stop_node, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(voice_node::server::run_until_drained(
        node_listener,
        state,
        async {
            let _ = stopped.await;
        },
    ));
    let node = format!("http://{node_addr}");
    wait_for_node_in_snapshot(&node).await;

    // Edge.
    let edge_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", edge_listener.local_addr().unwrap());
    let edge_vars = [
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("PUBLIC_WEBHOOK_BASE_URL", edge.clone()),
        ("CONTROL_URL", node.clone()),
    ];
    let edge_config = edge_worker::config::Config::from_lookup(lookup(&edge_vars)).unwrap();
    let router = edge_worker::app(edge_worker::AppState::new(edge_config));
    tokio::spawn(async move { axum::serve(edge_listener, router).await });
    Chain {
        edge,
        node,
        _stop_node: stop_node,
    }
}

async fn wait_for_node_in_snapshot(node: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let snapshot: serde_json::Value = match client
            .get(format!("{node}/internal/routing-snapshot"))
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign_body(SECRET.as_bytes(), ts, b""))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if snapshot["nodes"].as_array().is_some_and(|n| !n.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never appeared in its routing snapshot");
}

async fn number(pool: &PgPool, tenant: Uuid, e164: &str, mode: &str) {
    sqlx::query(
        "INSERT INTO phone_numbers (tenant_id, e164, mode, owner_phone) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(e164)
    .bind(mode)
    .bind(OWNER)
    .execute(pool)
    .await
    .unwrap();
}

async fn simulate(chain: &Chain, to: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let output = tokio::process::Command::new(BIN)
        .args([
            "simulate",
            "--edge",
            &chain.edge,
            "--to",
            to,
            "--from",
            "+14155550123",
        ])
        .args([
            "--say",
            "Hi, this is Dana calling about my appointment on Tuesday.",
        ])
        .args(extra)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("EDGE_SHARED_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "simulate printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

fn assert_ai_call(output: &Output, report: &serde_json::Value, mode: &str) {
    assert!(
        output.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["mode"], mode, "{report:#}");
    assert!(report["call_sid"].as_str().unwrap().starts_with("CA"));
    assert!(report["outcome"].is_string(), "{report:#}");
    let transcript = report["transcript"].as_array().unwrap();
    assert!(
        transcript.iter().any(|t| t["speaker"] == "agent"),
        "{report:#}"
    );
    assert!(
        transcript.iter().any(|t| t["speaker"] == "caller"),
        "{report:#}"
    );
    assert!(
        !report["turn_latency_ms"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let stream = &report["streams"][0];
    assert_eq!(stream["late_frames"], 0, "{report:#}");
    assert!(stream["marks_echoed"].as_u64().unwrap() >= 1, "{report:#}");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn one_simulated_call_per_mode_through_edge_and_node(pool: PgPool) {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('E2E Dental') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    number(&pool, tenant, "+14155550101", "screening").await;
    number(&pool, tenant, "+14155550102", "receptionist").await;
    number(&pool, tenant, "+14155550103", "forward").await;
    let chain = start_chain(pool.clone()).await;

    let (output, report) = simulate(&chain, "+14155550101", &[]).await;
    assert_ai_call(&output, &report, "screening");
    assert_eq!(report["node_url"], chain.node.as_str());
    assert_eq!(report["outcome_source"], "node", "{report:#}");

    let (output, report) = simulate(&chain, "+14155550102", &[]).await;
    assert_ai_call(&output, &report, "receptionist");

    // Forward: the owner does not answer, the AI takes the call.
    let (output, report) = simulate(&chain, "+14155550103", &["--dial-status", "no-answer"]).await;
    assert_eq!(report["dials"][0]["to"], OWNER, "{report:#}");
    assert_eq!(report["dials"][0]["status"], "no-answer");
    assert!(output.status.success(), "{report:#}");
    assert!(
        !report["streams"].as_array().unwrap().is_empty(),
        "the AI answered: {report:#}"
    );

    // Forward, answered: no stream, the owner talked.
    let (output, report) = simulate(&chain, "+14155550103", &["--dial-status", "completed"]).await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["streams"], serde_json::json!([]));
    assert_eq!(report["outcome"], "transferred", "{report:#}");

    // Every call reached Postgres.
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM calls WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(calls >= 3, "{calls} calls recorded");
}
