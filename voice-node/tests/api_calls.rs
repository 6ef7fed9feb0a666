//! The calls API and tenant settings against real Postgres, for every role and every
//! cross-tenant attempt: another tenant's ids are 404, members cannot change settings (403), a
//! superadmin sees every tenant.

mod api_support;
mod node_support;

use api_support::*;
use node_support::TestNode;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

struct Fixture {
    node: TestNode,
    world: World,
    /// Tenant A: a screened legit call with a transcript (oldest), a spam call, a live call.
    a_legit: Uuid,
    a_spam: Uuid,
    a_live: Uuid,
    /// Tenant B's only call.
    b_call: Uuid,
}

impl Fixture {
    async fn new(pool: &PgPool) -> Fixture {
        let world = World::new(pool).await;
        let a = world.tenant_a;
        let a_legit = call(pool, a, "+14155550101", "screening", 30, false).await;
        turn(pool, a, a_legit, 0, "agent", "Hello, who is calling?").await;
        turn(
            pool,
            a,
            a_legit,
            1,
            "caller",
            "I need to reschedule my dental cleaning",
        )
        .await;
        screening(pool, a, a_legit, "legit", "reschedule a cleaning").await;
        let a_spam = call(pool, a, "+18005550199", "screening", 20, false).await;
        screening(pool, a, a_spam, "spam", "extended car warranty").await;
        let a_live = call(pool, a, "+14155550102", "receptionist", 1, true).await;
        let b_call = call(pool, world.tenant_b, "+13125550100", "forward", 10, false).await;
        turn(
            pool,
            world.tenant_b,
            b_call,
            0,
            "caller",
            "the dental pipe is leaking",
        )
        .await;
        let node = TestNode::start(pool.clone()).await;
        Fixture {
            node,
            world,
            a_legit,
            a_spam,
            a_live,
            b_call,
        }
    }

    async fn get(&self, cookie: &str, path: &str) -> Answer {
        send(&self.node.url(""), "GET", path, Some(cookie), None).await
    }

