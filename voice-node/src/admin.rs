//! Admin without SQL: migrations, tenants, numbers and dashboard users from the command line.
//!
//! ```text
//! voice-node migrate
//! voice-node tenant create --name "Acme Dental" [--mode screening|receptionist|forward]
//! voice-node tenant list
//! voice-node number add --tenant ID --e164 +14155550100 [--owner +14155550199] [--mode …]
//! voice-node kb add --tenant ID --question "…" --answer "…"
//! voice-node department add --tenant ID --name Sales --to +14155550111 [--keyword pricing]…
//! echo 'secret' | voice-node user create --tenant ID --email a@b.c --role admin|member|superadmin
//! ```
//!
//! Every `create`/`add` prints the new row's id alone on the last line of stdout (scripts take
//! `| tail -n1`); a human-readable note goes to stderr. Errors go to stderr with a non-zero exit
//! and say what to fix.
//!
//! Database: `DATABASE_URL`, or — when it is unset — the private cluster under
//! `$CALLGATE_DATA_DIR/postgres` (default `./.callgate/postgres`), the same one `voice-node
//! serve` and `cargo xtask db` use ([`database_from_env`]). The private cluster is migrated
//! automatically; a `DATABASE_URL` database is migrated only by `voice-node migrate` (on Fly.io,
//! the `release_command`), so an admin command never changes a shared schema by surprise.
//!
//! A tenant's `--mode` is the default mode of the numbers added to it later: the
//! `tenants.default_mode` column (migration 0004; `screening` when not given), which
//! `number add` reads when `--mode` is not given.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use shared::domain::{CallMode, Role};
use sqlx::PgPool;
use sqlx::types::Uuid;

use crate::db;
use crate::local_postgres::LocalPostgres;

/// `voice-node tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id on the last line of stdout.
    Create {
        /// Display name (the business), e.g. "Acme Dental".
        #[arg(long)]
        name: String,
        /// Default mode of the numbers added to this tenant later (`number add --mode` wins).
        #[arg(long)]
        mode: Option<CallMode>,
    },
    /// List tenants: id, default mode and name, one per line, tab-separated.
    List,
}

/// `voice-node number …`
#[derive(Debug, Subcommand)]
pub enum NumberCommand {
    /// Assign a phone number to a tenant; prints the number's id on the last line of stdout.
    Add {
        /// The tenant's id (from `tenant create` or `tenant list`).
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// The number in E.164, e.g. +14155550100 (spaces and dashes are dropped).
        #[arg(long)]
        e164: String,
        /// The owner's phone in E.164: where legit callers are transferred and forward mode dials.
        #[arg(long)]
        owner: Option<String>,
        /// What the number does with calls; default: the tenant's `--mode`, else screening.
        #[arg(long)]
        mode: Option<CallMode>,
    },
}

/// `voice-node kb …`
#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Add a knowledge-base entry the receptionist answers from; prints its id on the last line
    /// of stdout. Its embedding is computed by the node when it first needs it.
    Add {
        /// The tenant's id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// A question as callers ask it, e.g. "What are your opening hours?".
        #[arg(long)]
        question: String,
        /// What the agent says back.
        #[arg(long)]
        answer: String,
    },
}

/// `voice-node department …`
#[derive(Debug, Subcommand)]
pub enum DepartmentCommand {
    /// Add a receptionist transfer target; prints its id on the last line of stdout. The same
    /// row the dashboard's Departments settings page writes.
    Add {
        /// The tenant's id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// How callers ask for it and how the agent names it, e.g. "Sales".
        #[arg(long)]
        name: String,
        /// Where the call is put through: E.164 (+14155550111) or a sip:/sips: URI.
        #[arg(long)]
        to: String,
        /// A word that sends a caller here ("pricing", "invoice"); repeat for more.
        #[arg(long = "keyword", value_name = "WORD")]
        keywords: Vec<String>,
        /// Order among the tenant's departments (lowest first: the one "a person" goes to).
        #[arg(long, default_value_t = 0)]
        position: i32,
    },
}

