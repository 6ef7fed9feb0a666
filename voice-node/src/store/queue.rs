//! The node's write queue: calls never wait for Postgres.
//!
//! Sessions [`push`](WriteQueue::push) writes and carry on. One writer task per node applies
//! them in order on one connection. When Postgres is slow, the queue grows; when it is down, the
//! writer keeps the batch it was applying (nothing is taken off the queue until the database
//! confirmed it), retries with exponential backoff up to [`MAX_BACKOFF`], and flushes everything
//! once the database answers again. Order is preserved, so a call row is always written before
//! its turns.
//!
//! Memory is bounded by [`QueueLimits`]: past `shed_events_at` queued writes, non-critical
//! events (call_events the node records for itself) are dropped and counted; turns, call rows and
//! call ends are kept up to `max_depth` (at a few hundred bytes each, 200 000 writes is well under
//! 100 MB: about an hour-long outage at 2 000 calls taking a turn every 30 s). Only past that are
//! critical writes dropped, with an error log naming the call. Nothing ever blocks a call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::writes::{self, Write};
use crate::metrics::Metrics;

/// Longest wait between retries while the database is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How big the queue may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Queue depth from which non-critical events are shed.
    pub shed_events_at: usize,
    /// Queue depth from which even critical writes are dropped.
    pub max_depth: usize,
    /// Writes applied per connection checkout.
    pub batch: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            shed_events_at: 20_000,
            max_depth: 200_000,
            batch: 256,
        }
    }
}

/// The sending side of the queue; cheap to clone, one per session.
#[derive(Debug, Clone)]
pub struct WriteQueue {
    /// To the writer task.
    tx: mpsc::UnboundedSender<Write>,
    /// Writes pushed and not yet applied (or given up).
    depth: Arc<AtomicUsize>,
    /// The size limits.
    limits: QueueLimits,
    /// Depth gauge and counters.
    metrics: Arc<Metrics>,
}

impl WriteQueue {
    /// Starts the writer task on `pool`. It runs until every `WriteQueue` clone is dropped and
    /// the queue is empty.
    pub fn start(
        pool: PgPool,
        limits: QueueLimits,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            pool,
            rx,
            pending: VecDeque::new(),
            depth: Arc::clone(&depth),
            limits,
            metrics: Arc::clone(&metrics),
        };
        let task = tokio::spawn(writer.run());
        (
            WriteQueue {
                tx,
                depth,
                limits,
                metrics,
            },
            task,
        )
    }

    /// A queue with no database behind it: writes arrive on the returned receiver instead
    /// (session tests and tools inspect them). Its depth only grows.
    pub fn detached(metrics: Arc<Metrics>) -> (Self, mpsc::UnboundedReceiver<Write>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            WriteQueue {
                tx,
                depth: Arc::new(AtomicUsize::new(0)),
                limits: QueueLimits::default(),
                metrics,
            },
            rx,
        )
    }

    /// Queues a write. Returns `false` when it was shed (see the module docs).
    pub fn push(&self, write: Write) -> bool {
        let depth = self.depth.load(Ordering::Relaxed);
        if depth >= self.limits.max_depth
            || (!write.is_critical() && depth >= self.limits.shed_events_at)
        {
            self.metrics.db_writes_dropped.inc();
            if write.is_critical() {
                tracing::error!(depth, write = ?short(&write), "write queue full: dropping a critical write");
            } else {
                tracing::debug!(depth, "write queue long: shedding a call event");
            }
            return false;
        }
        let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.db_queue_depth.set(depth as i64);
        if self.tx.send(write).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            self.metrics.db_writes_dropped.inc();
            tracing::error!("write queue writer is gone: dropping a write");
            return false;
        }
        true
    }

    /// Writes queued and not yet applied.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Waits until everything queued so far is applied, at most `timeout`. Returns whether the
    /// queue emptied.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.depth() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A short description of a write for logs (call SID and kind; no caller data).
fn short(write: &Write) -> (&'static str, &str) {
    match write {
        Write::CallStarted(r) => ("call_started", &r.call_sid),
        Write::Event(r) => ("event", &r.call_sid),
        Write::Turn(r) => ("turn", &r.call_sid),
        Write::AgentTurnEnded { call_sid, .. } => ("agent_turn_ended", call_sid),
        Write::CallEnded(r) => ("call_ended", &r.call_sid),
        Write::Screening(r) => ("screening", &r.call_sid),
    }
}

/// The writer task's state.
struct Writer {
    /// Where writes go.
    pool: PgPool,
    /// From the sessions.
    rx: mpsc::UnboundedReceiver<Write>,
    /// Received and not yet confirmed by the database, in order.
    pending: VecDeque<Write>,
    /// Shared with [`WriteQueue`].
    depth: Arc<AtomicUsize>,
    /// Batch size.
    limits: QueueLimits,
    /// Counters.
    metrics: Arc<Metrics>,
}

/// The database is unavailable; the batch stays queued.
struct Unavailable(sqlx::Error);

impl Writer {
    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut outage_started: Option<Instant> = None;
        loop {
            if self.pending.is_empty() {
                match self.rx.recv().await {
                    Some(write) => self.pending.push_back(write),
                    None => return,
                }
            }
            while self.pending.len() < self.limits.batch {
                match self.rx.try_recv() {
                    Ok(write) => self.pending.push_back(write),
                    Err(_) => break,
                }
            }
            match self.apply_batch().await {
                Ok(()) => {
                    if let Some(since) = outage_started.take() {
                        tracing::info!(
                            outage_ms = since.elapsed().as_millis() as u64,
                            queued = self.depth.load(Ordering::Relaxed),
                            "database reachable again; flushing queued writes"
                        );
                    }
                    backoff = FIRST_BACKOFF;
                }
                Err(Unavailable(err)) => {
                    self.metrics.db_write_retries.inc();
                    if outage_started.is_none() {
                        outage_started = Some(Instant::now());
                        tracing::warn!(error = %err, queued = self.depth.load(Ordering::Relaxed),
                            "database unavailable; keeping writes in memory and retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Applies up to one batch from the front of `pending`, removing each write the database
    /// confirmed (or refused for good).
    async fn apply_batch(&mut self) -> Result<(), Unavailable> {
        let mut conn = self.pool.acquire().await.map_err(Unavailable)?;
        for _ in 0..self.limits.batch {
            let Some(write) = self.pending.front() else {
                break;
            };
            match writes::apply(&mut conn, write).await {
                Ok(rows) => {
                    if rows == 0 && !matches!(write, Write::Event(_) | Write::Turn(_)) {
                        tracing::debug!(write = ?short(write), "write matched no row");
                    }
                    self.metrics.db_writes.inc();
                }
                Err(err) if super::is_transient(&err) => return Err(Unavailable(err)),
                Err(err) => {
                    // Refused for good (constraint, bad data): retrying cannot help.
                    self.metrics.db_writes_dropped.inc();
                    tracing::error!(error = %err, write = ?short(write), "database refused a write; dropping it");
                }
            }
            self.pending.pop_front();
            let depth = self.depth.fetch_sub(1, Ordering::Relaxed) - 1;
            self.metrics.db_queue_depth.set(depth as i64);
        }
        Ok(())
    }
}
