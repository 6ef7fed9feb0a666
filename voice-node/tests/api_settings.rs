//! Tenant administration against real Postgres: numbers, departments, screening policy and
//! examples, providers (write-only keys), users (last admin, sessions ended) — each for the roles
//! allowed and refused, and across tenants.

mod api_support;
mod node_support;

use api_support::*;
use node_support::TestNode;
use serde_json::json;
use sqlx::PgPool;

async fn setup(pool: &PgPool) -> (TestNode, World, String) {
    let world = World::new(pool).await;
    let node = TestNode::start(pool.clone()).await;
    let base = node.url("");
    (node, world, base)
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn numbers_are_added_by_superadmins_and_tuned_by_admins(pool: PgPool) {
    let (_node, w, base) = setup(&pool).await;
    let add = |cookie: String, path: String, body| {
        let base = base.clone();
        async move { send(&base, "POST", &path, Some(&cookie), Some(body)).await }
    };
    let refused = add(
        w.admin_a.clone(),
        "/api/numbers".into(),
        json!({"e164": "+15550002222"}),
    )
    .await;
    assert_eq!(refused.status, 403);
    let path = format!("/api/numbers?tenant_id={}", w.tenant_a);
    let forward = add(
        w.superadmin.clone(),
        path.clone(),
        json!({"e164": "+15550002222", "mode": "forward"}),
    )
    .await;
    assert_eq!(forward.status, 422, "forward needs an owner phone");
    let created = add(
        w.superadmin.clone(),
        path.clone(),
        json!({"e164": "+15550002222", "owner_phone": "+15550003333"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["mode"], "screening");
    let taken = add(
        w.superadmin.clone(),
        format!("/api/numbers?tenant_id={}", w.tenant_b),
        json!({"e164": "+15550002222"}),
    )
    .await;
    assert_eq!(taken.status, 409);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let list = send(&base, "GET", "/api/numbers", Some(&w.admin_a), None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        send(&base, "GET", "/api/numbers", Some(&w.member_a), None)
            .await
            .status,
        403
    );
    let patched = send(
        &base,
        "PATCH",
        &format!("/api/numbers/{id}"),
        Some(&w.admin_a),
        Some(json!({"mode": "forward", "friendly_name": "Front desk"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["mode"], "forward");
    assert_eq!(patched.body["friendly_name"], "Front desk");
    let cleared = send(
        &base,
        "PATCH",
        &format!("/api/numbers/{id}"),
        Some(&w.admin_a),
        Some(json!({"owner_phone": null})),
    )
    .await;
    assert_eq!(cleared.status, 422, "forward mode keeps its owner phone");
    let bad = send(
        &base,
        "PATCH",
        &format!("/api/numbers/{id}"),
        Some(&w.admin_a),
        Some(json!({"owner_phone": "555-1234"})),
    )
    .await;
    assert_eq!(
        bad.body["error"]["details"]["fields"]["owner_phone"],
        "must be E.164"
    );
    assert_eq!(
        send(
            &base,
            "PATCH",
            &format!("/api/numbers/{id}"),
            Some(&w.admin_b),
            Some(json!({"mode": "screening"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/numbers/{id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/numbers/{id}?tenant_id={}", w.tenant_a),
            Some(&w.superadmin),
            None
        )
        .await
        .status,
        204
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn departments_crud_with_duplicate_names_refused(pool: PgPool) {
    let (_node, w, base) = setup(&pool).await;
    let created = send(
        &base,
        "POST",
        "/api/departments",
        Some(&w.admin_a),
        Some(json!({"name": "Billing", "transfer_to": "+15550004444", "keywords": ["invoice"]})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["keywords"], json!(["invoice"]));
    assert_eq!(created.body["enabled"], true);
    let dup = send(
        &base,
        "POST",
        "/api/departments",
        Some(&w.admin_a),
        Some(json!({"name": "Billing", "transfer_to": "sip:billing@example.com"})),
    )
    .await;
    assert_eq!(dup.status, 409);
    let bad = send(
        &base,
        "POST",
        "/api/departments",
        Some(&w.admin_a),
        Some(json!({"name": "Sales", "transfer_to": "call me"})),
    )
    .await;
    assert_eq!(bad.status, 422);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let patched = send(
        &base,
        "PATCH",
        &format!("/api/departments/{id}"),
        Some(&w.admin_a),
        Some(json!({"enabled": false, "position": 2})),
    )
    .await;
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(
        send(&base, "GET", "/api/departments", Some(&w.member_a), None)
            .await
            .status,
        403
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/departments/{id}"),
            Some(&w.admin_b),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/departments/{id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        204
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn screening_policies_default_and_examples_keep_builtins(pool: PgPool) {
    let (_node, w, base) = setup(&pool).await;
    let list = send(
        &base,
        "GET",
        "/api/screening/policies",
        Some(&w.admin_a),
        None,
    )
    .await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|p| p["is_default"] == true));
    assert_eq!(items[2]["label"], "spam");
    assert_eq!(items[2]["action"], "end_call");
    // Marketing hears a do-not-call request and is ended, as the call flow does by default.
    assert_eq!(items[1]["label"], "marketing");
    assert_eq!(items[1]["action"], "end_call");
    let put = send(
        &base,
        "PUT",
        "/api/screening/policies/marketing",
        Some(&w.admin_a),
        Some(json!({"action": "end_call", "min_confidence": 0.6})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["is_default"], false);
    let other = send(
        &base,
        "GET",
        "/api/screening/policies",
        Some(&w.admin_b),
        None,
    )
    .await;
    assert!(
        other.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["is_default"] == true)
    );
    let reset = send(
        &base,
        "DELETE",
        "/api/screening/policies/marketing",
        Some(&w.admin_a),
        None,
    )
    .await;
    assert_eq!(reset.body["action"], "end_call");
    assert_eq!(reset.body["is_default"], true);
    assert_eq!(
        send(
            &base,
            "PUT",
            "/api/screening/policies/nice",
            Some(&w.admin_a),
            Some(json!({"action": "end_call", "min_confidence": 0}))
        )
        .await
        .status,
        404
    );

    let builtin: uuid::Uuid = sqlx::query_scalar("INSERT INTO screening_examples (text, label) VALUES ('You won a cruise', 'spam') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    let created = send(
        &base,
        "POST",
        "/api/screening/examples",
        Some(&w.admin_a),
        Some(json!({"text": "Calling about my crown", "label": "legit", "intent": "dental work"})),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["builtin"], false);
    let dup = send(
        &base,
        "POST",
        "/api/screening/examples",
        Some(&w.admin_a),
        Some(json!({"text": "Calling about my crown", "label": "legit"})),
    )
    .await;
    assert_eq!(dup.status, 409);
    let list = send(
        &base,
        "GET",
        "/api/screening/examples",
        Some(&w.admin_a),
        None,
    )
    .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let list_b = send(
        &base,
        "GET",
        "/api/screening/examples?label=legit",
        Some(&w.admin_b),
        None,
    )
    .await;
    assert_eq!(list_b.body["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/screening/examples/{builtin}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        403
    );
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/screening/examples/{id}"),
            Some(&w.admin_b),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/screening/examples/{id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        204
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn provider_keys_are_write_only_and_sealed(pool: PgPool) {
    let (_node, w, base) = setup(&pool).await;
    let list = send(&base, "GET", "/api/providers", Some(&w.admin_a), None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(list.body["items"][2]["provider"], "offline");
    let put = send(
        &base,
        "PUT",
        "/api/providers/llm",
        Some(&w.admin_a),
        Some(json!({"provider": "openai", "model": "gpt-x", "api_key": "sk-secret-value"})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["has_api_key"], true);
    assert!(!put.body.to_string().contains("sk-secret"));
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT api_key_encrypted FROM tenant_provider_settings")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !stored.windows(9).any(|w| w == b"sk-secret"),
        "sealed, not plain"
    );
    // Omitted key: kept. null: erased.
    let keep = send(
        &base,
        "PUT",
        "/api/providers/llm",
        Some(&w.admin_a),
        Some(json!({"provider": "openai", "model": "gpt-y"})),
    )
    .await;
    assert_eq!(keep.body["has_api_key"], true);
    assert_eq!(keep.body["model"], "gpt-y");
    let erase = send(
        &base,
        "PUT",
        "/api/providers/llm",
        Some(&w.admin_a),
        Some(json!({"provider": "openai", "api_key": null})),
    )
    .await;
    assert_eq!(erase.body["has_api_key"], false);
    let unknown = send(
        &base,
        "PUT",
        "/api/providers/tts",
        Some(&w.admin_a),
        Some(json!({"provider": "acme"})),
    )
    .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(
        send(
            &base,
            "PUT",
            "/api/providers/llm",
            Some(&w.member_a),
            Some(json!({"provider": "offline"}))
        )
        .await
        .status,
        403
    );
    let reset = send(
        &base,
        "DELETE",
        "/api/providers/llm",
        Some(&w.admin_a),
        None,
    )
    .await;
    assert_eq!(reset.body["is_default"], true);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn users_rules_last_admin_and_ended_sessions(pool: PgPool) {
    let (_node, w, base) = setup(&pool).await;
    let short = send(
        &base,
        "POST",
        "/api/users",
        Some(&w.admin_a),
        Some(json!({"email": "new@acme.test", "password": "short", "role": "member"})),
    )
    .await;
    assert_eq!(short.status, 422);
    let root = send(
        &base,
        "POST",
        "/api/users",
        Some(&w.admin_a),
        Some(json!({"email": "root2@acme.test", "password": PASSWORD, "role": "superadmin"})),
    )
    .await;
    assert_eq!(root.status, 403);
    let created = send(&base, "POST", "/api/users", Some(&w.admin_a), Some(json!({"email": "new@acme.test", "password": PASSWORD, "role": "member", "display_name": "New"}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.get("password_hash").is_none());
    let taken = send(
        &base,
        "POST",
        "/api/users",
        Some(&w.admin_a),
        Some(json!({"email": "NEW@acme.test", "password": PASSWORD, "role": "member"})),
    )
    .await;
    assert_eq!(taken.status, 409);
    assert_eq!(
        send(
            &base,
            "POST",
            "/api/users",
            Some(&w.member_a),
            Some(json!({"email": "x@acme.test", "password": PASSWORD, "role": "member"}))
        )
        .await
        .status,
        403
    );

    let list = send(&base, "GET", "/api/users", Some(&w.admin_a), None).await;
    let users = list.body["items"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    let admin_id = users.iter().find(|u| u["role"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let demote = send(
        &base,
        "PATCH",
        &format!("/api/users/{admin_id}"),
        Some(&w.admin_a),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(demote.status, 409, "last admin");
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/users/{admin_id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        409
    );
    assert_eq!(
        send(
            &base,
            "PATCH",
            &format!("/api/users/{admin_id}"),
            Some(&w.admin_b),
            Some(json!({"display_name": "x"}))
        )
        .await
        .status,
        404
    );

    // Disabling the member ends their session.
    let member_id = users
        .iter()
        .find(|u| u["email"] == "member@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(&base, "GET", "/api/me", Some(&w.member_a), None)
            .await
            .status,
        200
    );
    let disabled = send(
        &base,
        "PATCH",
        &format!("/api/users/{member_id}"),
        Some(&w.admin_a),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(
        send(&base, "GET", "/api/me", Some(&w.member_a), None)
            .await
            .status,
        401
    );
    let new_id = created.body["id"].as_str().unwrap();
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/users/{new_id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        204
    );
}
