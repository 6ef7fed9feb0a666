//! Dashboard sign-in against real Postgres: cookie flags, wrong passwords, the login rate limit,
//! logout and expiry, the Origin check, and the audit log.

mod api_support;
mod node_support;

use api_support::*;
use node_support::TestNode;
use serde_json::json;
use sqlx::PgPool;

fn base(node: &TestNode) -> String {
    node.url("")
}

async fn login(node: &TestNode, email: &str, password: &str) -> Answer {
    send(
        &base(node),
        "POST",
        "/api/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

fn session_cookie(answer: &Answer) -> String {
    let set = answer.headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn login_sets_an_httponly_strict_cookie_and_me_answers(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    user(&pool, Some(tenant), "Admin@Acme.test", "admin").await;
    let node = TestNode::start(pool.clone()).await;

    let answer = login(&node, "admin@acme.TEST", PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["user"]["role"], "admin");
    assert_eq!(answer.body["user"]["tenant_name"], "Acme Dental");
    let set = answer.headers["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("callgate_session="), "{set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    assert!(!set.contains("Secure"), "no Secure over http: {set}");
    let token = session_cookie(&answer)["callgate_session=".len()..].to_owned();
    assert_eq!(token.len(), 43, "32 bytes, base64url without padding");

    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], token.as_bytes(), "only the hash is stored");

    let me = send(
        &base(&node),
        "GET",
        "/api/me",
        Some(&session_cookie(&answer)),
        None,
    )
    .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "Admin@Acme.test");
    assert_eq!(me.body["tenant_id"], tenant.to_string());

    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn cookie_is_secure_when_the_node_is_served_over_https(pool: PgPool) {
    user(&pool, None, "root@callgate.test", "superadmin").await;
    let node = TestNode::start_with(
        pool.clone(),
        &[("PUBLIC_BASE_URL", "https://node.callgate.test")],
    )
    .await;
    let answer = login(&node, "root@callgate.test", PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let set = answer.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    assert_eq!(answer.body["user"]["tenant_id"], serde_json::Value::Null);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn wrong_password_and_unknown_email_get_the_same_answer(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    user(&pool, Some(tenant), "admin@acme.test", "admin").await;
    let node = TestNode::start(pool.clone()).await;

    let wrong = login(&node, "admin@acme.test", "not the password").await;
    let unknown = login(&node, "nobody@acme.test", PASSWORD).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.headers.get("set-cookie").is_none());

    let extra = send(
        &base(&node),
        "POST",
        "/api/auth/login",
        None,
        Some(json!({ "email": "admin@acme.test", "password": PASSWORD, "remember": true })),
    )
    .await;
    assert_eq!(extra.status, 422, "unknown fields are refused");
    assert_eq!(extra.code(), "validation_failed");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn login_is_rate_limited_per_email_with_retry_after(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    user(&pool, Some(tenant), "admin@acme.test", "admin").await;
    let node = TestNode::start(pool.clone()).await;

    for _ in 0..voice_node::api::auth::ATTEMPTS_PER_EMAIL {
        let answer = login(&node, "admin@acme.test", "guess").await;
        assert_eq!(answer.status, 401);
    }
    // Even the right password is refused now: the limit counts attempts, not failures.
    let limited = login(&node, "ADMIN@acme.test", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // Another account from the same address still gets through.
    user(&pool, Some(tenant), "member@acme.test", "member").await;
    assert_eq!(login(&node, "member@acme.test", PASSWORD).await.status, 200);
}

#[test]
fn login_limiter_counts_per_ip_too() {
    let limiter = voice_node::api::auth::LoginLimiter::default();
    for i in 0..voice_node::api::auth::ATTEMPTS_PER_IP {
        let keys = [("ip:1.2.3.4".to_owned(), 30), (format!("email:{i}"), 5)];
        assert!(limiter.attempt(&keys).is_ok());
    }
    let keys = [("ip:1.2.3.4".to_owned(), 30), ("email:new".to_owned(), 5)];
    assert!(limiter.attempt(&keys).is_err());
    let other = [("ip:5.6.7.8".to_owned(), 30), ("email:new2".to_owned(), 5)];
    assert!(limiter.attempt(&other).is_ok());
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn logout_ends_the_session_and_clears_the_cookie(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    user(&pool, Some(tenant), "member@acme.test", "member").await;
    let node = TestNode::start(pool.clone()).await;
    let answer = login(&node, "member@acme.test", PASSWORD).await;
    let cookie = session_cookie(&answer);

    let out = send(
        &base(&node),
        "POST",
        "/api/auth/logout",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(out.status, 204);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let me = send(&base(&node), "GET", "/api/me", Some(&cookie), None).await;
    assert_eq!(me.status, 401);
    assert_eq!(me.code(), "unauthorized");
    // Without a session, logout is still 204.
    let again = send(&base(&node), "POST", "/api/auth/logout", None, None).await;
    assert_eq!(again.status, 204);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn expired_idle_and_disabled_sessions_are_refused(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    let user_id = user(&pool, Some(tenant), "member@acme.test", "member").await;
    let node = TestNode::start(pool.clone()).await;

    let expired = session(&pool, user_id).await;
    sqlx::query("UPDATE sessions SET created_at = now() - interval '31 days', last_seen_at = now(), expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        send(&base(&node), "GET", "/api/me", Some(&expired), None)
            .await
            .status,
        401
    );

    let idle = session(&pool, user_id).await;
    sqlx::query("UPDATE sessions SET created_at = now() - interval '13 hours', last_seen_at = now() - interval '13 hours' WHERE expires_at > now()")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        send(&base(&node), "GET", "/api/me", Some(&idle), None)
            .await
            .status,
        401
    );

    let fresh = session(&pool, user_id).await;
    assert_eq!(
        send(&base(&node), "GET", "/api/me", Some(&fresh), None)
            .await
            .status,
        200
    );
    sqlx::query("UPDATE users SET disabled_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        send(&base(&node), "GET", "/api/me", Some(&fresh), None)
            .await
            .status,
        401
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn state_changing_requests_from_another_origin_are_refused(pool: PgPool) {
    let tenant = tenant(&pool, "Acme Dental").await;
    user(&pool, Some(tenant), "admin@acme.test", "admin").await;
    let node = TestNode::start(pool.clone()).await;
    let response = reqwest::Client::new()
        .post(node.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({ "email": "admin@acme.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_origin");
    // The node's own origin is fine.
    let response = reqwest::Client::new()
        .post(node.url("/api/auth/login"))
        .header("origin", node.url(""))
        .json(&json!({ "email": "admin@acme.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn unknown_api_paths_answer_the_json_404_and_openapi_is_public(pool: PgPool) {
    let node = TestNode::start(pool.clone()).await;
    let answer = send(&base(&node), "GET", "/api/nope", None, None).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.code(), "not_found");
    let doc = send(&base(&node), "GET", "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
}
