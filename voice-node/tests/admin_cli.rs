//! `voice-node migrate | tenant | number | user`: admin without SQL, run as the built binary.
//!
//! Uses a fresh database on the server `DATABASE_URL` names (`cargo xtask test` sets it), or an
//! ephemeral private cluster when it is unset.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sqlx::PgPool;
use sqlx::types::Uuid;
use voice_node::local_postgres::LocalPostgres;

const BIN: &str = env!("CARGO_BIN_EXE_voice-node");

/// A database of its own for one test, dropped with the cluster (or left for the ephemeral
/// server `cargo xtask test` throws away).
struct TestDb {
    url: String,
    _cluster: Option<LocalPostgres>,
}

impl TestDb {
    async fn new() -> Self {
        let (server_url, cluster) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => (url, None),
            _ => {
                let pg = LocalPostgres::ephemeral()
                    .expect("an ephemeral Postgres (apt-get install postgresql)");
                (pg.url(), Some(pg))
            }
        };
        let name = format!("admin_cli_{}", Uuid::new_v4().simple());
        let admin = PgPool::connect(&server_url)
            .await
            .expect("connect to DATABASE_URL");
        // `name` is our own `admin_cli_<hex>`: nothing to inject.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Self {
            url: with_database(&server_url, &name),
            _cluster: cluster,
        }
    }

    async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(args, stdin, |cmd| {
            cmd.env("DATABASE_URL", &self.url);
        })
    }
}

/// `postgres://u@h:p/db?x` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn run(args: &[&str], stdin: Option<&str>, env: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env(&mut cmd);
    let mut child = cmd.spawn().expect("run voice-node");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // A command that refuses its arguments exits before reading stdin; the write then
            // fails with a broken pipe, which is not the test's concern (its exit status is).
            match pipe.write_all(text.as_bytes()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
        }
    }
    child.wait_with_output().unwrap()
}

/// The id on the last stdout line, checking the command succeeded.
fn created_id(output: &Output) -> Uuid {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout; stderr: {stderr}"));
    last.parse()
        .unwrap_or_else(|_| panic!("last stdout line {last:?} is not a uuid"))
}

fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for a failure: {output:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn creates_a_tenant_its_number_and_a_user_printing_each_id() {
    let db = TestDb::new().await;
    assert!(db.run(&["migrate"], None).status.success());

    let tenant = created_id(&db.run(
        &[
            "tenant",
            "create",
            "--name",
            "Acme Dental",
            "--mode",
            "receptionist",
        ],
        None,
    ));
    let number = created_id(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &tenant.to_string(),
            "--e164",
            "+1 415 555 0100",
            "--owner",
            "+14155550199",
        ],
        None,
    ));
    let forward = created_id(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &tenant.to_string(),
            "--e164",
            "+14155550101",
            "--mode",
            "forward",
        ],
        None,
    ));
    let user = created_id(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant.to_string(),
            "--email",
            "Owner@Acme.example",
            "--role",
            "admin",
        ],
        Some("s3cret pass\n"),
    ));

    let pool = db.pool().await;
    let (name, default_mode): (String, String) =
        sqlx::query_as("SELECT name, default_mode FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, "Acme Dental");
    assert_eq!(default_mode, "receptionist", "kept in tenants.default_mode");
    let (e164, mode, owner, owner_tenant): (String, String, Option<String>, Uuid) = sqlx::query_as(
        "SELECT e164, mode, owner_phone, tenant_id FROM phone_numbers WHERE id = $1",
    )
    .bind(number)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(e164, "+14155550100", "normalized to E.164");
    assert_eq!(mode, "receptionist", "the tenant's --mode is the default");
    assert_eq!(owner.as_deref(), Some("+14155550199"));
    assert_eq!(owner_tenant, tenant);
    let (mode,): (String,) = sqlx::query_as("SELECT mode FROM phone_numbers WHERE id = $1")
        .bind(forward)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "forward", "--mode wins over the tenant default");

    let (hash, role, user_tenant): (String, String, Option<Uuid>) =
        sqlx::query_as("SELECT password_hash, role, tenant_id FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(role, "admin");
    assert_eq!(user_tenant, Some(tenant));
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::password_hash::PasswordVerifier;
    let parsed = argon2::password_hash::phc::PasswordHash::new(&hash).unwrap();
    let argon = argon2::Argon2::default();
    assert!(
        argon.verify_password(b"s3cret pass", &parsed).is_ok(),
        "one trailing newline is not part of the password"
    );
    assert!(argon.verify_password(b"s3cret pass\n", &parsed).is_err());

    // A superadmin needs no tenant.
    let root = created_id(&db.run(
        &[
            "user",
            "create",
            "--email",
            "root@callgate.example",
            "--role",
            "superadmin",
        ],
        Some("pw"),
    ));
    let (root_tenant,): (Option<Uuid>,) =
        sqlx::query_as("SELECT tenant_id FROM users WHERE id = $1")
            .bind(root)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(root_tenant, None);

    // `tenant list` shows it with its default mode.
    let list = db.run(&["tenant", "list"], None);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains(&format!("{tenant}\treceptionist\tAcme Dental")),
        "{list}"
    );
    pool.close().await;
}

