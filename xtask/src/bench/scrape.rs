//! The voice node's `/metrics`, scraped before and after a load run: counter deltas (late and
//! dropped frames as the node saw them) and latency percentiles from histogram bucket deltas.
//!
//! The node's histograms have fixed buckets, so a percentile is an estimate: linear
//! interpolation inside the bucket that holds it, as Prometheus' `histogram_quantile` does. The
//! results say so next to every figure taken this way.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One scrape: every sample by its full series name (labels included, as written).
#[derive(Debug, Clone, Default)]
pub struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// `GET http://{addr}/metrics`.
    pub fn fetch(addr: &str) -> anyhow::Result<Scrape> {
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connecting to {addr}/metrics"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .context("reading /metrics")?;
        let Some((head, body)) = response.split_once("\r\n\r\n") else {
            bail!("/metrics answered without an HTTP body");
        };
        if !head.starts_with("HTTP/1.1 200") {
            bail!(
                "/metrics answered {}",
                head.lines().next().unwrap_or_default()
            );
        }
        Ok(Scrape::parse(body))
    }

    /// Parses Prometheus text (comments skipped).
    pub fn parse(text: &str) -> Scrape {
        Scrape(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A sample's value (0 when absent).
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// `self − before` for one counter.
    pub fn delta(&self, before: &Scrape, series: &str) -> f64 {
        self.get(series) - before.get(series)
    }

    /// The cumulative buckets of histogram `name` as (upper bound, count), in order.
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut out: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(series, &count)| {
                let bound = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, count))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// Percentiles of a histogram's observations between two scrapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramDelta {
    /// Observations in the window.
    pub count: f64,
    /// Median estimate, ms.
    pub p50: f64,
    /// 99th percentile estimate, ms.
    pub p99: f64,
    /// Mean (exact: from `_sum` and `_count`), ms.
    pub mean: f64,
}

impl HistogramDelta {
    /// The observations of histogram `name` made between `before` and `after`.
    pub fn between(before: &Scrape, after: &Scrape, name: &str) -> Option<HistogramDelta> {
        let old = before.buckets(name);
        let new = after.buckets(name);
        let delta: Vec<(f64, f64)> = new
            .iter()
            .map(|&(bound, count)| {
                let was = old
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (bound, count - was)
            })
            .collect();
        let count = delta.last()?.1;
        if count <= 0.0 {
            return None;
        }
        let sum = after.delta(before, &format!("{name}_sum"));
        Some(HistogramDelta {
            count,
            p50: quantile(&delta, 0.50),
            p99: quantile(&delta, 0.99),
            mean: sum / count,
        })
    }
}

/// `histogram_quantile`: linear interpolation inside the bucket holding rank `q × count`. In
/// the `+Inf` bucket the answer is the largest finite bound (a lower bound of the truth).
fn quantile(cumulative: &[(f64, f64)], q: f64) -> f64 {
    let total = cumulative.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for &(bound, count) in cumulative {
        if count >= rank {
            if bound.is_infinite() {
                return lower_bound;
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return bound;
            }
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket;
        }
        lower_bound = bound;
        lower_count = count;
    }
    lower_bound
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# HELP callgate_x_ms x
# TYPE callgate_x_ms histogram
callgate_x_ms_bucket{le=\"0.1\"} 10
callgate_x_ms_bucket{le=\"1\"} 10
callgate_x_ms_bucket{le=\"+Inf\"} 10
callgate_x_ms_sum 0.5
callgate_x_ms_count 10
callgate_frames_late_total 2
";

    const AFTER: &str = "\
callgate_x_ms_bucket{le=\"0.1\"} 60
callgate_x_ms_bucket{le=\"1\"} 109
callgate_x_ms_bucket{le=\"+Inf\"} 110
callgate_x_ms_sum 50.5
callgate_x_ms_count 110
callgate_frames_late_total 2
";

    #[test]
    fn percentiles_come_from_bucket_deltas() {
        let (a, b) = (Scrape::parse(BEFORE), Scrape::parse(AFTER));
        assert_eq!(b.delta(&a, "callgate_frames_late_total"), 0.0);
        let h = HistogramDelta::between(&a, &b, "callgate_x_ms").unwrap();
        assert_eq!(h.count, 100.0);
        // 50 of the 100 new observations are ≤ 0.1: the median is the top of that bucket.
        assert!((h.p50 - 0.1).abs() < 1e-9, "{h:?}");
        // Rank 99 is the 49th of 49 in (0.1, 1].
        assert!((h.p99 - 1.0).abs() < 1e-9, "{h:?}");
        assert!((h.mean - 0.5).abs() < 1e-9);
        assert_eq!(HistogramDelta::between(&b, &b, "callgate_x_ms"), None);
    }

    #[test]
    fn a_percentile_in_the_open_bucket_is_the_last_bound() {
        let buckets = [(1.0, 1.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(&buckets, 0.99), 1.0);
    }
}
