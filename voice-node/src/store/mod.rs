//! Persistence: what calls write, and how it reaches Postgres without ever stalling a call.
//!
//! - [`queue`]: the node's write queue. Sessions enqueue typed [`Write`]s and move on; one writer
//!   task applies them in order, keeps them through a database outage (retrying with backoff)
//!   and flushes when Postgres returns.
//! - [`writes`]: the SQL of each [`Write`], every statement idempotent so a re-flush after an
//!   outage (or a retried callback) never duplicates a row.
//! - [`callbacks`]: forwarded Twilio callbacks (`/internal/events`), applied in one transaction
//!   each, once per idempotency key.
//! - [`call_report`]: one call as the simulator reads it (`/internal/calls/{sid}`).

pub mod call_report;
pub mod callbacks;
pub mod queue;
pub mod writes;

pub use queue::{QueueLimits, WriteQueue};
pub use writes::Write;

/// Whether a database error may go away by itself (connection lost, server restarting,
/// serialization conflict), so the write should be retried rather than given up.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // 08: connection exception; 53: insufficient resources; 57P0x: admin shutdown,
            // crash shutdown, cannot connect now; 40001/40P01: serialization failure, deadlock.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}
