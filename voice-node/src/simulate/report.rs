//! What `simulate` prints: one JSON object per run, and the numbers in it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::media_call::StreamStats;
use super::node_record::{Screening, TranscriptLine};
use super::twiml_follow::{CallEnd, DocumentTrace};

/// The result of one simulated call. The first seven fields are the contract
/// (`call_sid`, `mode`, `outcome`, `transcript`, `screening`, `turn_latency_ms`, `errors`);
/// the rest explain them.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    /// The CallSid the simulator made up.
    pub call_sid: String,
    /// The flow that handled the call (node's record, else the stream's `mode` parameter, else
    /// `forward` for a call that only dialed).
    pub mode: Option<String>,
    /// How the call ended (node's record, else the simulator's view; see `outcome_source`).
    pub outcome: Option<String>,
    /// The node's transcript, in order.
    pub transcript: Vec<TranscriptLine>,
    /// The screening verdict, for screening calls.
    pub screening: Option<Screening>,
    /// End of caller speech → first agent audio, per answered turn, ms.
    pub turn_latency_ms: Vec<u64>,
    /// Everything that went wrong; empty for a good call.
    pub errors: Vec<String>,
    /// Of `errors`, the status callbacks (the call's final status, each stream's start and stop)
    /// the edge did not accept, e.g. its 503 when no node took the forwarded event. They fail the
    /// call like any error; counted apart because they travel edge → node beside the media and
    /// say nothing about the call's audio (`cargo xtask bench` and the soak drill report them
    /// without judging them).
    pub callback_errors: usize,
    /// `node` when `outcome` comes from the node's record, `simulator` otherwise.
    pub outcome_source: &'static str,
    /// How the call ended on Twilio's side.
    pub ended: CallEnd,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Seconds from the voice webhook to the hang-up.
    pub duration_s: f64,
    /// The node whose record was read.
    pub node_url: Option<String>,
    /// The node's own turn latency (end of caller speech as its VAD saw it → first frame sent).
    pub node_turn_latency_ms: Vec<u64>,
    /// Problems the node recorded for this call (not counted in `errors`).
    pub node_errors: Vec<String>,
    /// `<Say>` texts from TwiML (not from the node's audio).
    pub twiml_said: Vec<String>,
    /// `<Dial>`s and the status the simulator gave them.
    pub dials: Vec<DialReport>,
    /// TwiML documents fetched, in order.
    pub twiml: Vec<DocumentTrace>,
    /// Media streams opened.
    pub streams: Vec<StreamStats>,
    /// REST updates of the live call the simulator accepted (`--twilio-api-listen`): a
    /// transfer's TwiML, a hang-up. Absent when there were none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub call_updates: Vec<String>,
}

impl CallReport {
    /// Whether the call failed (exit status non-zero).
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.outcome.as_deref() == Some("failed")
    }
}

/// One `<Dial>`.
#[derive(Debug, Clone, Serialize)]
pub struct DialReport {
    /// The number dialed.
    pub to: String,
    /// The `DialCallStatus` posted.
    pub status: &'static str,
}

/// Summary statistics of a latency sample, ms (to 0.01 ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let rank = |p: f64| {
            let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            round_ms(sorted[idx.clamp(1, sorted.len()) - 1])
        };
        Self {
            count: sorted.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: round_ms(sorted[sorted.len() - 1]),
            mean: round_ms(sorted.iter().sum::<f64>() / sorted.len() as f64),
        }
    }
}

/// Milliseconds to 0.01 ms.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// A duration in ms to 0.01 ms.
pub fn duration_ms(d: std::time::Duration) -> f64 {
    round_ms(d.as_secs_f64() * 1000.0)
}

/// The result of `simulate --load N --duration S`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Calls started.
    pub calls: usize,
    /// Seconds over which they were started.
    pub ramp_s: f64,
    /// Seconds each call stayed on the line.
    pub duration_s: f64,
    /// Most streams open at the same time.
    pub peak_concurrent_streams: usize,
    /// Calls whose stream ran until the simulator hung up.
    pub completed: usize,
    /// Calls with any error.
    pub failed: usize,
    /// Status callbacks the edge did not accept, over all calls ([`CallReport::callback_errors`]).
    pub callback_errors: usize,
    /// Calls with an error other than a status callback's (a call whose only errors are
    /// callbacks is in `failed` but not here).
    pub failed_beyond_callbacks: usize,
    /// Voice webhooks that failed or returned unusable TwiML.
    pub webhook_failures: usize,
    /// WebSocket handshakes refused or timed out.
    pub handshake_failures: usize,
    /// Streams the node closed before the simulator hung up.
    pub node_hangups: usize,
    /// Caller frames sent.
    pub frames_sent: u64,
    /// Caller frames the simulator sent more than 20 ms late (simulator overload).
    pub send_late_frames: u64,
    /// Agent audio frames received.
    pub frames_received: u64,
    /// Agent frames more than 20 ms behind schedule within an utterance.
    pub late_frames: u64,
    /// Marks received from the agent.
    pub marks_received: u64,
    /// Marks echoed back (mark round trips).
    pub marks_echoed: u64,
    /// `clear`s received.
    pub clears: u64,
    /// Latency distributions.
    pub latency_ms: LoadLatencies,
    /// This process's resource use.
    pub simulator: ProcessUsage,
    /// The node's resource use (`--node-pid`), sampled from /proc during the run.
    pub node: Option<NodeUsage>,
    /// Distinct errors with how many calls hit each (most frequent first, at most 20).
    pub errors: Vec<ErrorCount>,
}

