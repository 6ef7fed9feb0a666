//! The schema in `migrations/` applies to an empty database and its constraints hold.
//!
//! Each `#[sqlx::test]` gets a fresh database on the server named by `DATABASE_URL`, with
//! [`voice_node::db::MIGRATOR`] applied. `cargo xtask test` starts a private cluster and sets
//! `DATABASE_URL`; by hand: `cargo xtask db` in one terminal, then
//! `DATABASE_URL=… cargo test -p voice-node --test migrations`.

use sqlx::PgPool;
use sqlx::error::ErrorKind;
use sqlx::types::Uuid;

type TestResult = Result<(), sqlx::Error>;

/// The constraint kind a failed statement violated, or a panic if it did not fail that way.
fn violation<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> (ErrorKind, String) {
    match result {
        Err(sqlx::Error::Database(db)) => {
            (db.kind(), db.constraint().unwrap_or_default().to_owned())
        }
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

async fn tenant(pool: &PgPool, name: &str) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO tenants (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(pool)
        .await
}

async fn number(pool: &PgPool, tenant_id: Uuid, e164: &str) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO phone_numbers (tenant_id, e164, mode, owner_phone)
         VALUES ($1, $2, 'screening', '+15550000001') RETURNING id",
    )
    .bind(tenant_id)
    .bind(e164)
    .fetch_one(pool)
    .await
}

