//! callgate's voice node: holds Twilio Media Streams WebSockets, runs each call's agent, and
//! persists calls to the shared Postgres.
//!
//! Components:
//! - [`server`]: `voice-node serve` — HTTP + WebSocket server.
//! - [`admin`]: migrations, tenants, numbers and users from the command line.
//! - [`simulate`]: Twilio's side of a call, for tests, the demo and benchmarks.
//! - [`local_postgres`]: a private Postgres cluster from the machine's `initdb`/`pg_ctl`, used when
//!   `DATABASE_URL` is unset and by `cargo xtask test`.
//! - [`db`]: the embedded migrations (`migrations/`) and the connection pool.
//! - [`speech`]: espeak-ng + sox → 8 kHz mu-law, the light offline voice.
//! - [`telemetry`]: logging setup.

pub mod admin;
pub mod db;
pub mod local_postgres;
pub mod server;
pub mod simulate;
pub mod speech;
pub mod telemetry;