#[tokio::test]
async fn refuses_bad_input_with_a_clear_message_and_nonzero_exit() {
    let db = TestDb::new().await;
    assert!(db.run(&["migrate"], None).status.success());
    let tenant =
        created_id(&db.run(&["tenant", "create", "--name", "Bob's Plumbing"], None)).to_string();

    let err = failure(&db.run(
        &["number", "add", "--tenant", &tenant, "--e164", "4155550100"],
        None,
    ));
    assert!(
        err.contains("E.164") && err.contains("did you mean"),
        "{err}"
    );
    let err = failure(&db.run(
        &["number", "add", "--tenant", &tenant, "--e164", "call me"],
        None,
    ));
    assert!(err.contains("not an E.164 phone number"), "{err}");
    let err = failure(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &tenant,
            "--e164",
            "+14155550100",
            "--owner",
            "555",
        ],
        None,
    ));
    assert!(err.contains("--owner"), "{err}");

    let unknown = Uuid::new_v4().to_string();
    let err = failure(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &unknown,
            "--e164",
            "+14155550100",
        ],
        None,
    ));
    assert!(
        err.contains(&format!("no tenant with id {unknown}")),
        "{err}"
    );
    let err = failure(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            "not-a-uuid",
            "--e164",
            "+14155550100",
        ],
        None,
    ));
    assert!(err.contains("--tenant"), "{err}");

    created_id(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &tenant,
            "--e164",
            "+14155550100",
        ],
        None,
    ));
    let err = failure(&db.run(
        &[
            "number",
            "add",
            "--tenant",
            &tenant,
            "--e164",
            "+14155550100",
        ],
        None,
    ));
    assert!(err.contains("already assigned"), "{err}");

    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "a@b.example",
            "--role",
            "member",
        ],
        Some(""),
    ));
    assert!(err.contains("empty password"), "{err}");
    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "a@b.example",
            "--role",
            "member",
        ],
        Some("\n"),
    ));
    assert!(err.contains("empty password"), "{err}");
    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--email",
            "a@b.example",
            "--role",
            "member",
        ],
        Some("pw"),
    ));
    assert!(err.contains("--tenant is required"), "{err}");
    let err = failure(&db.run(
        &[
            "user", "create", "--tenant", &tenant, "--email", "nobody", "--role", "admin",
        ],
        Some("pw"),
    ));
    assert!(err.contains("e-mail"), "{err}");
    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "a@b.example",
            "--role",
            "owner",
        ],
        Some("pw"),
    ));
    assert!(err.contains("owner"), "{err}");
    created_id(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "a@b.example",
            "--role",
            "member",
        ],
        Some("pw"),
    ));
    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "A@B.example",
            "--role",
            "member",
        ],
        Some("pw"),
    ));
    assert!(err.contains("already exists"), "{err}");
    let err = failure(&db.run(
        &[
            "user",
            "create",
            "--tenant",
            &unknown,
            "--email",
            "c@b.example",
            "--role",
            "member",
        ],
        Some("pw"),
    ));
    assert!(err.contains("no tenant with id"), "{err}");
}

#[tokio::test]
async fn an_unmigrated_database_gets_a_hint_to_migrate() {
    let db = TestDb::new().await;
    let err = failure(&db.run(&["tenant", "create", "--name", "Early"], None));
    assert!(err.contains("voice-node migrate"), "{err}");
}

