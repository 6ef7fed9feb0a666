//! The node's Postgres: the embedded migrations and the connection pool.
//!
//! The schema lives in `migrations/` at the repository root (one schema for every node); it is
//! compiled into the binary, so `voice-node migrate` needs no files at run time.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

/// Every migration in `migrations/`, embedded at compile time. `voice-node/build.rs` makes Cargo
/// rebuild when a migration is added or edited.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How many connections one node keeps at most. Calls write small rows (turns, events); a handful
/// of connections serves hundreds of calls, and managed Postgres caps connections per database.
pub const MAX_CONNECTIONS: u32 = 10;

/// Opens a pool on `url` (`postgres://…`), failing fast if the server cannot be reached.
pub async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        // A call must not hang on a dead database: turn writes queue in memory instead.
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

/// Applies every migration not yet applied (idempotent; concurrent nodes serialize on sqlx's
/// advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
