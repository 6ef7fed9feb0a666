//! Where a call's transcript numbering starts.
//!
//! Transcript turns are unique on `(call_id, seq)` and written with `ON CONFLICT DO NOTHING`,
//! so a second stream for the same CallSid (the edge's stream-fallback reconnecting a call to
//! this or another node) that numbered its turns from 0 again would have its turns silently
//! dropped. A new stream therefore starts after the highest number already used: the stored
//! maximum in Postgres, and — for a reconnect to this node whose turns may still sit in the
//! write queue, or while Postgres is down — the number the earlier session here ended with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

/// How long the lookup may delay a call's start when Postgres is slow or down; a reconnect to
/// another node during a database outage then falls back to this node's own memory.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(300);

/// Lookups in flight at once. A ramp of a thousand calls a second would otherwise take every
/// connection of the node's pool (the benchmark saw 2 s acquire waits) and starve the write
/// queue and the heartbeat; a few connections answer thousands of these indexed reads a second.
const LOOKUPS_IN_FLIGHT: usize = 4;

/// How long an ended call's next number is remembered (a reconnect follows within seconds).
const REMEMBER_FOR: Duration = Duration::from_secs(30 * 60);

/// Remembered calls above which expired entries are swept.
const SWEEP_ABOVE: usize = 4096;

/// Hands out the first transcript sequence number of each stream.
#[derive(Debug)]
pub struct TurnSeqs {
    /// The shared database (`None` in tests without one).
    pool: Option<PgPool>,
    /// Bounds the lookups in flight ([`LOOKUPS_IN_FLIGHT`]).
    permits: tokio::sync::Semaphore,
    /// CallSid → the next unused number when this node's last session for it ended, and when.
    /// A plain mutex: held for a map operation, never across an await.
    ended: Mutex<HashMap<String, (u32, Instant)>>,
}

impl TurnSeqs {
    /// Numbering backed by `pool` (and this node's memory).
    pub fn new(pool: Option<PgPool>) -> Self {
        TurnSeqs {
            pool,
            permits: tokio::sync::Semaphore::new(LOOKUPS_IN_FLIGHT),
            ended: Mutex::new(HashMap::new()),
        }
    }

    /// The first number a new stream for `call_sid` uses: one past the highest stored or
    /// remembered, else 0.
    pub async fn first_seq(&self, call_sid: &str) -> u32 {
        let remembered = self
            .ended
            .lock()
            .map(|m| m.get(call_sid).map_or(0, |(next, _)| *next))
            .unwrap_or(0);
        let stored = match &self.pool {
            Some(pool) => {
                let lookup = async {
                    let _permit = self.permits.acquire().await;
                    next_stored_seq(pool, call_sid).await
                };
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(next)) => next,
                    Ok(Err(err)) => {
                        tracing::warn!(call_sid, error = %err, "transcript numbering: lookup failed; using this node's memory");
                        0
                    }
                    Err(_) => {
                        tracing::warn!(
                            call_sid,
                            "transcript numbering: lookup timed out; using this node's memory"
                        );
                        0
                    }
                }
            }
            None => 0,
        };
        remembered.max(stored)
    }

    /// A session for `call_sid` ended with `next` as its next unused number.
    pub fn session_ended(&self, call_sid: &str, next: u32) {
        let Ok(mut map) = self.ended.lock() else {
            return;
        };
        let now = Instant::now();
        if map.len() >= SWEEP_ABOVE {
            map.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER_FOR);
        }
        let entry = map.entry(call_sid.to_owned()).or_insert((0, now));
        *entry = (entry.0.max(next), now);
    }
}

/// One past the highest stored turn number of `call_sid` (0 when it has none).
pub async fn next_stored_seq(pool: &PgPool, call_sid: &str) -> Result<u32, sqlx::Error> {
    let max: Option<i32> = sqlx::query_scalar(
        "SELECT max(t.seq) FROM transcript_turns t JOIN calls c ON c.id = t.call_id
          WHERE c.call_sid = $1",
    )
    .bind(call_sid)
    .fetch_one(pool)
    .await?;
    Ok(max.map_or(0, |m| u32::try_from(m).unwrap_or(0).saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_where_an_ended_session_stopped() {
        let seqs = TurnSeqs::new(None);
        assert_eq!(seqs.first_seq("CA1").await, 0);
        seqs.session_ended("CA1", 4);
        assert_eq!(seqs.first_seq("CA1").await, 4);
        // A shorter later session never moves the start backwards.
        seqs.session_ended("CA1", 2);
        assert_eq!(seqs.first_seq("CA1").await, 4);
        assert_eq!(seqs.first_seq("CA2").await, 0);
    }
}