/// Latency samples of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadLatencies {
    /// Voice webhook → TwiML (the edge's answer), per call.
    pub webhook: Percentiles,
    /// WebSocket upgrade → 101, per call.
    pub handshake: Percentiles,
    /// Webhook sent → stream established (setup as the caller experiences it), per call.
    pub setup: Percentiles,
    /// `start` → first agent audio frame (the greeting), per call.
    pub first_agent_audio: Percentiles,
    /// End of caller speech → first agent audio (only with `--say`), per turn.
    pub turn: Percentiles,
}

/// CPU and memory of the simulator process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessUsage {
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// User + system CPU seconds used by this process during the run.
    pub cpu_s: f64,
    /// CPU milliseconds per call.
    pub cpu_ms_per_call: f64,
    /// CPU use as a fraction of one core over the run.
    pub cores_used: f64,
    /// Peak resident memory of this process, MiB.
    pub max_rss_mib: f64,
}

/// CPU and memory of the node process under test.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NodeUsage {
    /// The node's pid.
    pub pid: u32,
    /// Resident memory before the first call, MiB.
    pub rss_before_mib: f64,
    /// Highest resident memory seen during the run, MiB.
    pub rss_peak_mib: f64,
    /// (peak − before) / peak concurrent streams, KiB.
    pub rss_per_call_kib: f64,
    /// CPU seconds the node used during the run.
    pub cpu_s: f64,
    /// CPU use as a fraction of one core, while all calls were up (between the end of the ramp
    /// and the first hang-up).
    pub cores_used_at_peak: f64,
    /// CPU milliseconds per call-second at peak (cores_used_at_peak × 1000 / calls).
    pub cpu_ms_per_call_second: f64,
}

/// An error message and how often it happened.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    /// The message (per-call SIDs stripped).
    pub message: String,
    /// How many times.
    pub count: usize,
}

/// Counts identical messages, most frequent first, at most `limit`.
pub fn count_errors(messages: impl IntoIterator<Item = String>, limit: usize) -> Vec<ErrorCount> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in messages {
        *counts.entry(strip_sids(&message)).or_default() += 1;
    }
    let mut list: Vec<ErrorCount> = counts
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect();
    list.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.message.cmp(&b.message))
    });
    list.truncate(limit);
    list
}

/// Replaces Twilio SIDs (two capitals + 32 hex) by `XX…` so per-call messages group together.
fn strip_sids(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < bytes.len() {
        let is_sid = i + 34 <= bytes.len()
            && bytes[i].is_ascii_uppercase()
            && bytes[i + 1].is_ascii_uppercase()
            && bytes[i + 2..i + 34]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        if is_sid {
            out.push(bytes[i] as char);
            out.push(bytes[i + 1] as char);
            out.push('…');
            i += 34;
        } else {
            let ch = message[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// CPU seconds (user + system) and peak RSS (KiB) of this process so far.
pub fn process_cpu_and_rss() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let secs = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            (
                secs(usage.user_time()) + secs(usage.system_time()),
                usage.max_rss() as f64,
            )
        }
        Err(_) => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max, p.mean),
            (100, 50.0, 95.0, 99.0, 100.0, 50.5)
        );
        assert_eq!(Percentiles::of(&[7.123]).p99, 7.12);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }

    #[test]
    fn errors_group_across_calls() {
        let counts = count_errors(
            [
                "handshake refused for CA0123456789abcdef0123456789abcdef".to_owned(),
                "handshake refused for CAfedcba9876543210fedcba9876543210".to_owned(),
                "other".to_owned(),
            ],
            10,
        );
        assert_eq!(counts[0].message, "handshake refused for CA…");
        assert_eq!(counts[0].count, 2);
        assert_eq!(counts[1].message, "other");
    }
}