async fn call(
    pool: &PgPool,
    tenant_id: Uuid,
    number_id: Option<Uuid>,
    call_sid: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO calls (call_sid, tenant_id, number_id, from_number, to_number, mode)
         VALUES ($1, $2, $3, '+15551230000', '+15559870000', 'screening') RETURNING id",
    )
    .bind(call_sid)
    .bind(tenant_id)
    .bind(number_id)
    .fetch_one(pool)
    .await
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn schema_applies_to_an_empty_database(pool: PgPool) -> TestResult {
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&pool)
    .await?;
    tables.sort();
    let expected = [
        "audit_log",
        "call_events",
        "calls",
        "contacts",
        "departments",
        "jobs",
        "kb_entries",
        "leads",
        "outbound_deliveries",
        "phone_numbers",
        "recordings",
        "screening_examples",
        "screening_policies",
        "screening_results",
        "sessions",
        "sms_messages",
        "sms_threads",
        "tenant_provider_settings",
        "tenants",
        "transcript_turns",
        "users",
        "voice_nodes",
    ];
    assert_eq!(tables, expected);

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await?;
    assert_eq!(applied as usize, voice_node::db::MIGRATOR.iter().count());
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn every_tenant_owned_table_has_a_tenant_foreign_key(pool: PgPool) -> TestResult {
    // Tables that are deliberately not tenant-owned, with the reason in the migration.
    let exempt = ["tenants", "sessions", "voice_nodes"];
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT t.table_name::text FROM information_schema.tables t
         WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND t.table_name NOT LIKE '\\_sqlx%' AND NOT (t.table_name = ANY($1))
           AND NOT EXISTS (
             SELECT 1 FROM information_schema.columns c
             WHERE c.table_schema = 'public' AND c.table_name = t.table_name
               AND c.column_name = 'tenant_id')
         ORDER BY 1",
    )
    .bind(&exempt[..])
    .fetch_all(&pool)
    .await?;
    assert!(missing.is_empty(), "tables without tenant_id: {missing:?}");
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn duplicate_call_sid_is_rejected(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme Dental").await?;
    let sid = "CA0123456789abcdef0123456789abcdef";
    call(&pool, t, None, sid).await?;
    let (kind, constraint) = violation(call(&pool, t, None, sid).await);
    assert_eq!(kind, ErrorKind::UniqueViolation);
    assert_eq!(constraint, "calls_call_sid_key");

    // The retried-webhook path: the upsert keeps one row.
    let inserted = sqlx::query(
        "INSERT INTO calls (call_sid, tenant_id, from_number, to_number, mode)
         VALUES ($1, $2, '+15551230000', '+15559870000', 'screening')
         ON CONFLICT (call_sid) DO NOTHING",
    )
    .bind(sid)
    .bind(t)
    .execute(&pool)
    .await?;
    assert_eq!(inserted.rows_affected(), 0);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn unknown_screening_label_is_rejected_by_check(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let c = call(&pool, t, None, "CA-label").await?;
    let insert = |label: &'static str| {
        sqlx::query(
            "INSERT INTO screening_results (tenant_id, call_id, label, intent, confidence)
             VALUES ($1, $2, $3, 'sells extended warranties', 0.9)",
        )
        .bind(t)
        .bind(c)
        .bind(label)
        .execute(&pool)
    };
    let (kind, constraint) = violation(insert("robocall").await);
    assert_eq!(kind, ErrorKind::CheckViolation);
    assert_eq!(constraint, "screening_results_label_check");
    // Case matters: the domain enums serialize lowercase.
    assert_eq!(violation(insert("Spam").await).0, ErrorKind::CheckViolation);
    insert("spam").await?;
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn confidence_must_be_between_zero_and_one(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    for (i, confidence) in [-0.01f32, 1.01].into_iter().enumerate() {
        let c = call(&pool, t, None, &format!("CA-conf-{i}")).await?;
        let result = sqlx::query(
            "INSERT INTO screening_results (tenant_id, call_id, label, confidence)
             VALUES ($1, $2, 'legit', $3)",
        )
        .bind(t)
        .bind(c)
        .bind(confidence)
        .execute(&pool)
        .await;
        assert_eq!(
            violation(result).0,
            ErrorKind::CheckViolation,
            "{confidence}"
        );
    }
    Ok(())
}

/// The strings the `shared` crate's domain enums serialize to are exactly the ones the CHECKs
/// accept; anything else is refused.
#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn enum_columns_accept_exactly_the_domain_values(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;

    for (i, mode) in ["screening", "receptionist", "forward"].iter().enumerate() {
        let e164 = format!("+1555010000{i}");
        sqlx::query("INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, $2, $3)")
            .bind(t)
            .bind(&e164)
            .bind(mode)
            .execute(&pool)
            .await?;
    }
    let outcomes = [
        "completed",
        "transferred",
        "message_taken",
        "rejected",
        "voicemail",
        "missed",
        "failed",
        "abandoned",
    ];
    for outcome in outcomes {
        let c = call(&pool, t, None, &format!("CA-{outcome}")).await?;
        sqlx::query("UPDATE calls SET outcome = $2, ended_at = now() WHERE id = $1")
            .bind(c)
            .bind(outcome)
            .execute(&pool)
            .await?;
    }
    let bad_outcome = sqlx::query("UPDATE calls SET outcome = 'message-taken'")
        .execute(&pool)
        .await;
    assert_eq!(violation(bad_outcome).0, ErrorKind::CheckViolation);

    let bad_mode = sqlx::query(
        "INSERT INTO phone_numbers (tenant_id, e164, mode) VALUES ($1, '+15550200000', 'voicemail')",
    )
    .bind(t)
    .execute(&pool)
    .await;
    assert_eq!(violation(bad_mode).0, ErrorKind::CheckViolation);

    for (i, role) in ["admin", "member", "superadmin"].iter().enumerate() {
        sqlx::query(
            "INSERT INTO users (tenant_id, email, password_hash, role)
             VALUES ($1, $2, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', $3)",
        )
        .bind(t)
        .bind(format!("user{i}@example.com"))
        .bind(role)
        .execute(&pool)
        .await?;
    }
    Ok(())
}

/// The quoted strings of a CHECK constraint, in order: `CHECK ((mode = ANY (ARRAY['a'::text, …])))`.
async fn check_values(pool: &PgPool, constraint: &str) -> Result<Vec<String>, sqlx::Error> {
    let def: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
    )
    .bind(constraint)
    .fetch_one(pool)
    .await?;
    Ok(def
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect())
}

