//! A bounded pool for model inference, off the async runtime.
//!
//! Inference is CPU-bound and takes 10 ms (an embedding) to half a second (a Whisper utterance).
//! Run on a runtime worker it would stall every other call's audio on that worker; run unbounded
//! in `spawn_blocking` on a 2-core machine, ten simultaneous utterances would thrash. So jobs go
//! to tokio's blocking threads behind a semaphore: at most `permits` run at once, the rest wait
//! their turn (asynchronously: waiting costs no thread).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The node's inference pool; cheap to clone.
#[derive(Debug, Clone)]
pub struct InferencePool {
    /// Jobs allowed to run at once.
    permits: Arc<Semaphore>,
}

/// A job could not run (the pool closed or the job panicked).
#[derive(Debug, thiserror::Error)]
#[error("inference job failed: {0}")]
pub struct PoolError(String);

impl InferencePool {
    /// A pool running at most `concurrency` jobs at once (at least 1).
    pub fn new(concurrency: usize) -> Self {
        InferencePool {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// One job per core minus one for the runtime (at least 1): on 2 cores, inference never
    /// takes both.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.saturating_sub(1))
    }

    /// Runs `job` on a blocking thread once a permit is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| PoolError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| PoolError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_jobs_than_permits_and_keeps_the_runtime_free() {
        let pool = InferencePool::new(1);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        // While the jobs block their threads, the runtime still answers at once.
        let t0 = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(t0.elapsed() < Duration::from_millis(25));
        for job in jobs {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 1);
    }
}
