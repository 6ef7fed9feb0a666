//! Fixtures for the dashboard API tests: tenants, users of each role with sessions, calls with
//! turns and screening results, and a small cookie-carrying HTTP client.

#![allow(dead_code)]

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// The password every fixture user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// One Argon2id hash of [`PASSWORD`] per test binary (hashing is slow in debug builds).
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| voice_node::admin::hash_password(PASSWORD).unwrap())
}

pub async fn tenant(pool: &PgPool, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO tenants (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn number(pool: &PgPool, tenant: Uuid, e164: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, $2, 'screening') RETURNING id",
    )
    .bind(tenant)
    .bind(e164)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn user(pool: &PgPool, tenant: Option<Uuid>, email: &str, role: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(tenant)
    .bind(email)
    .bind(password_hash())
    .bind(role)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A session row for `user` (as login makes it) and its cookie header value.
pub async fn session(pool: &PgPool, user: Uuid) -> String {
    let token = format!("test-token-{}", Uuid::new_v4().simple());
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day')",
    )
    .bind(&hash[..])
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    format!("callgate_session={token}")
}

/// A finished or live call; returns its id.
pub async fn call(
    pool: &PgPool,
    tenant: Uuid,
    from: &str,
    mode: &str,
    minutes_ago: i32,
    live: bool,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode, status, outcome,
                            started_at, ended_at, duration_s, node_id, region, stir_verstat)
         VALUES ($1, $2, $3, '+15550000000', $4,
                 CASE WHEN $6 THEN 'in_progress' ELSE 'completed' END,
                 CASE WHEN $6 THEN NULL ELSE 'message_taken' END,
                 now() - make_interval(mins => $5),
                 CASE WHEN $6 THEN NULL ELSE now() - make_interval(mins => $5) + interval '30 seconds' END,
                 CASE WHEN $6 THEN NULL ELSE 30 END, 'node-a', 'iad', 'TN-Validation-Passed-A')
         RETURNING id",
    )
    .bind(format!("CA{}", Uuid::new_v4().simple()))
    .bind(tenant)
    .bind(from)
    .bind(mode)
    .bind(minutes_ago)
    .bind(live)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn turn(pool: &PgPool, tenant: Uuid, call: Uuid, seq: i32, speaker: &str, text: &str) {
    sqlx::query(
        "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at,
                                       speech_end_ms, first_audio_frame_ms)
         VALUES ($1, $2, $3, $4, $5, now(), 1000, 1450)",
    )
    .bind(tenant)
    .bind(call)
    .bind(seq)
    .bind(speaker)
    .bind(text)
    .execute(pool)
    .await
    .unwrap();
}

pub async fn screening(pool: &PgPool, tenant: Uuid, call: Uuid, label: &str, intent: &str) {
    sqlx::query(
        "INSERT INTO screening_results (tenant_id, call_id, label, intent, confidence, rationale, action)
         VALUES ($1, $2, $3, $4, 0.9, 'mentions an existing appointment', 'transfer')",
    )
    .bind(tenant)
    .bind(call)
    .bind(label)
    .bind(intent)
    .execute(pool)
    .await
    .unwrap();
}

/// Two tenants, each with an admin and a member, and one superadmin, all signed in.
pub struct World {
    pub tenant_a: Uuid,
    pub tenant_b: Uuid,
    pub admin_a: String,
    pub member_a: String,
    pub admin_b: String,
    pub member_b: String,
    pub superadmin: String,
}

impl World {
    pub async fn new(pool: &PgPool) -> World {
        let tenant_a = tenant(pool, "Acme Dental").await;
        let tenant_b = tenant(pool, "Bolt Plumbing").await;
        let admin_a = user(pool, Some(tenant_a), "admin@acme.test", "admin").await;
        let member_a = user(pool, Some(tenant_a), "member@acme.test", "member").await;
        let admin_b = user(pool, Some(tenant_b), "admin@bolt.test", "admin").await;
        let member_b = user(pool, Some(tenant_b), "member@bolt.test", "member").await;
        let superadmin = user(pool, None, "root@callgate.test", "superadmin").await;
        World {
            tenant_a,
            tenant_b,
            admin_a: session(pool, admin_a).await,
            member_a: session(pool, member_a).await,
            admin_b: session(pool, admin_b).await,
            member_b: session(pool, member_b).await,
            superadmin: session(pool, superadmin).await,
        }
    }
}

/// A response's status and JSON body (Null when there is none).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Sends `method path` with `cookie` (and a JSON body) to `base`.
pub async fn send(
    base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    }
}