/// Each CHECK list is exactly the `shared` crate's enum, same strings, same order: a variant
/// added on one side only fails here, not in production.
#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn check_lists_match_the_shared_domain_enums(pool: PgPool) -> TestResult {
    use shared::domain::{CallMode, CallOutcome, Role, ScreeningLabel};
    fn strings<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| as_str(*v).to_owned()).collect()
    }
    let modes = strings(CallMode::ALL, CallMode::as_str);
    let labels = strings(ScreeningLabel::ALL, ScreeningLabel::as_str);
    let cases = [
        ("phone_numbers_mode_check", modes.clone()),
        ("tenants_default_mode_check", modes.clone()),
        ("calls_mode_check", modes),
        ("screening_results_label_check", labels.clone()),
        ("screening_policies_label_check", labels.clone()),
        ("screening_examples_label_check", labels),
        ("users_role_check", strings(Role::ALL, Role::as_str)),
        (
            "calls_outcome_check",
            strings(CallOutcome::ALL, CallOutcome::as_str),
        ),
    ];
    for (constraint, expected) in cases {
        assert_eq!(
            check_values(&pool, constraint).await?,
            expected,
            "{constraint}"
        );
    }
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn only_a_superadmin_may_have_no_tenant(pool: PgPool) -> TestResult {
    let insert = |email: &'static str, role: &'static str| {
        sqlx::query(
            "INSERT INTO users (email, password_hash, role)
             VALUES ($1, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', $2)",
        )
        .bind(email)
        .bind(role)
        .execute(&pool)
    };
    insert("root@example.com", "superadmin").await?;
    let (kind, constraint) = violation(insert("admin@example.com", "admin").await);
    assert_eq!(kind, ErrorKind::CheckViolation);
    assert_eq!(constraint, "users_tenant_required");
    // E-mail is unique whatever its case.
    let (kind, _) = violation(insert("Root@Example.com", "superadmin").await);
    assert_eq!(kind, ErrorKind::UniqueViolation);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn call_cannot_use_another_tenants_number(pool: PgPool) -> TestResult {
    let acme = tenant(&pool, "Acme").await?;
    let globex = tenant(&pool, "Globex").await?;
    let acme_number = number(&pool, acme, "+15550001111").await?;

    // Same tenant: fine.
    call(&pool, acme, Some(acme_number), "CA-own").await?;
    // Globex's call on Acme's number: the composite foreign key refuses it.
    let (kind, constraint) = violation(call(&pool, globex, Some(acme_number), "CA-cross").await);
    assert_eq!(kind, ErrorKind::ForeignKeyViolation);
    assert_eq!(constraint, "calls_number_id_tenant_id_fkey");
    // An unknown tenant is refused too.
    let (kind, _) = violation(call(&pool, Uuid::from_u128(0xdead_beef), None, "CA-ghost").await);
    assert_eq!(kind, ErrorKind::ForeignKeyViolation);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn turn_cannot_attach_to_another_tenants_call(pool: PgPool) -> TestResult {
    let acme = tenant(&pool, "Acme").await?;
    let globex = tenant(&pool, "Globex").await?;
    let acme_call = call(&pool, acme, None, "CA-acme").await?;
    let result = sqlx::query(
        "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at)
         VALUES ($1, $2, 0, 'caller', 'hello', now())",
    )
    .bind(globex)
    .bind(acme_call)
    .execute(&pool)
    .await;
    assert_eq!(violation(result).0, ErrorKind::ForeignKeyViolation);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn retried_turn_writes_are_idempotent(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let c = call(&pool, t, None, "CA-turns").await?;
    let write_turn = |seq: i32, text: &'static str| {
        sqlx::query(
            "INSERT INTO transcript_turns
               (tenant_id, call_id, seq, speaker, text, started_at, speech_end_ms, first_audio_frame_ms)
             VALUES ($1, $2, $3, 'caller', $4, now(), 1200, 1900)
             ON CONFLICT (call_id, seq) DO NOTHING",
        )
        .bind(t)
        .bind(c)
        .bind(seq)
        .bind(text)
        .execute(&pool)
    };
    assert_eq!(
        write_turn(0, "Hi, it's Dana from the dentist.")
            .await?
            .rows_affected(),
        1
    );
    // The flush after a DB outage sends the same turn again.
    assert_eq!(
        write_turn(0, "Hi, it's Dana from the dentist.")
            .await?
            .rows_affected(),
        0
    );
    assert_eq!(
        write_turn(1, "About Tuesday's appointment.")
            .await?
            .rows_affected(),
        1
    );

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM transcript_turns WHERE call_id = $1")
        .bind(c)
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 2);

    // Without ON CONFLICT the duplicate is an error, not a second row.
    let plain = sqlx::query(
        "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at)
         VALUES ($1, $2, 0, 'agent', 'again', now())",
    )
    .bind(t)
    .bind(c)
    .execute(&pool)
    .await;
    assert_eq!(violation(plain).0, ErrorKind::UniqueViolation);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn transcripts_are_searchable_by_stemmed_words(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let c = call(&pool, t, None, "CA-search").await?;
    sqlx::query(
        "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at)
         VALUES ($1, $2, 0, 'caller', 'I would like a refund for my cleaning', now())",
    )
    .bind(t)
    .bind(c)
    .execute(&pool)
    .await?;
    let found: Vec<Uuid> = sqlx::query_scalar(
        "SELECT call_id FROM transcript_turns
         WHERE tenant_id = $1 AND text_search @@ websearch_to_tsquery('english', $2)",
    )
    .bind(t)
    .bind("refunds")
    .fetch_all(&pool)
    .await?;
    assert_eq!(found, vec![c]);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn twilio_idempotency_token_deduplicates_call_events(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let c = call(&pool, t, None, "CA-events").await?;
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO call_events (tenant_id, call_id, kind, payload, idempotency_key)
             VALUES ($1, $2, 'status', '{\"CallStatus\":\"completed\"}', 'token-1')
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(t)
        .bind(c)
        .execute(&pool)
        .await?;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM call_events WHERE call_id = $1")
        .bind(c)
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 1);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn deleting_a_call_keeps_its_lead_and_recording(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let c = call(&pool, t, None, "CA-retention").await?;
    let lead: Uuid = sqlx::query_scalar(
        "INSERT INTO leads (tenant_id, call_id, name, callback_number, reason)
         VALUES ($1, $2, 'Dana', '+15551230000', 'new patient') RETURNING id",
    )
    .bind(t)
    .bind(c)
    .fetch_one(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO recordings (recording_sid, tenant_id, call_id) VALUES ('RE1', $1, $2)",
    )
    .bind(t)
    .bind(c)
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at) VALUES ($1, $2, 0, 'caller', 'hi', now())")
        .bind(t)
        .bind(c)
        .execute(&pool)
        .await?;

    sqlx::query("DELETE FROM calls WHERE id = $1")
        .bind(c)
        .execute(&pool)
        .await?;

    let (lead_call, lead_tenant): (Option<Uuid>, Uuid) =
        sqlx::query_as("SELECT call_id, tenant_id FROM leads WHERE id = $1")
            .bind(lead)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        (lead_call, lead_tenant),
        (None, t),
        "SET NULL (call_id) keeps tenant_id"
    );
    let recording_call: Option<Uuid> =
        sqlx::query_scalar("SELECT call_id FROM recordings WHERE recording_sid = 'RE1'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(recording_call, None);
    let turns: i64 = sqlx::query_scalar("SELECT count(*) FROM transcript_turns")
        .fetch_one(&pool)
        .await?;
    assert_eq!(turns, 0, "turns go with their call");
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn job_queue_polls_with_skip_locked(pool: PgPool) -> TestResult {
    for key in ["summary:1", "summary:2", "summary:1"] {
        sqlx::query(
            "INSERT INTO jobs (kind, payload, idempotency_key) VALUES ('summary', '{}', $1)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(key)
        .execute(&pool)
        .await?;
    }
    let claim = "UPDATE jobs SET status = 'running', locked_by = $1, locked_at = now(),
                        attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs
                             WHERE queue = 'default' AND status = 'queued' AND run_at <= now()
                             ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING idempotency_key";

    // Two workers inside open transactions never claim the same job.
    let mut a = pool.begin().await?;
    let mut b = pool.begin().await?;
    let first: Option<String> = sqlx::query_scalar(claim)
        .bind("node-a")
        .fetch_optional(&mut *a)
        .await?;
    let second: Option<String> = sqlx::query_scalar(claim)
        .bind("node-b")
        .fetch_optional(&mut *b)
        .await?;
    assert!(first.is_some() && second.is_some());
    assert_ne!(first, second);
    a.commit().await?;
    b.commit().await?;

    let none_left: Option<String> = sqlx::query_scalar(claim)
        .bind("node-c")
        .fetch_optional(&pool)
        .await?;
    assert_eq!(none_left, None, "the duplicate enqueue made no third job");

    // A running job must say who holds it.
    let orphan = sqlx::query("INSERT INTO jobs (kind, status) VALUES ('summary', 'running')")
        .execute(&pool)
        .await;
    assert_eq!(violation(orphan).0, ErrorKind::CheckViolation);
    Ok(())
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn one_open_sms_thread_per_caller_and_number(pool: PgPool) -> TestResult {
    let t = tenant(&pool, "Acme").await?;
    let n = number(&pool, t, "+15550003333").await?;
    let open = || {
        sqlx::query(
            "INSERT INTO sms_threads (tenant_id, number_id, caller_number) VALUES ($1, $2, '+15551230000')",
        )
        .bind(t)
        .bind(n)
        .execute(&pool)
    };
    open().await?;
    assert_eq!(violation(open().await).0, ErrorKind::UniqueViolation);
    sqlx::query("UPDATE sms_threads SET state = 'closed'")
        .execute(&pool)
        .await?;
    open().await?;
    Ok(())
}

/// 0004 moves a tenant's default mode out of its `tenant.create` audit entry into
/// `tenants.default_mode`: the latest valid recorded mode wins, anything else stays
/// `screening`, and the column refuses a mode that is not one of the three.
#[sqlx::test(migrations = false)]
async fn tenant_default_mode_is_backfilled_from_the_audit_log(pool: PgPool) -> TestResult {
    let migrator = &voice_node::db::MIGRATOR;
    let target = migrator
        .iter()
        .find(|m| m.version == 4)
        .expect("migration 0004_tenant_default_mode");
    for m in migrator.iter().filter(|m| m.version < target.version) {
        sqlx::raw_sql(m.sql.clone()).execute(&pool).await?;
    }
    let changed_mind = tenant(&pool, "Changed its mind").await?;
    let forward = tenant(&pool, "Forwarder").await?;
    let silent = tenant(&pool, "No mode recorded").await?;
    let garbage = tenant(&pool, "Garbage recorded").await?;
    let entries = [
        (changed_mind, "screening", "2026-01-01T00:00:00Z"),
        (changed_mind, "receptionist", "2026-02-01T00:00:00Z"),
        (forward, "forward", "2026-01-01T00:00:00Z"),
        (garbage, "voicemail", "2026-01-01T00:00:00Z"),
    ];
    for (tenant_id, mode, at) in entries {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, action, target, details, at)
             VALUES ($1, 'tenant.create', $1::text, jsonb_build_object('default_mode', $2::text), $3::timestamptz)",
        )
        .bind(tenant_id)
        .bind(mode)
        .bind(at)
        .execute(&pool)
        .await?;
    }
    sqlx::raw_sql(target.sql.clone()).execute(&pool).await?;

    let mode = |id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT default_mode FROM tenants WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
        }
    };
    assert_eq!(mode(changed_mind).await?, "receptionist");
    assert_eq!(mode(forward).await?, "forward");
    assert_eq!(mode(silent).await?, "screening");
    assert_eq!(mode(garbage).await?, "screening");
    let (kind, constraint) = violation(
        sqlx::query("UPDATE tenants SET default_mode = 'voicemail' WHERE id = $1")
            .bind(silent)
            .execute(&pool)
            .await,
    );
    assert_eq!(kind, ErrorKind::CheckViolation);
    assert_eq!(constraint, "tenants_default_mode_check");
    Ok(())
}
