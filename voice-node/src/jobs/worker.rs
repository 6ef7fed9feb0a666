//! The node's job workers: a few tasks that poll the queue, run what they claim, and keep its
//! lease fresh while it runs.
//!
//! Every node runs them; SKIP LOCKED keeps them from taking the same job, the lease hands a dead
//! node's job to another one. On drain, [`JobWorkers::stop`] lets each worker finish the job it
//! holds (or gives up after a timeout: the lease then expires and another node finishes it).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::queue::{self, Job, Outcome};
use super::{JobContext, JobError, dispatch};

/// How the workers poll.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Tasks per node (`JOB_WORKERS`); small, since handlers mostly wait on HTTP.
    pub workers: usize,
    /// The pause after finding nothing due.
    pub poll_interval: Duration,
    /// A running job whose lease is older than this is taken over (its node is presumed dead).
    pub lease: Duration,
    /// A run longer than this is abandoned and retried.
    pub job_timeout: Duration,
    /// `locked_by`: the node id plus the worker's index.
    pub node_id: String,
    /// Which queue (`default`).
    pub queue: String,
}

impl WorkerConfig {
    /// Defaults for a node: 2 workers, 1 s polls, 60 s leases, 5 min per run.
    pub fn for_node(node_id: &str, workers: usize) -> Self {
        WorkerConfig {
            workers,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            job_timeout: Duration::from_secs(300),
            node_id: node_id.to_owned(),
            queue: "default".to_owned(),
        }
    }
}

/// Claims and runs one due job as `worker`; what happened to it, or `None` when nothing was due.
pub async fn run_one(
    ctx: &JobContext,
    config: &WorkerConfig,
    worker: &str,
) -> Result<Option<(Job, Outcome)>, sqlx::Error> {
    let Some(job) = queue::claim(
        &ctx.pool,
        &config.queue,
        worker,
        config.lease,
        ctx.clock.now(),
    )
    .await?
    else {
        return Ok(None);
    };
    tracing::debug!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job claimed");

    // In its own task: a panicking handler fails its job, not the worker.
    let run = {
        let (ctx, job) = (ctx.clone(), job.clone());
        tokio::spawn(async move { dispatch(&ctx, &job).await })
    };
    let run = tokio::time::timeout(config.job_timeout, run);
    tokio::pin!(run);
    let mut renew = tokio::time::interval(config.lease / 3);
    renew.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = renew.tick() => {
                match queue::renew(&ctx.pool, job.id, worker, ctx.clock.now()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(job = %job.id, "job lease lost to another worker"),
                    Err(err) => tracing::warn!(job = %job.id, error = %err, "could not renew the job lease"),
                }
            }
        }
    };
    let outcome = match result {
        Ok(Ok(Ok(()))) => Outcome::Succeeded,
        Ok(Ok(Err(JobError::Permanent(error)))) => Outcome::Failed { error },
        Ok(Ok(Err(JobError::Retry(error)))) => retry(ctx, &job, error),
        Ok(Err(join)) => retry(ctx, &job, format!("handler panicked: {join}")),
        Err(_) => retry(ctx, &job, "timed out".to_owned()),
    };
    match &outcome {
        Outcome::Succeeded => tracing::info!(job = %job.id, kind = %job.kind, "job done"),
        Outcome::Retry { error, .. } => {
            tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %error, "job failed; will retry unless out of attempts")
        }
        Outcome::Failed { error } => {
            tracing::warn!(job = %job.id, kind = %job.kind, %error, "job failed permanently")
        }
    }
    if !queue::finish(&ctx.pool, &job, worker, &outcome, ctx.clock.now()).await? {
        tracing::warn!(job = %job.id, "job finished after its lease was taken over; outcome dropped");
    }
    Ok(Some((job, outcome)))
}

fn retry(ctx: &JobContext, job: &Job, error: String) -> Outcome {
    let wait = queue::backoff(job.attempts, queue::random_jitter());
    Outcome::Retry {
        error,
        at: ctx.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default(),
    }
}

