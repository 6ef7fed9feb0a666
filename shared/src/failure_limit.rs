//! Per-source token buckets that only failures drain, for refusing floods of unsigned requests.
//!
//! The edge's webhooks and the node's Media Stream handshake both answer a bad signature with a
//! cheap 403. A flood of them still costs a body read and an HMAC each, so a source that keeps
//! failing is answered 429 before either. Only *failures* take tokens: a source that sends
//! correctly signed requests (Twilio) never runs dry, whatever others do, because every source
//! has its own bucket.
//!
//! The table is bounded: when full, sources whose buckets have refilled are dropped first (they
//! have forgotten nothing worth keeping), then the least recently seen one. An attacker with
//! many addresses can therefore evict older entries, but never make the table grow or limit a
//! source that has not failed itself. IPv6 sources are keyed by their /64, since one host
//! typically owns a whole /64.
//!
//! No clock of its own: callers pass milliseconds (the Worker's `Date.now()`, tokio's clock), so
//! it runs in WASM and tests move time by hand. Single-threaded by design: callers wrap it in
//! the lock of their choice.

use std::collections::HashMap;
use std::net::IpAddr;

/// How a [`FailureLimiter`] refills and how much it remembers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureBudget {
    /// Failures a fresh source may have in a burst.
    pub burst: f64,
    /// Failures per second forgiven.
    pub per_second: f64,
    /// Sources tracked at most.
    pub max_sources: usize,
}

impl Default for FailureBudget {
    /// 20 failures at once, one more every 2 s, 4096 sources (about 200 KB).
    fn default() -> Self {
        FailureBudget {
            burst: 20.0,
            per_second: 0.5,
            max_sources: 4096,
        }
    }
}

/// A source's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures it may still have.
    tokens: f64,
    /// When `tokens` was last brought up to date (ms).
    updated_ms: u64,
    /// When this source last failed (ms): the least recently failing source is evicted first.
    failed_ms: u64,
}

/// The per-source failure buckets.
#[derive(Debug, Clone)]
pub struct FailureLimiter {
    /// The budget every source gets.
    budget: FailureBudget,
    /// Sources that failed recently, by [`source_key`].
    buckets: HashMap<IpAddr, Bucket>,
}

/// Why a request was refused before being looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed requests from this address; retry after {retry_after_s} s")]
pub struct Limited {
    /// Seconds until the source has a token again (for `Retry-After`), at least 1.
    pub retry_after_s: u64,
}

impl FailureLimiter {
    /// An empty table with `budget`.
    pub fn new(budget: FailureBudget) -> Self {
        FailureLimiter {
            budget,
            buckets: HashMap::new(),
        }
    }

    /// Whether `source` may be served now: `Err` when its failures used up its budget.
    pub fn check(&mut self, source: IpAddr, now_ms: u64) -> Result<(), Limited> {
        let budget = self.budget;
        let Some(bucket) = self.buckets.get_mut(&source_key(source)) else {
            return Ok(());
        };
        refill(bucket, &budget, now_ms);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        let wait = if budget.per_second > 0.0 {
            (missing / budget.per_second).ceil()
        } else {
            3600.0
        };
        Err(Limited {
            // `wait` is finite and positive here; the cast saturates anyway.
            retry_after_s: (wait as u64).max(1),
        })
    }

    /// Counts one failure (a bad or missing signature) against `source`.
    pub fn record_failure(&mut self, source: IpAddr, now_ms: u64) {
        let key = source_key(source);
        let budget = self.budget;
        if !self.buckets.contains_key(&key) && self.buckets.len() >= budget.max_sources {
            self.evict(now_ms);
        }
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: budget.burst,
            updated_ms: now_ms,
            failed_ms: now_ms,
        });
        refill(bucket, &budget, now_ms);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        bucket.failed_ms = now_ms;
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Makes room for one more source.
    fn evict(&mut self, now_ms: u64) {
        let budget = self.budget;
        self.buckets.retain(|_, bucket| {
            refill(bucket, &budget, now_ms);
            bucket.tokens < budget.burst
        });
        if self.buckets.len() >= budget.max_sources
            && let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.failed_ms)
                .map(|(k, _)| *k)
        {
            self.buckets.remove(&oldest);
        }
    }
}

fn refill(bucket: &mut Bucket, budget: &FailureBudget, now_ms: u64) {
    let elapsed_s = now_ms.saturating_sub(bucket.updated_ms) as f64 / 1000.0;
    bucket.tokens = (bucket.tokens + elapsed_s * budget.per_second).min(budget.burst);
    bucket.updated_ms = bucket.updated_ms.max(now_ms);
}

/// The key a source is counted under: the address itself for IPv4, the /64 for IPv6 (an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn small() -> FailureBudget {
        FailureBudget {
            burst: 3.0,
            per_second: 1.0,
            max_sources: 4,
        }
    }

    #[test]
    fn a_source_is_limited_after_its_burst_of_failures_and_recovers() {
        let mut limiter = FailureLimiter::new(small());
        let bad = ip("203.0.113.7");
        for _ in 0..3 {
            assert!(limiter.check(bad, 0).is_ok());
            limiter.record_failure(bad, 0);
        }
        assert_eq!(limiter.check(bad, 0), Err(Limited { retry_after_s: 1 }));
        assert!(limiter.check(bad, 999).is_err());
        assert!(limiter.check(bad, 1000).is_ok());
    }

    #[test]
    fn one_sources_failures_never_limit_another() {
        let mut limiter = FailureLimiter::new(small());
        for _ in 0..100 {
            limiter.record_failure(ip("203.0.113.7"), 0);
        }
        assert!(limiter.check(ip("203.0.113.7"), 0).is_err());
        assert!(limiter.check(ip("54.172.60.1"), 0).is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_new_sources_start_fresh() {
        let mut limiter = FailureLimiter::new(small());
        for i in 0..50u8 {
            for _ in 0..5 {
                limiter.record_failure(IpAddr::from([198, 51, 100, i]), u64::from(i));
            }
            assert!(limiter.len() <= 4);
        }
        // The newest attacker is still limited; the oldest were forgotten.
        assert!(limiter.check(ip("198.51.100.49"), 49).is_err());
        assert!(limiter.check(ip("198.51.100.0"), 49).is_ok());
    }

    #[test]
    fn refilled_sources_are_evicted_before_limited_ones() {
        let mut limiter = FailureLimiter::new(small());
        limiter.record_failure(ip("192.0.2.1"), 0);
        for i in 2..5u8 {
            for _ in 0..3 {
                limiter.record_failure(IpAddr::from([192, 0, 2, i]), 5_000);
            }
        }
        // 192.0.2.1 refilled long ago and is the one dropped, even though .2 is as old in
        // failures: the limited sources stay limited.
        limiter.record_failure(ip("192.0.2.9"), 5_000);
        assert_eq!(limiter.len(), 4);
        for i in 2..5u8 {
            assert!(limiter.check(IpAddr::from([192, 0, 2, i]), 5_000).is_err());
        }
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let mut limiter = FailureLimiter::new(small());
        for host in 1..=3 {
            limiter.record_failure(ip(&format!("2001:db8:1:2::{host}")), 0);
        }
        assert!(limiter.check(ip("2001:db8:1:2::ffff"), 0).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::1"), 0).is_ok());
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