    async fn call_ids(&self, cookie: &str, path: &str) -> Vec<String> {
        let answer = self.get(cookie, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn members_see_only_their_tenants_calls_newest_first(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let ids = f.call_ids(&f.world.member_a, "/api/calls").await;
    assert_eq!(
        ids,
        [f.a_live, f.a_spam, f.a_legit].map(|id| id.to_string()),
        "newest first, tenant A only"
    );
    let ids = f.call_ids(&f.world.member_b, "/api/calls").await;
    assert_eq!(ids, [f.b_call.to_string()]);

    let page = f.get(&f.world.member_a, "/api/calls").await;
    let live = &page.body["items"][0];
    assert_eq!(live["live"], true);
    assert_eq!(live["duration_s"], serde_json::Value::Null);
    assert_eq!(live["outcome"], serde_json::Value::Null);
    assert_eq!(live["label"], serde_json::Value::Null);
    let legit = &page.body["items"][2];
    for field in [
        "id",
        "call_sid",
        "tenant_id",
        "direction",
        "from",
        "to",
        "caller_name",
        "started_at",
        "ended_at",
        "duration_s",
        "mode",
        "status",
        "outcome",
        "label",
        "intent",
        "confidence",
        "live",
        "has_recording",
        "has_lead",
    ] {
        assert!(legit.get(field).is_some(), "{field} missing: {legit}");
    }
    assert_eq!(legit["from"], "+14155550101");
    assert_eq!(legit["label"], "legit");
    assert_eq!(legit["duration_s"], 30);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn another_tenants_call_is_not_found_for_every_role_but_superadmin(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let b = f.b_call;
    for cookie in [&f.world.member_a, &f.world.admin_a] {
        for (method, path) in [
            ("GET", format!("/api/calls/{b}")),
            ("POST", format!("/api/calls/{b}/block-caller")),
            ("POST", format!("/api/calls/{b}/mark-known")),
        ] {
            let answer = send(&f.node.url(""), method, &path, Some(cookie), None).await;
            assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
            assert_eq!(answer.code(), "not_found");
            assert!(!answer.body.to_string().contains("leaking"));
        }
    }
    let delete = send(
        &f.node.url(""),
        "DELETE",
        &format!("/api/calls/{b}"),
        Some(&f.world.admin_a),
        None,
    )
    .await;
    assert_eq!(delete.status, 404);
    // Naming the other tenant explicitly does not help either.
    let cross = f
        .get(
            &f.world.member_a,
            &format!("/api/calls?tenant_id={}", f.world.tenant_b),
        )
        .await;
    assert_eq!(cross.status, 404);
    // A malformed id is simply not found.
    assert_eq!(
        f.get(&f.world.member_a, "/api/calls/not-a-uuid")
            .await
            .status,
        404
    );
    // The superadmin reads it, and lists every tenant's calls or one tenant's.
    let detail = f.get(&f.world.superadmin, &format!("/api/calls/{b}")).await;
    assert_eq!(detail.status, 200);
    assert_eq!(f.call_ids(&f.world.superadmin, "/api/calls").await.len(), 4);
    let only_b = f
        .call_ids(
            &f.world.superadmin,
            &format!("/api/calls?tenant_id={}", f.world.tenant_b),
        )
        .await;
    assert_eq!(only_b, [b.to_string()]);
    // Without a session: 401.
    let anonymous = send(&f.node.url(""), "GET", "/api/calls", None, None).await;
    assert_eq!(anonymous.status, 401);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn detail_has_transcript_timings_and_rationale_for_admins_only(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let path = format!("/api/calls/{}", f.a_legit);
    let admin = f.get(&f.world.admin_a, &path).await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    let body = &admin.body;
    assert_eq!(body["stir_verstat"], "TN-Validation-Passed-A");
    assert_eq!(body["node_id"], "node-a");
    assert_eq!(body["region"], "iad");
    assert_eq!(body["screening"]["label"], "legit");
    assert_eq!(
        body["screening"]["rationale"],
        "mentions an existing appointment"
    );
    assert_eq!(body["screening"]["action"], "transfer");
    let transcript = body["transcript"].as_array().unwrap();
    assert_eq!(transcript.len(), 2);
    assert_eq!(transcript[1]["speaker"], "caller");
    assert_eq!(transcript[1]["seq"], 1);
    assert_eq!(transcript[1]["timings"]["speech_end_ms"], 1000);
    assert_eq!(
        transcript[1]["timings"]["stt_final_ms"],
        serde_json::Value::Null
    );
    for field in [
        "recording",
        "lead",
        "contact",
        "summary",
        "answered_at",
        "number_id",
        "forwarded_from",
    ] {
        assert!(body.get(field).is_some(), "{field} missing");
    }
    let member = f.get(&f.world.member_a, &path).await;
    assert_eq!(
        member.body["screening"]["rationale"],
        serde_json::Value::Null
    );
    assert_eq!(member.body["screening"]["label"], "legit");
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn filters_combine_and_the_cursor_pages_through(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let m = &f.world.member_a;
    assert_eq!(
        f.call_ids(m, "/api/calls?label=spam").await,
        [f.a_spam.to_string()]
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?label=none").await,
        [f.a_live.to_string()]
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?mode=receptionist").await,
        [f.a_live.to_string()]
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?live=true").await,
        [f.a_live.to_string()]
    );
    assert_eq!(f.call_ids(m, "/api/calls?live=false").await.len(), 2);
    assert_eq!(
        f.call_ids(m, "/api/calls?outcome=message_taken")
            .await
            .len(),
        2
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?from=%2B1415*").await,
        [f.a_live, f.a_legit].map(|id| id.to_string())
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?from=%2B18005550199").await,
        [f.a_spam.to_string()]
    );
    // Stemmed full text over the transcript ("cleanings" finds "cleaning"); tenant B's "dental"
    // turn stays out.
    assert_eq!(
        f.call_ids(m, "/api/calls?q=cleanings").await,
        [f.a_legit.to_string()]
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?q=dental").await,
        [f.a_legit.to_string()]
    );
    assert_eq!(
        f.call_ids(m, "/api/calls?q=warranty").await,
        [f.a_spam.to_string()]
    );
    let since = (chrono::Utc::now() - chrono::Duration::minutes(25))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        f.call_ids(m, &format!("/api/calls?since={since}&label=spam"))
            .await
            .len(),
        1
    );
    assert_eq!(
        f.call_ids(m, &format!("/api/calls?until={since}")).await,
        [f.a_legit.to_string()]
    );

    let first = f.get(m, "/api/calls?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = f
        .get(m, &format!("/api/calls?limit=2&cursor={cursor}"))
        .await;
    let ids: Vec<_> = second.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!(f.a_legit.to_string())]);
    assert_eq!(second.body["next_cursor"], serde_json::Value::Null);

    for bad in [
        "/api/calls?label=nice",
        "/api/calls?limit=0",
        "/api/calls?limit=abc",
        "/api/calls?cursor=zzz",
        "/api/calls?colour=red",
    ] {
        let answer = f.get(m, bad).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert_eq!(answer.code(), "bad_request");
    }
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn block_and_known_upsert_one_contact_and_are_audited(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let base = f.node.url("");
    let block = send(
        &base,
        "POST",
        &format!("/api/calls/{}/block-caller", f.a_spam),
        Some(&f.world.member_a),
        Some(json!({"note": "warranty robot"})),
    )
    .await;
    assert_eq!(block.status, 200, "{}", block.body);
    assert_eq!(block.body["contact"]["kind"], "block");
    assert_eq!(block.body["contact"]["number"], "+18005550199");
    let known = send(
        &base,
        "POST",
        &format!("/api/calls/{}/mark-known", f.a_spam),
        Some(&f.world.member_a),
        Some(json!({"name": "Actually Bob"})),
    )
    .await;
    assert_eq!(known.status, 200);
    assert_eq!(known.body["contact"]["kind"], "allow");
    assert_eq!(
        known.body["contact"]["id"], block.body["contact"]["id"],
        "never on both lists"
    );
    let detail = f
        .get(&f.world.member_a, &format!("/api/calls/{}", f.a_spam))
        .await;
    assert_eq!(detail.body["contact"]["kind"], "allow");
    assert_eq!(detail.body["contact"]["name"], "Actually Bob");
    let list = f.get(&f.world.member_a, "/api/contacts?kind=allow").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let other = f.get(&f.world.member_b, "/api/contacts").await;
    assert_eq!(other.body["items"].as_array().unwrap().len(), 0);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action IN ('call.block_caller', 'call.mark_known') AND tenant_id = $1")
        .bind(f.world.tenant_a)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audited, 2);
    // Members may not delete contacts; the tenant's admin may, another tenant's admin may not.
    let id = known.body["contact"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/contacts/{id}"),
            Some(&f.world.member_a),
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
            &format!("/api/contacts/{id}"),
            Some(&f.world.admin_b),
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
            &format!("/api/contacts/{id}"),
            Some(&f.world.admin_a),
            None
        )
        .await
        .status,
        204
    );
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn only_admins_delete_calls_and_the_recording_is_queued_for_deletion(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    sqlx::query("INSERT INTO recordings (recording_sid, tenant_id, call_id, status) VALUES ('RE1', $1, $2, 'completed')")
        .bind(f.world.tenant_a)
        .bind(f.a_legit)
        .execute(&pool)
        .await
        .unwrap();
    let base = f.node.url("");
    let path = format!("/api/calls/{}", f.a_legit);
    let member = send(&base, "DELETE", &path, Some(&f.world.member_a), None).await;
    assert_eq!(member.status, 403);
    assert_eq!(member.code(), "forbidden");
    let detail = f.get(&f.world.admin_a, &path).await;
    assert_eq!(detail.body["has_recording"], true);
    assert_eq!(
        detail.body["recording"]["url"],
        format!("/api/calls/{}/recording", f.a_legit)
    );
    assert_eq!(
        send(&base, "DELETE", &path, Some(&f.world.admin_a), None)
            .await
            .status,
        204
    );
    assert_eq!(f.get(&f.world.admin_a, &path).await.status, 404);
    let turns: i64 = sqlx::query_scalar("SELECT count(*) FROM transcript_turns WHERE call_id = $1")
        .bind(f.a_legit)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(turns, 0);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'recording.delete'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'call.delete'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn settings_are_for_admins_of_the_tenant(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let base = f.node.url("");
    let w = &f.world;
    // Members: 403 on every settings endpoint.
    for (method, path, body) in [
        ("GET", "/api/tenant", None),
        ("PATCH", "/api/tenant", Some(json!({"ai_enabled": false}))),
        ("GET", "/api/kb", None),
        (
            "POST",
            "/api/kb",
            Some(json!({"question": "q", "answer": "a"})),
        ),
    ] {
        let answer = send(&base, method, path, Some(&w.member_a), body).await;
        assert_eq!(answer.status, 403, "{method} {path}");
        assert_eq!(answer.code(), "forbidden");
    }
    // A superadmin must pick a tenant.
    let answer = send(&base, "GET", "/api/tenant", Some(&w.superadmin), None).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.code(), "tenant_required");
    let answer = send(
        &base,
        "GET",
        &format!("/api/tenant?tenant_id={}", w.tenant_b),
        Some(&w.superadmin),
        None,
    )
    .await;
    assert_eq!(answer.body["name"], "Bolt Plumbing");
    // An admin naming another tenant: 404.
    let answer = send(
        &base,
        "GET",
        &format!("/api/tenant?tenant_id={}", w.tenant_b),
        Some(&w.admin_a),
        None,
    )
    .await;
    assert_eq!(answer.status, 404);

    let patch = send(
        &base,
        "PATCH",
        "/api/tenant",
        Some(&w.admin_a),
        Some(json!({
            "timezone": "America/New_York",
            "business_hours": {"mon": [["09:00", "17:00"]]},
            "text_back_template": "Sorry we missed you at {business}."
        })),
    )
    .await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    assert_eq!(patch.body["timezone"], "America/New_York");
    assert_eq!(patch.body["business_hours"]["mon"][0][1], "17:00");
    let bad = send(
        &base,
        "PATCH",
        "/api/tenant",
        Some(&w.admin_a),
        Some(json!({"timezone": "Mars/Olympus"})),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(
        bad.body["error"]["details"]["fields"]["timezone"],
        "is not an IANA time zone"
    );
    let bad = send(
        &base,
        "PATCH",
        "/api/tenant",
        Some(&w.admin_a),
        Some(json!({"business_hours": {"mon": [["17:00", "09:00"]]}})),
    )
    .await;
    assert_eq!(bad.status, 422);

    let tenants = send(&base, "GET", "/api/tenants", Some(&w.member_a), None).await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 1);
    let tenants = send(&base, "GET", "/api/tenants", Some(&w.superadmin), None).await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        send(
            &base,
            "POST",
            "/api/tenants",
            Some(&w.admin_a),
            Some(json!({"name": "X"}))
        )
        .await
        .status,
        403
    );
    let created = send(
        &base,
        "POST",
        "/api/tenants",
        Some(&w.superadmin),
        Some(json!({"name": "Cato Law"})),
    )
    .await;
    assert_eq!(created.status, 201);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn knowledge_base_crud_stays_inside_the_tenant(pool: PgPool) {
    let f = Fixture::new(&pool).await;
    let base = f.node.url("");
    let w = &f.world;
    let created = send(
        &base,
        "POST",
        "/api/kb",
        Some(&w.admin_a),
        Some(json!({"question": "Opening hours?", "answer": "9 to 5"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["embedded"], false);
    assert_eq!(created.body["enabled"], true);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let patched = send(
        &base,
        "PATCH",
        &format!("/api/kb/{id}"),
        Some(&w.admin_a),
        Some(json!({"answer": "8 to 6"})),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["answer"], "8 to 6");
    assert_eq!(patched.body["question"], "Opening hours?");
    let found = send(&base, "GET", "/api/kb?q=OPENING", Some(&w.admin_a), None).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    let none = send(&base, "GET", "/api/kb?q=parking", Some(&w.admin_a), None).await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0);
    // Tenant B's admin neither sees nor edits it.
    assert_eq!(
        send(&base, "GET", "/api/kb", Some(&w.admin_b), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        send(
            &base,
            "PATCH",
            &format!("/api/kb/{id}"),
            Some(&w.admin_b),
            Some(json!({"answer": "x"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/kb/{id}"),
            Some(&w.admin_b),
            None
        )
        .await
        .status,
        404
    );
    let empty = send(
        &base,
        "POST",
        "/api/kb",
        Some(&w.admin_a),
        Some(json!({"question": " ", "answer": "a"})),
    )
    .await;
    assert_eq!(empty.status, 422);
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/api/kb/{id}"),
            Some(&w.admin_a),
            None
        )
        .await
        .status,
        204
    );
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY at")
            .bind(w.tenant_a)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited, ["kb.create", "kb.update", "kb.delete"]);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn voice_token_is_503_until_configured_then_a_jwt_for_the_user(pool: PgPool) {
    let world = World::new(&pool).await;
    number(&pool, world.tenant_a, "+15550001111").await;
    let node = TestNode::start(pool.clone()).await;
    let answer = send(
        &node.url(""),
        "POST",
        "/api/voice/token",
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.code(), "voice_not_configured");

    let node = TestNode::start_with(
        pool.clone(),
        &[
            ("TWILIO_ACCOUNT_SID", "ACtest"),
            ("TWILIO_API_KEY_SID", "SKtest"),
            ("TWILIO_API_KEY_SECRET", "secret"),
            ("TWIML_APP_SID", "APtest"),
        ],
    )
    .await;
    let answer = send(
        &node.url(""),
        "POST",
        "/api/voice/token",
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let identity = answer.body["identity"].as_str().unwrap();
    assert!(
        identity.starts_with(&format!("cg_{}_", world.tenant_a.simple())),
        "{identity}"
    );
    assert_eq!(answer.body["caller_ids"], json!(["+15550001111"]));
    let claims =
        shared::access_token::decode_and_verify(answer.body["token"].as_str().unwrap(), "secret")
            .unwrap();
    assert_eq!(claims.grants.identity.as_deref(), Some(identity));
    let superadmin = send(
        &node.url(""),
        "POST",
        "/api/voice/token",
        Some(&world.superadmin),
        None,
    )
    .await;
    assert_eq!(superadmin.code(), "tenant_required");
}
