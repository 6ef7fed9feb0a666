//! callgate's voice node (issue 4 builds it out).
//!
//! Components so far:
//! - [`local_postgres`]: a private Postgres cluster from the machine's `initdb`/`pg_ctl`, used when
//!   `DATABASE_URL` is unset and by `cargo xtask test`.
//! - [`db`]: the embedded migrations (`migrations/`) and the connection pool.

pub mod db;
pub mod local_postgres;