#[test]
fn without_database_url_the_private_cluster_is_started_and_migrated() {
    let dir = std::env::temp_dir().join(format!("callgate-admin-cli-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = run(&["tenant", "create", "--name", "Private"], None, |cmd| {
        cmd.env_remove("DATABASE_URL")
            .env("CALLGATE_DATA_DIR", &dir);
    });
    let id = created_id(&output);
    let again = run(
        &[
            "number",
            "add",
            "--tenant",
            &id.to_string(),
            "--e164",
            "+14155550100",
        ],
        None,
        |cmd| {
            cmd.env_remove("DATABASE_URL")
                .env("CALLGATE_DATA_DIR", &dir);
        },
    );
    created_id(&again);
    assert!(dir.join("postgres").join("PG_VERSION").exists());
    // The command stopped the cluster it started; nothing is left running in the dir.
    assert!(!dir.join("postgres").join("postmaster.pid").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn adds_knowledge_base_entries_and_names_an_unknown_tenant() {
    let db = TestDb::new().await;
    assert!(db.run(&["migrate"], None).status.success());
    let tenant = created_id(&db.run(&["tenant", "create", "--name", "Acme Dental"], None));
    let entry = created_id(&db.run(
        &[
            "kb",
            "add",
            "--tenant",
            &tenant.to_string(),
            "--question",
            "What are your opening hours?",
            "--answer",
            "We are open 8 to 6, Monday to Friday.",
        ],
        None,
    ));
    let pool = db.pool().await;
    let (owner, answer): (Uuid, String) =
        sqlx::query_as("SELECT tenant_id, answer FROM kb_entries WHERE id = $1")
            .bind(entry)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(owner, tenant);
    assert_eq!(answer, "We are open 8 to 6, Monday to Friday.");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'kb.create' AND tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    let unknown = Uuid::new_v4();
    let out = db.run(
        &[
            "kb",
            "add",
            "--tenant",
            &unknown.to_string(),
            "--question",
            "Q?",
            "--answer",
            "A.",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        failure(&out).contains("no tenant with id"),
        "{}",
        failure(&out)
    );
    let empty = db.run(
        &[
            "kb",
            "add",
            "--tenant",
            &tenant.to_string(),
            "--question",
            " ",
            "--answer",
            "A.",
        ],
        None,
    );
    assert!(
        failure(&empty).contains("must not be empty"),
        "{}",
        failure(&empty)
    );
}

#[tokio::test]
async fn adds_departments_the_receptionist_transfers_to_and_refuses_bad_targets() {
    let db = TestDb::new().await;
    assert!(db.run(&["migrate"], None).status.success());
    let tenant = created_id(&db.run(&["tenant", "create", "--name", "Acme Roofing"], None));
    let tenant_arg = tenant.to_string();
    let sales = created_id(&db.run(
        &[
            "department",
            "add",
            "--tenant",
            &tenant_arg,
            "--name",
            " Sales ",
            "--to",
            "+1 (415) 555-0111",
            "--keyword",
            "quote",
            "--keyword",
            " pricing ",
        ],
        None,
    ));
    let desk = created_id(&db.run(
        &[
            "department",
            "add",
            "--tenant",
            &tenant_arg,
            "--name",
            "Front desk",
            "--to",
            "sip:desk@acme.example",
            "--position",
            "1",
        ],
        None,
    ));
    let pool = db.pool().await;
    /// id, tenant, name, transfer_to, keywords, position, enabled
    type DepartmentRow = (Uuid, Uuid, String, String, Vec<String>, i32, bool);
    let rows: Vec<DepartmentRow> = sqlx::query_as(
        "SELECT id, tenant_id, name, transfer_to, keywords, position, enabled
         FROM departments ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                sales,
                tenant,
                "Sales".to_owned(),
                "+14155550111".to_owned(),
                vec!["quote".to_owned(), "pricing".to_owned()],
                0,
                true
            ),
            (
                desk,
                tenant,
                "Front desk".to_owned(),
                "sip:desk@acme.example".to_owned(),
                vec![],
                1,
                true
            ),
        ]
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'department.create' AND tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 2);

    let department = |tenant: &str, name: &str, to: &str| {
        db.run(
            &[
                "department",
                "add",
                "--tenant",
                tenant,
                "--name",
                name,
                "--to",
                to,
            ],
            None,
        )
    };
    let national = department(&tenant_arg, "Billing", "415 555 0112");
    assert!(
        failure(&national).contains("--to") && failure(&national).contains("E.164"),
        "{}",
        failure(&national)
    );
    let unnamed = department(&tenant_arg, "  ", "+14155550112");
    assert!(
        failure(&unnamed).contains("--name"),
        "{}",
        failure(&unnamed)
    );
    let unknown = department(&Uuid::new_v4().to_string(), "Billing", "+14155550112");
    assert!(
        failure(&unknown).contains("no tenant with id"),
        "{}",
        failure(&unknown)
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM departments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "nothing written for the refused ones");
}
