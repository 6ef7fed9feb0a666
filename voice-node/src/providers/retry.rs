//! Per-request timeouts and retries for provider calls.
//!
//! A caller is waiting on the line, so the budgets are short: the answer must start within
//! `first_byte` and finish within `total`; rate limits (429), server errors (5xx) and connection
//! failures are retried with exponential backoff and full jitter (so the calls of a node that
//! all hit the same outage do not retry in lockstep); anything else fails at once so the
//! fallback chain can take over.

use std::future::Future;
use std::time::Duration;

use super::ProviderError;

/// Timeouts and retries of one kind of provider request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Upper bound of the first backoff (doubling each retry, up to `max_backoff`).
    pub first_backoff: Duration,
    /// Upper bound of any backoff.
    pub max_backoff: Duration,
    /// The answer (response headers, WebSocket handshake) must start within this.
    pub first_byte: Duration,
    /// One attempt must finish within this.
    pub total: Duration,
}

impl Default for RetryPolicy {
    /// Budgets for a live call turn: a turn that waits more than ~3 s for the first audio is
    /// better served by the offline models.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            first_byte: Duration::from_millis(2_500),
            total: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (1-based): uniformly random in
    /// `[0, min(max_backoff, first_backoff × 2^(retry-1))]` ("full jitter").
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .first_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let unit = getrandom::u64().unwrap_or(u64::MAX / 2) as f64 / u64::MAX as f64;
        ceiling.mul_f64(unit)
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not retryable, or the
    /// attempts are used up. Each attempt is bounded by `total`; `on_retry` is told about every
    /// failure that is retried (for metrics and logs).
    pub async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        mut on_retry: impl FnMut(&ProviderError),
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut tried = 0;
        loop {
            tried += 1;
            let result = match tokio::time::timeout(self.total, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(ProviderError::TotalTimeout(self.total)),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && tried < self.attempts.max(1) => {
                    on_retry(&err);
                    tokio::time::sleep(self.backoff(tried)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Awaits `future` (a request's headers, a handshake) within `first_byte`.
    pub async fn first_byte<T>(
        &self,
        future: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        tokio::time::timeout(self.first_byte, future)
            .await
            .unwrap_or(Err(ProviderError::FirstByteTimeout(self.first_byte)))
    }

    /// Sends `request` and waits for its headers within `first_byte`; an error status becomes
    /// [`ProviderError::Status`] with the start of its body. One attempt: wrap it in
    /// [`RetryPolicy::run`] to retry.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = self
            .first_byte(async {
                request
                    .send()
                    .await
                    .map_err(|e| ProviderError::from_send(&e))
            })
            .await?;
        if !response.status().is_success() {
            return Err(ProviderError::from_status(response).await);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            first_byte: Duration::from_millis(50),
            total: Duration::from_millis(500),
        }
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let p = fast();
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(2) <= Duration::from_millis(200));
            assert!(p.backoff(9) <= Duration::from_millis(300));
        }
        // Jitter: not always the same value.
        let samples: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(3)).collect();
        assert!(samples.len() > 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_server_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let mut retried = 0;
        let out = fast()
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(ProviderError::Status {
                            status: 503,
                            body: String::new(),
                        })
                    } else {
                        Ok(7)
                    }
                },
                |_| retried += 1,
            )
            .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(retried, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_client_errors_or_hangs() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = fast()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(ProviderError::Status {
                        status: 401,
                        body: "bad key".into(),
                    })
                },
                |_| {},
            )
            .await;
        assert!(matches!(
            out,
            Err(ProviderError::Status { status: 401, .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let hang: Result<(), _> = fast()
            .run(std::future::pending, |_| panic!("a hang is not retried"))
            .await;
        assert!(matches!(hang, Err(ProviderError::TotalTimeout(_))));
    }
}