/// `voice-node user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a dashboard user; the password is read from stdin. Prints the user's id on the last
    /// line of stdout.
    Create {
        /// The user's tenant (may be omitted for a superadmin).
        #[arg(long, value_name = "ID")]
        tenant: Option<Uuid>,
        /// Login e-mail (unique, case-insensitive).
        #[arg(long)]
        email: String,
        /// admin, member or superadmin.
        #[arg(long)]
        role: Role,
    },
}

/// `voice-node migrate`: applies the embedded migrations to the database and exits.
pub async fn migrate() -> anyhow::Result<ExitCode> {
    let (pool, _cluster) = database_from_env().await?;
    db::migrate(&pool)
        .await
        .context("applying the database migrations")?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    eprintln!("database is up to date ({applied} migrations applied)");
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `voice-node tenant …`
pub async fn tenant(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    let db = AdminDb::open().await?;
    match cmd {
        TenantCommand::Create { name, mode } => {
            let name = name.trim();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            let id = db.create_tenant(name, mode).await?;
            eprintln!(
                "created tenant {name:?} (numbers default to {})",
                mode.unwrap_or(CallMode::Screening)
            );
            println!("{id}");
        }
        TenantCommand::List => {
            for (id, name, mode) in db.list_tenants().await? {
                println!("{id}\t{}\t{name}", mode.as_deref().unwrap_or("-"));
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `voice-node number …`
pub async fn number(cmd: NumberCommand) -> anyhow::Result<ExitCode> {
    let NumberCommand::Add {
        tenant,
        e164,
        owner,
        mode,
    } = cmd;
    // Validate before touching the database: a typo should not cost a cluster start.
    let e164 = parse_e164("--e164", &e164)?;
    let owner = owner.map(|o| parse_e164("--owner", &o)).transpose()?;
    let db = AdminDb::open().await?;
    let (id, mode) = db.add_number(tenant, &e164, owner.as_deref(), mode).await?;
    eprintln!("added {e164} to tenant {tenant} in {mode} mode");
    println!("{id}");
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `voice-node kb …`
pub async fn kb(cmd: KbCommand) -> anyhow::Result<ExitCode> {
    let KbCommand::Add {
        tenant,
        question,
        answer,
    } = cmd;
    let (question, answer) = (question.trim(), answer.trim());
    if question.is_empty() || answer.is_empty() {
        bail!("--question and --answer must not be empty");
    }
    let db = AdminDb::open().await?;
    let id = db.add_kb_entry(tenant, question, answer).await?;
    eprintln!("added a knowledge-base entry to tenant {tenant}");
    println!("{id}");
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `voice-node department …`
pub async fn department(cmd: DepartmentCommand) -> anyhow::Result<ExitCode> {
    let DepartmentCommand::Add {
        tenant,
        name,
        to,
        keywords,
        position,
    } = cmd;
    if !crate::api::settings::departments::valid_name(&name) {
        bail!("--name must be 1 to 100 characters");
    }
    let name = name.trim();
    let to = if shared::routing::is_sip_uri(&to) {
        to
    } else {
        parse_e164("--to", &to).context("--to takes an E.164 number or a sip:/sips: URI")?
    };
    let keywords: Vec<String> = keywords
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    let db = AdminDb::open().await?;
    let id = db
        .add_department(tenant, name, &to, &keywords, position)
        .await?;
    eprintln!("added department {name:?} to tenant {tenant}");
    println!("{id}");
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `voice-node user …`
pub async fn user(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Create {
        tenant,
        email,
        role,
    } = cmd;
    let email = email.trim().to_owned();
    if !looks_like_email(&email) {
        bail!("--email {email:?} is not an e-mail address (expected name@domain)");
    }
    if tenant.is_none() && role != Role::Superadmin {
        bail!("--tenant is required for role {role} (only a superadmin may have no tenant)");
    }
    let password = read_password()?;
    let hash = hash_password(&password)?;
    let db = AdminDb::open().await?;
    let id = db.create_user(tenant, &email, role, &hash).await?;
    eprintln!("created {role} {email}");
    println!("{id}");
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

/// Connects to the node's database: `DATABASE_URL` when set, else the private cluster under
/// `$CALLGATE_DATA_DIR/postgres` (default `./.callgate/postgres`), started — or attached to, when
/// `voice-node serve` already runs it — from the machine's `initdb`/`pg_ctl`.
///
/// Keep the returned [`LocalPostgres`] alive as long as the pool: dropping it stops a cluster this
/// process started (one it attached to keeps running). Does not migrate.
pub async fn database_from_env() -> anyhow::Result<(PgPool, Option<LocalPostgres>)> {
    if let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let pool = db::connect(url.trim())
            .await
            .with_context(|| format!("cannot connect to DATABASE_URL ({})", redact_url(&url)))?;
        return Ok((pool, None));
    }
    let dir = private_cluster_dir();
    let cluster = {
        let start_dir = dir.clone();
        tokio::task::spawn_blocking(move || LocalPostgres::persistent(start_dir))
            .await
            .context("the Postgres start-up task failed")?
            .with_context(|| {
                format!(
                    "DATABASE_URL is unset, so the private Postgres cluster in {} is used, and it \
                     could not be started",
                    dir.display()
                )
            })?
    };
    let pool = db::connect(&cluster.url())
        .await
        .with_context(|| format!("cannot connect to the private cluster in {}", dir.display()))?;
    Ok((pool, Some(cluster)))
}

/// `$CALLGATE_DATA_DIR/postgres`, default `./.callgate/postgres`.
pub fn private_cluster_dir() -> PathBuf {
    std::env::var_os("CALLGATE_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".callgate"))
        .join("postgres")
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for error messages.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "unparseable URL".to_owned();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{user}:***@{host}")
            } else {
                format!("{user}@{host}")
            }
        }
        None => authority.to_owned(),
    };
    format!(
        "{scheme}://{authority}/{}",
        path.split('?').next().unwrap_or("")
    )
}

/// The admin commands' view of the database.
struct AdminDb {
    /// Connections to the node's database.
    pool: PgPool,
    /// Held so a private cluster this command started stays up until the command is done.
    _cluster: Option<LocalPostgres>,
}

impl AdminDb {
    /// Connects (see [`database_from_env`]) and migrates a private cluster.
    async fn open() -> anyhow::Result<Self> {
        let (pool, cluster) = database_from_env().await?;
        if cluster.is_some() {
            db::migrate(&pool)
                .await
                .context("migrating the private cluster")?;
        }
        Ok(Self {
            pool,
            _cluster: cluster,
        })
    }

    async fn close(self) {
        self.pool.close().await;
    }

    async fn create_tenant(&self, name: &str, mode: Option<CallMode>) -> anyhow::Result<Uuid> {
        let mut tx = self.pool.begin().await.map_err(schema_hint)?;
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO tenants (name, default_mode) VALUES ($1, COALESCE($2, 'screening'))
             RETURNING id",
        )
        .bind(name)
        .bind(mode.map(CallMode::as_str))
        .fetch_one(&mut *tx)
        .await
        .map_err(schema_hint)?;
        let details = serde_json::json!({
            "name": name,
            "default_mode": mode.map(CallMode::as_str),
            "via": "cli",
        });
        audit(&mut tx, Some(id), "tenant.create", &id.to_string(), details).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn list_tenants(&self) -> anyhow::Result<Vec<(Uuid, String, Option<String>)>> {
        let rows = sqlx::query_as(
            "SELECT t.id, t.name, t.default_mode FROM tenants t ORDER BY t.created_at, t.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(schema_hint)?;
        Ok(rows)
    }

    /// Adds a knowledge-base entry; returns its id.
    async fn add_kb_entry(
        &self,
        tenant: Uuid,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.pool.begin().await.map_err(schema_hint)?;
        let inserted: Result<Uuid, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO kb_entries (tenant_id, question, answer) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(tenant)
        .bind(question)
        .bind(answer)
        .fetch_one(&mut *tx)
        .await;
        let id = under_tenant(inserted, tenant)?;
        audit(
            &mut tx,
            Some(tenant),
            "kb.create",
            &format!("kb_entry:{id}"),
            serde_json::json!({ "question": question }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Adds a department; returns its id.
    async fn add_department(
        &self,
        tenant: Uuid,
        name: &str,
        to: &str,
        keywords: &[String],
        position: i32,
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.pool.begin().await.map_err(schema_hint)?;
        let inserted: Result<Uuid, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO departments (tenant_id, name, transfer_to, keywords, position)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(name)
        .bind(to)
        .bind(keywords)
        .bind(position)
        .fetch_one(&mut *tx)
        .await;
        let id = under_tenant(inserted, tenant)?;
        audit(
            &mut tx,
            Some(tenant),
            "department.create",
            &format!("department:{id}"),
            serde_json::json!({ "name": name, "via": "cli" }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Adds a number; returns its id and the mode it got.
    async fn add_number(
        &self,
        tenant: Uuid,
        e164: &str,
        owner: Option<&str>,
        mode: Option<CallMode>,
    ) -> anyhow::Result<(Uuid, CallMode)> {
        let mut tx = self.pool.begin().await.map_err(schema_hint)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await
                .map_err(schema_hint)?;
        if !exists {
            bail!(
                "no tenant with id {tenant}; create one with `voice-node tenant create --name …` \
                 or list them with `voice-node tenant list`"
            );
        }
        let mode = match mode {
            Some(mode) => mode,
            None => tenant_default_mode(&mut tx, tenant).await?,
        };
        let inserted: Result<Uuid, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO phone_numbers (tenant_id, e164, mode, owner_phone)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(tenant)
        .bind(e164)
        .bind(mode.as_str())
        .bind(owner)
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let holder: Option<Uuid> =
                    sqlx::query_scalar("SELECT tenant_id FROM phone_numbers WHERE e164 = $1")
                        .bind(e164)
                        .fetch_optional(&self.pool)
                        .await
                        .unwrap_or(None);
                match holder {
                    Some(holder) => bail!("{e164} is already assigned to tenant {holder}"),
                    None => bail!("{e164} is already assigned"),
                }
            }
            Err(e) => return Err(schema_hint(e)),
        };
        let details = serde_json::json!({ "e164": e164, "mode": mode.as_str(), "via": "cli" });
        audit(
            &mut tx,
            Some(tenant),
            "number.add",
            &id.to_string(),
            details,
        )
        .await?;
        tx.commit().await?;
        Ok((id, mode))
    }

    async fn create_user(
        &self,
        tenant: Option<Uuid>,
        email: &str,
        role: Role,
        password_hash: &str,
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.pool.begin().await.map_err(schema_hint)?;
        if let Some(tenant) = tenant {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(schema_hint)?;
            if !exists {
                bail!("no tenant with id {tenant}; list them with `voice-node tenant list`");
            }
        }
        let inserted: Result<Uuid, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO users (tenant_id, email, password_hash, role)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(tenant)
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                bail!("a user with e-mail {email} already exists")
            }
            Err(e) => return Err(schema_hint(e)),
        };
        let details = serde_json::json!({ "email": email, "role": role.as_str(), "via": "cli" });
        audit(&mut tx, tenant, "user.create", &id.to_string(), details).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// The id of a row inserted under `tenant`, or what went wrong: a foreign-key violation means
/// there is no such tenant.
fn under_tenant(inserted: Result<Uuid, sqlx::Error>, tenant: Uuid) -> anyhow::Result<Uuid> {
    match inserted {
        Ok(id) => Ok(id),
        Err(sqlx::Error::Database(db))
            if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
        {
            bail!("no tenant with id {tenant}; list them with `voice-node tenant list`")
        }
        Err(e) => Err(schema_hint(e)),
    }
}

/// `tenants.default_mode` of `tenant` (the schema's CHECK keeps it one of the modes).
async fn tenant_default_mode(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
) -> anyhow::Result<CallMode> {
    let stored: String = sqlx::query_scalar("SELECT default_mode FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .map_err(schema_hint)?;
    stored
        .parse()
        .map_err(|_| anyhow::anyhow!("tenant {tenant} has an unknown default mode {stored:?}"))
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    tenant: Option<Uuid>,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, action, target, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(action)
    .bind(target)
    .bind(details)
    .execute(&mut *tx)
    .await
    .context("writing the audit log")?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Adds "run `voice-node migrate`" to errors from a database without the schema.
fn schema_hint(e: sqlx::Error) -> anyhow::Error {
    // 42P01 undefined table: no schema at all; 42703 undefined column: an older schema (e.g.
    // before `tenants.default_mode`).
    let undefined = matches!(&e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("42P01" | "42703")));
    let e = anyhow::Error::new(e);
    if undefined {
        e.context(
            "the database has no callgate schema or an older one; run `voice-node migrate` first",
        )
    } else {
        e
    }
}

// ---------------------------------------------------------------------------------------------
// Input checks
// ---------------------------------------------------------------------------------------------

/// Accepts an international number as E.164 (`+` and 7–15 digits), dropping spaces, dashes, dots
/// and parentheses. National formats are refused: without a country they are ambiguous.
pub fn parse_e164(flag: &str, input: &str) -> anyhow::Result<String> {
    let trimmed = input.trim();
    let international = trimmed.starts_with('+') || trimmed.starts_with("tel:+");
    match shared::routing::normalize_e164(trimmed) {
        Some(number) if international => Ok(number),
        Some(number) => bail!(
            "{flag} {input:?} is not in E.164 format: it must start with + and the country code \
             (did you mean {number}? a US number is +1 then 10 digits)"
        ),
        None => bail!(
            "{flag} {input:?} is not an E.164 phone number: expected + then the country code and \
             number, 7 to 15 digits in all, e.g. +14155550100"
        ),
    }
}

fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Reads the password from stdin: a piped password is taken whole (minus one trailing newline);
/// at a terminal it is prompted for on stderr with echo off.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let raw = if stdin.is_terminal() {
        eprint!("Password: ");
        let line = read_line_without_echo(&stdin)?;
        eprintln!();
        line
    } else {
        let mut raw = String::new();
        stdin
            .lock()
            .read_to_string(&mut raw)
            .context("reading the password from stdin (it must be UTF-8)")?;
        raw
    };
    let password = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw)
        .to_owned();
    if password.is_empty() {
        bail!(
            "empty password: pipe the password on stdin, e.g. `printf '%s' \"$PW\" | voice-node user create …`"
        );
    }
    Ok(password)
}

fn read_line_without_echo(stdin: &std::io::Stdin) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let original = tcgetattr(stdin).context("reading terminal settings")?;
    let mut quiet = original.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin, SetArg::TCSANOW, &quiet).context("turning terminal echo off")?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(stdin, SetArg::TCSANOW, &original);
    read.context("reading the password")?;
    Ok(line)
}

/// Argon2id with the crate's default (OWASP-recommended) parameters and a random salt, as a PHC
/// string (`$argon2id$v=19$m=…`). Verify with `argon2::PasswordVerifier` on the same string.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_international_numbers_and_drops_punctuation() {
        assert_eq!(
            parse_e164("--e164", "+14155550100").unwrap(),
            "+14155550100"
        );
        assert_eq!(
            parse_e164("--e164", " +1 (415) 555-0100 ").unwrap(),
            "+14155550100"
        );
        assert_eq!(
            parse_e164("--e164", "+442079460000").unwrap(),
            "+442079460000"
        );
    }

    #[test]
    fn refuses_numbers_without_country_code_with_a_hint() {
        let err = parse_e164("--e164", "4155550100").unwrap_err().to_string();
        assert!(
            err.contains("E.164") && err.contains("did you mean +4155550100"),
            "{err}"
        );
        let err = parse_e164("--owner", "hello").unwrap_err().to_string();
        assert!(
            err.starts_with("--owner") && err.contains("+14155550100"),
            "{err}"
        );
        assert!(parse_e164("--e164", "+0123456789").is_err());
        assert!(parse_e164("--e164", "+1234567890123456").is_err());
    }

    #[test]
    fn password_hash_is_an_argon2id_phc_string_that_verifies() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        let parsed = argon2::password_hash::phc::PasswordHash::new(&phc).unwrap();
        let argon = argon2::Argon2::default();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"wrong", &parsed).is_err());
    }

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/callgate?sslmode=require"),
            "postgres://app:***@db.internal:5432/callgate"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn email_check_is_minimal() {
        assert!(looks_like_email("a@b.c"));
        assert!(!looks_like_email("ab.c"));
        assert!(!looks_like_email("@b.c"));
        assert!(!looks_like_email("a b@c"));
    }
}
