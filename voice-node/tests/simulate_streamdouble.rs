//! An independent emulator of Twilio's side of a Media Stream — `streamdouble` from PyPI —
//! completes a call against the node, and the node persists it.
//!
//! streamdouble sends no `X-Twilio-Signature`, and the node refuses unsigned handshakes (its check
//! stays on): `tests/streamdouble/run.py` wraps streamdouble's `websockets.connect` so the upgrade
//! is signed by the official `twilio` package's `RequestValidator.compute_signature`.
//!
//! The Python side lives in a venv under the user cache dir (`$XDG_CACHE_HOME/callgate/venv`,
//! default `~/.cache/callgate/venv`), created on first use with pip from PyPI and reused after.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::domain::CallMode;
use shared::stream_token::{SIGNATURE_HEADER, StreamClaims, TIMESTAMP_HEADER, issue, sign_body};
use sqlx::PgPool;
use sqlx::types::Uuid;
use voice_node::agent::greeting_recorder::{
    GreetingRecorderFactory, PromptVoice, Prompts, RecorderConfig,
};
use voice_node::config::Config;
use voice_node::server::{NodeState, app};
use voice_node::simulate::ids;

const AUTH_TOKEN: &str = "streamdouble-test-auth-token";
const SECRET: &str = "streamdouble test edge shared secret";
const NODE_ID: &str = "sd-node";
/// Pinned: the versions reference/twilio.md §7 was checked against.
const PACKAGES: &[&str] = &["streamdouble==0.3.0", "twilio==9.13.0"];

/// The venv's python, creating the venv (idempotent) when missing or incomplete.
fn venv_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let venv = cache.join("callgate").join("venv");
    let python = venv.join("bin").join("python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import streamdouble, twilio, websockets"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return python;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 (apt-get install python3 python3-venv)");
    assert!(
        status.success(),
        "python3 -m venv {} failed (apt-get install python3-venv)",
        venv.display()
    );
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .expect("pip");
    assert!(
        status.success(),
        "pip install {PACKAGES:?} failed (needs PyPI)"
    );
    assert!(
        ready(&python),
        "the venv at {} still lacks streamdouble/twilio",
        venv.display()
    );
    python
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Node {
    addr: std::net::SocketAddr,
    tenant: Uuid,
}

async fn start_node(pool: PgPool) -> Node {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (name) VALUES ('Dana Dental') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, '+14155550100', 'screening')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let vars = [
        ("LISTEN_ADDR", addr.to_string()),
        ("PUBLIC_BASE_URL", format!("http://{addr}")),
        ("NODE_ID", NODE_ID.to_owned()),
        ("NODE_REGION", "iad".to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let agents = Arc::new(GreetingRecorderFactory {
        prompts: Arc::new(Prompts::new(PromptVoice::Tone)),
        config: RecorderConfig::default(),
    });
    let router = app(NodeState::new(config, pool, agents));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Node { addr, tenant }
}

/// Runs `run.py` with the venv's python; returns (exit success, stdout JSON or null, stderr).
async fn streamdouble(
    python: &Path,
    url: &str,
    call_sid: &str,
    token: &str,
    audio: &Path,
    extra: &[&str],
) -> (bool, serde_json::Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/streamdouble/run.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args([
            "--url",
            url,
            "--call-sid",
            call_sid,
            "--account-sid",
            &ids::sid("AC"),
        ])
        .args([
            "--param",
            &format!("token={token}"),
            "--param",
            "mode=screening",
        ])
        .arg("--audio")
        .arg(audio)
        .args(extra)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .output()
        .await
        .expect("run the streamdouble script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        output.status.success(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn token_for(call_sid: &str, tenant: Uuid) -> String {
    issue(
        &StreamClaims {
            call_sid: call_sid.to_owned(),
            tenant_id: tenant.to_string(),
            node_id: NODE_ID.to_owned(),
            mode: CallMode::Screening,
            expires_at: now_unix() + 120,
        },
        SECRET.as_bytes(),
    )
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn streamdouble_completes_a_signed_call_and_the_node_persists_it(pool: PgPool) {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let node = start_node(pool.clone()).await;
    let audio = voice_node::speech::synthesize_mulaw(
        "Hi, this is Dana calling about my appointment on Tuesday.",
    )
    .await
    .expect("espeak-ng and sox");
    let dir = std::env::temp_dir().join(format!("callgate-sd-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let audio_path = dir.join("caller.ulaw");
    std::fs::write(&audio_path, &audio).unwrap();
    let url = format!("ws://{}/media/{NODE_ID}", node.addr);

    // Unsigned, as streamdouble connects on its own: refused before the upgrade.
    let call_sid = ids::sid("CA");
    let (ok, _, stderr) = streamdouble(
        &python,
        &url,
        &call_sid,
        &token_for(&call_sid, node.tenant),
        &audio_path,
        &["--unsigned"],
    )
    .await;
    assert!(!ok, "an unsigned handshake must be refused");
    assert!(stderr.contains("403"), "{stderr}");

    // Signed by the twilio package: the call goes through.
    let call_sid = ids::sid("CA");
    let (ok, report, stderr) = streamdouble(
        &python,
        &url,
        &call_sid,
        &token_for(&call_sid, node.tenant),
        &audio_path,
        &[],
    )
    .await;
    assert!(ok, "streamdouble failed: {report}\n{stderr}");
    assert_eq!(report["signature_sent"], true);
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert!(report["frames_sent"].as_u64().unwrap() > 100, "{report}");
    assert!(
        report["media_frames_received"].as_u64().unwrap() > 0,
        "the agent spoke: {report}"
    );
    assert!(report["marks_echoed"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["time_to_first_audio_ms"].as_f64().is_some(),
        "{report}"
    );

    // Persisted: the node's report of the call (its endpoint flushes queued writes first).
    let ts = now_unix();
    let record: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/internal/calls/{call_sid}", node.addr))
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, sign_body(SECRET.as_bytes(), ts, b""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["call_sid"], call_sid.as_str(), "{record}");
    assert_eq!(record["mode"], "screening", "{record}");
    let transcript = record["transcript"].as_array().unwrap();
    assert!(
        transcript.iter().any(|t| t["speaker"] == "agent"),
        "{record}"
    );
    assert!(
        transcript.iter().any(|t| t["speaker"] == "caller"),
        "the caller's words were recorded: {record}"
    );
    let (status, ended): (String, bool) =
        sqlx::query_as("SELECT status, ended_at IS NOT NULL FROM calls WHERE call_sid = $1")
            .bind(&call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(ended, "the stream's stop ended the call (status {status})");
    let _ = std::fs::remove_dir_all(&dir);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
