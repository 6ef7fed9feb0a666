//! The node's Prometheus metrics: a small registry of atomics rendered as Prometheus text at
//! `GET /metrics`.
//!
//! Hand-rolled rather than `metrics` + `metrics-exporter-prometheus` on purpose:
//! - the set of series is fixed and small (about twenty), so a struct of atomics is the whole
//!   registry, and recording is one relaxed atomic add on the media hot path (no key hashing, no
//!   global recorder lookup, no allocation);
//! - each [`Metrics`] belongs to one node instance, where the `metrics` crate installs one global
//!   recorder per process: tests run several nodes in one process and assert on each node's own
//!   numbers;
//! - the histograms need fixed buckets only (latencies in ms), which Prometheus text expresses
//!   directly.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (ms) of the latency histograms' buckets; `+Inf` is implied.
/// The sub-millisecond buckets are there for the inbound frame → agent hop, which is a channel
/// send and normally takes tens of microseconds; the benchmark reads its percentiles from them.
const LATENCY_BUCKETS_MS: [f64; 19] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0,
    1000.0, 2500.0, 5000.0, 10000.0,
];

/// A fixed-bucket latency histogram in milliseconds (stored in microseconds for the sum).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative; rendering accumulates), plus the `+Inf` bucket.
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    /// Sum of observations in microseconds, so sub-millisecond values are not lost.
    sum_us: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation of `ms` milliseconds.
    pub fn observe_ms(&self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let index = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration.
    pub fn observe(&self, elapsed: std::time::Duration) {
        self.observe_ms(elapsed.as_secs_f64() * 1000.0);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// An estimate of the `q` quantile (0..=1) in ms: the upper bound of the bucket holding it.
    pub fn quantile_upper_bound_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= target {
                return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match LATENCY_BUCKETS_MS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum_ms = self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}_sum {sum_ms}");
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Every series the node exports. Field docs are the Prometheus HELP texts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Media Stream sessions currently open (after a verified `start`).
    pub active_calls: Gauge,
    /// Media Stream sockets accepted (upgrades completed).
    pub streams_accepted: Counter,
    /// Upgrade requests refused before upgrading (bad signature, draining, wrong node, full).
    pub streams_refused: Counter,
    /// Upgrade requests refused because the node already held `NODE_CAPACITY` streams (also
    /// counted in `streams_refused`): a sign the edge's spill-over saw a stale load figure.
    pub streams_refused_capacity: Counter,
    /// Sockets closed because the stream token on `start` was refused.
    pub stream_tokens_refused: Counter,
    /// Sockets closed for protocol violations (garbage, oversized or binary frames).
    pub protocol_errors: Counter,
    /// Inbound `media` frames received from Twilio.
    pub frames_in: Counter,
    /// Outbound `media` frames sent to Twilio.
    pub frames_out: Counter,
    /// Outbound frames sent more than 20 ms behind their pacing schedule.
    pub frames_late: Counter,
    /// Outbound frames dropped before sending (barge-in `clear`, call ended mid-utterance).
    pub frames_dropped: Counter,
    /// Inbound audio frames not delivered to a lagging agent.
    pub agent_frames_dropped: Counter,
    /// `clear` messages sent (barge-ins).
    pub clears_sent: Counter,
    /// Time from an inbound frame leaving the socket to the agent receiving it.
    pub agent_event_latency: Histogram,
    /// Per agent turn: end of caller speech to first audio frame sent (voice to voice).
    pub turn_latency: Histogram,
    /// Per agent turn: end of caller speech to the final transcript.
    pub turn_stt: Histogram,
    /// Per agent turn: final transcript to the reply's first text (first token when an LLM
    /// streams it).
    pub turn_reply: Histogram,
    /// Per agent turn: reply text to its first synthesized audio.
    pub turn_tts_first_audio: Histogram,
    /// Database writes waiting in the write queue (including ones being retried).
    pub db_queue_depth: Gauge,
    /// Database writes applied.
    pub db_writes: Counter,
    /// Database write attempts that failed transiently and will be retried.
    pub db_write_retries: Counter,
    /// Database writes given up: refused by the database (constraint) or shed when the queue was full.
    pub db_writes_dropped: Counter,
    /// Cloud provider requests that failed for good; the call fell back (a `provider_failure`
    /// call event says which provider, stage and error).
    pub provider_failures: Counter,
    /// Cloud provider attempts retried (429, 5xx, connection failures).
    pub provider_retries: Counter,
    /// 1 while the node is draining.
    pub draining: AtomicBool,
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one agent turn's stage latencies, each only when both of its ends happened
    /// (a greeting has no caller speech; a canned prompt has no STT or TTS stage).
    /// The stages chain, so a slow turn shows which stage its time went to.
    pub fn observe_turn(&self, timings: &crate::agent::TurnTimings) {
        let stages = [
            (&self.turn_stt, timings.speech_end_ms, timings.stt_final_ms),
            (
                &self.turn_reply,
                timings.stt_final_ms,
                timings.first_token_ms,
            ),
            (
                &self.turn_tts_first_audio,
                timings.first_token_ms,
                timings.first_tts_byte_ms,
            ),
            (
                &self.turn_latency,
                timings.speech_end_ms,
                timings.first_audio_frame_ms,
            ),
        ];
        for (histogram, from, to) in stages {
            if let (Some(from), Some(to)) = (from, to) {
                histogram.observe_ms(f64::from(to.saturating_sub(from)));
            }
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "callgate_active_calls",
            "Media Stream sessions currently open.",
            self.active_calls.get(),
        );
        gauge(
            &mut out,
            "callgate_draining",
            "Whether the node is draining after SIGTERM (1) or serving (0).",
            i64::from(self.draining.load(Ordering::Relaxed)),
        );
        gauge(
            &mut out,
            "callgate_db_queue_depth",
            "Database writes waiting in the write queue.",
            self.db_queue_depth.get(),
        );
        for (name, help, c) in [
            (
                "callgate_streams_accepted_total",
                "Media Stream sockets accepted.",
                &self.streams_accepted,
            ),
            (
                "callgate_streams_refused_total",
                "Upgrade requests refused before upgrading.",
                &self.streams_refused,
            ),
            (
                "callgate_streams_refused_capacity_total",
                "Upgrade requests refused because the node was at NODE_CAPACITY.",
                &self.streams_refused_capacity,
            ),
            (
                "callgate_stream_tokens_refused_total",
                "Streams closed because the stream token was refused.",
                &self.stream_tokens_refused,
            ),
            (
                "callgate_protocol_errors_total",
                "Sockets closed for protocol violations.",
                &self.protocol_errors,
            ),
            (
                "callgate_frames_in_total",
                "Inbound media frames received.",
                &self.frames_in,
            ),
            (
                "callgate_frames_out_total",
                "Outbound media frames sent.",
                &self.frames_out,
            ),
            (
                "callgate_frames_late_total",
                "Outbound frames sent more than 20 ms behind schedule.",
                &self.frames_late,
            ),
            (
                "callgate_frames_dropped_total",
                "Outbound frames dropped before sending (barge-in, call end).",
                &self.frames_dropped,
            ),
            (
                "callgate_agent_frames_dropped_total",
                "Inbound frames not delivered to a lagging agent.",
                &self.agent_frames_dropped,
            ),
            (
                "callgate_clears_sent_total",
                "clear messages sent on barge-in.",
                &self.clears_sent,
            ),
            (
                "callgate_db_writes_total",
                "Database writes applied.",
                &self.db_writes,
            ),
            (
                "callgate_db_write_retries_total",
                "Database write attempts that failed transiently.",
                &self.db_write_retries,
            ),
            (
                "callgate_db_writes_dropped_total",
                "Database writes given up (refused by the database or shed).",
                &self.db_writes_dropped,
            ),
            (
                "callgate_provider_failures_total",
                "Cloud AI provider requests that failed; the call fell back.",
                &self.provider_failures,
            ),
            (
                "callgate_provider_retries_total",
                "Cloud AI provider attempts retried (429, 5xx, connect errors).",
                &self.provider_retries,
            ),
        ] {
            counter(&mut out, name, help, c.get());
        }
        self.agent_event_latency.render(
            &mut out,
            "callgate_agent_event_latency_ms",
            "Inbound frame read from the socket to agent receiving it, ms.",
        );
        for (histogram, name, help) in [
            (
                &self.turn_stt,
                "callgate_turn_stt_ms",
                "End of caller speech to final transcript, ms.",
            ),
            (
                &self.turn_reply,
                "callgate_turn_reply_ms",
                "Final transcript to first reply text or token, ms.",
            ),
            (
                &self.turn_tts_first_audio,
                "callgate_turn_tts_first_audio_ms",
                "Reply text to first synthesized audio, ms.",
            ),
            (
                &self.turn_latency,
                "callgate_turn_voice_to_voice_ms",
                "End of caller speech to first agent audio frame sent, ms.",
            ),
        ] {
            histogram.render(&mut out, name, help);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_cumulative_buckets() {
        let m = Metrics::new();
        m.frames_in.add(3);
        m.active_calls.inc();
        m.turn_latency.observe_ms(3.0);
        m.turn_latency.observe_ms(700.0);
        let text = m.render();
        assert!(text.contains("callgate_frames_in_total 3\n"), "{text}");
        assert!(text.contains("callgate_active_calls 1\n"));
        assert!(
            text.contains("callgate_turn_voice_to_voice_ms_bucket{le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("callgate_turn_voice_to_voice_ms_bucket{le=\"1000\"} 2\n"));
        assert!(text.contains("callgate_turn_voice_to_voice_ms_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("callgate_turn_voice_to_voice_ms_count 2\n"));
        assert!(text.contains("callgate_turn_voice_to_voice_ms_sum 703\n"));
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let h = Histogram::default();
        assert_eq!(h.quantile_upper_bound_ms(0.5), None);
        for _ in 0..99 {
            h.observe_ms(0.3);
        }
        h.observe_ms(40.0);
        assert_eq!(h.quantile_upper_bound_ms(0.5), Some(0.5));
        assert_eq!(h.quantile_upper_bound_ms(1.0), Some(50.0));
    }

    #[test]
    fn a_turn_is_split_into_chained_stage_histograms() {
        let m = Metrics::new();
        m.observe_turn(&crate::agent::TurnTimings {
            speech_end_ms: Some(1_000),
            stt_final_ms: Some(1_400),
            first_token_ms: Some(1_420),
            first_tts_byte_ms: Some(1_700),
            first_audio_frame_ms: Some(1_720),
        });
        // A greeting: no caller speech, so only the TTS stage is known.
        m.observe_turn(&crate::agent::TurnTimings {
            first_token_ms: Some(0),
            first_tts_byte_ms: Some(90),
            first_audio_frame_ms: Some(100),
            ..Default::default()
        });
        let text = m.render();
        for line in [
            "# TYPE callgate_turn_stt_ms histogram\n",
            "callgate_turn_stt_ms_bucket{le=\"250\"} 0\n",
            "callgate_turn_stt_ms_bucket{le=\"500\"} 1\n",
            "callgate_turn_stt_ms_sum 400\n",
            "callgate_turn_reply_ms_bucket{le=\"20\"} 1\n",
            "callgate_turn_reply_ms_count 1\n",
            "callgate_turn_tts_first_audio_ms_sum 370\n",
            "callgate_turn_tts_first_audio_ms_count 2\n",
            "callgate_turn_voice_to_voice_ms_sum 720\n",
            "callgate_turn_voice_to_voice_ms_count 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