/// Runs jobs until none is due (tests and the CLI); how many ran.
pub async fn run_due(
    ctx: &JobContext,
    config: &WorkerConfig,
    worker: &str,
) -> Result<usize, sqlx::Error> {
    let mut ran = 0;
    while run_one(ctx, config, worker).await?.is_some() {
        ran += 1;
    }
    Ok(ran)
}

/// The running workers of a node.
#[derive(Debug)]
pub struct JobWorkers {
    /// Set to `true` to ask every worker to stop after its current job.
    stop: watch::Sender<bool>,
    /// The worker tasks.
    handles: Vec<JoinHandle<()>>,
    /// Counts polls that found nothing due (every worker's). A poll that finds nothing comes after
    /// every job due at that moment was run, so a watcher that sees this move after time passed
    /// knows the workers caught up with it: the timer tests wait on it instead of sleeping.
    idle_polls: watch::Receiver<u64>,
}

impl JobWorkers {
    /// Starts `config.workers` polling tasks.
    pub fn start(ctx: JobContext, config: WorkerConfig) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (idle_tx, idle_polls) = watch::channel(0u64);
        let idle_tx = std::sync::Arc::new(idle_tx);
        let handles = (0..config.workers)
            .map(|i| {
                let (ctx, config, mut stopped) = (ctx.clone(), config.clone(), stopped.clone());
                let idle_tx = std::sync::Arc::clone(&idle_tx);
                let worker = format!("{}#{i}", config.node_id);
                tokio::spawn(async move {
                    loop {
                        if *stopped.borrow() {
                            break;
                        }
                        let idle = match run_one(&ctx, &config, &worker).await {
                            Ok(Some(_)) => false,
                            Ok(None) => {
                                idle_tx.send_modify(|n| *n += 1);
                                true
                            }
                            Err(err) => {
                                tracing::warn!(%worker, error = %err, "job queue poll failed");
                                true
                            }
                        };
                        if idle {
                            tokio::select! {
                                _ = stopped.changed() => {}
                                _ = tokio::time::sleep(config.poll_interval) => {}
                            }
                        }
                    }
                })
            })
            .collect();
        drop(stopped);
        JobWorkers {
            stop,
            handles,
            idle_polls,
        }
    }

    /// Watches how many polls found nothing due (see the field's doc).
    pub fn idle_polls(&self) -> watch::Receiver<u64> {
        self.idle_polls.clone()
    }

    /// Asks every worker to stop after its current job and waits up to `wait` for them; a worker
    /// still busy then is aborted (its job's lease expires and another node finishes it).
    pub async fn stop(self, wait: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + wait;
        for handle in self.handles {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                tracing::warn!("job worker still busy at shutdown; aborting it");
                abort.abort();
            }
        }
    }
}

/// The node's workers as `voice-node serve` runs them: `JOB_WORKERS` tasks with the configured
/// Twilio account and the keyword SMS responder; schedules today's retention sweep. `None` when
/// `JOB_WORKERS=0`.
pub async fn start_for_node(
    pool: &sqlx::PgPool,
    config: &crate::config::Config,
) -> Option<JobWorkers> {
    if config.job_workers == 0 {
        return None;
    }
    let ctx = JobContext {
        pool: pool.clone(),
        twilio: crate::twilio_rest::TwilioClient::from_config(config),
        responder: std::sync::Arc::new(crate::sms::KeywordResponder),
        mailer: config.smtp_url.as_deref().and_then(|url| {
            super::email::Mailer::new(url, &config.smtp_from)
                .inspect_err(|err| tracing::warn!(error = %err, "e-mail disabled"))
                .ok()
        }),
        clock: super::Clock::system(),
    };
    if ctx.twilio.is_none() {
        tracing::warn!(
            "TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN not set: SMS jobs will fail as undeliverable"
        );
    }
    if let Err(err) = super::retention::ensure_scheduled(&ctx).await {
        tracing::warn!(error = %err, "could not schedule the retention sweep");
    }
    Some(JobWorkers::start(
        ctx,
        WorkerConfig::for_node(&config.node_id, config.job_workers),
    ))
}
