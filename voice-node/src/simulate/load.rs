//! `simulate --load N --duration S`: N concurrent calls, each a full simulated call through the
//! edge (voice webhook → TwiML → signed Media Stream handshake), started evenly over the ramp,
//! each streaming caller frames at real-time pace for S seconds and echoing the agent's marks.
//!
//! Going through the edge for every call keeps the load realistic (the edge issues each call's
//! stream token, so the node's token check is exercised too) and costs one small HTTP request
//! per call, which is negligible next to 50 WebSocket frames per second per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::call::{CallPlan, place_call};
use super::media_call::{StreamStats, run_media_session};
use super::report::{
    CallReport, LoadLatencies, LoadReport, NodeUsage, Percentiles, ProcessUsage, count_errors,
    process_cpu_and_rss,
};
use super::twilio_http::CallIdentity;
use super::twiml_follow::{CallEnd, StreamEnd, StreamSpec};

/// How many streams are open right now, and the most at once.
#[derive(Debug, Default)]
pub struct StreamGauge {
    /// Open now.
    active: AtomicUsize,
    /// Most open at once.
    peak: AtomicUsize,
}

impl StreamGauge {
    /// A stream opened.
    pub fn opened(&self) {
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// A stream closed.
    pub fn closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Most open at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// The default ramp: a second or two, longer for very large runs so the edge and the node's
/// accept loop are not hit by thousands of requests in the same millisecond.
pub fn default_ramp(calls: usize) -> Duration {
    Duration::from_secs_f64((calls as f64 / 500.0).clamp(1.0, 10.0))
}

/// Where each call of a load run goes.
#[derive(Debug, Clone)]
pub enum LoadTarget {
    /// The whole call through the edge: voice webhook, TwiML, the stream it names.
    ThroughEdge,
    /// Straight to this Media Streams WebSocket (signed handshake, no webhook, no stream
    /// token): for servers that do not sit behind our edge, such as the benchmark's Node.js
    /// baseline relay.
    Stream(StreamSpec),
}

/// Runs the load test through the edge. `template` is one call's plan; each call gets its own
/// CallSid. With `node_pid`, the node process's memory and CPU are sampled from /proc during
/// the run.
pub async fn run_load(
    template: CallPlan,
    calls: usize,
    hold: Duration,
    ramp: Duration,
    node_pid: Option<u32>,
) -> LoadReport {
    run_load_to(
        template,
        LoadTarget::ThroughEdge,
        calls,
        hold,
        ramp,
        node_pid,
    )
    .await
}

/// [`run_load`] against `target`.
pub async fn run_load_to(
    template: CallPlan,
    target: LoadTarget,
    calls: usize,
    hold: Duration,
    ramp: Duration,
    node_pid: Option<u32>,
) -> LoadReport {
    raise_open_file_limit();
    let gauge = Arc::new(StreamGauge::default());
    let (cpu_before, _) = process_cpu_and_rss();
    let started = Instant::now();
    let sampler = node_pid.map(|pid| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        (stop, tokio::spawn(sample_process(pid, stopped)))
    });
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let mut plan = template.clone();
        plan.call = CallIdentity::new(
            &template.call.account_sid,
            &template.call.from,
            &template.call.to,
        );
        plan.session.hold_for = Some(hold);
        plan.session.max_duration = hold + Duration::from_secs(60);
        plan.session.gauge = Some(gauge.clone());
        plan.record = None;
        plan.record_unavailable = None;
        let at = started + ramp.mul_f64(i as f64 / calls.max(1) as f64);
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            match target {
                LoadTarget::ThroughEdge => place_call(plan).await,
                LoadTarget::Stream(stream) => stream_only_call(plan, &stream).await,
            }
        }));
    }
    let mut reports = Vec::with_capacity(calls);
    let mut panics = Vec::new();
    for task in tasks {
        match task.await {
            Ok(report) => reports.push(report),
            Err(e) => panics.push(format!("call task failed: {e}")),
        }
    }
    let wall = started.elapsed();
    let (cpu_after, max_rss_kib) = process_cpu_and_rss();
    let cpu_s = cpu_after - cpu_before;
    let mut report = summarize(
        &reports,
        panics,
        calls,
        ramp,
        hold,
        gauge.peak(),
        ProcessUsage {
            wall_s: round2(wall.as_secs_f64()),
            cpu_s: round2(cpu_s),
            cpu_ms_per_call: round2(cpu_s * 1000.0 / calls.max(1) as f64),
            cores_used: round2(cpu_s / wall.as_secs_f64().max(1e-9)),
            max_rss_mib: round2(max_rss_kib / 1024.0),
        },
    );
    if let (Some(pid), Some((stop, task))) = (node_pid, sampler) {
        let _ = stop.send(());
        if let Ok(samples) = task.await {
            // All calls are up between the end of the ramp and the first hang-up.
            let window = (started + ramp + Duration::from_millis(500), started + hold);
            report.node = node_usage(pid, &samples, window, gauge.peak(), calls);
        }
    }
    report
}

/// One call that is only a Media Stream ([`LoadTarget::Stream`]), reported like a full call.
async fn stream_only_call(plan: CallPlan, stream: &StreamSpec) -> CallReport {
    let began = Instant::now();
    let mut stats = StreamStats::default();
    let end = run_media_session(
        &plan.http,
        &plan.call,
        stream,
        &plan.script,
        &plan.session,
        &mut stats,
    )
    .await;
    let (ended, mut errors) = match end {
        StreamEnd::CallerHungUp => (CallEnd::CallerHungUp, Vec::new()),
        StreamEnd::NodeClosed | StreamEnd::Redirected(_) => (CallEnd::NodeHungUp, Vec::new()),
        StreamEnd::Failed(reason) => (CallEnd::ApplicationError, vec![reason]),
    };
    errors.extend(stats.errors.iter().cloned());
    CallReport {
        call_sid: plan.call.call_sid.clone(),
        mode: None,
        outcome: None,
        transcript: Vec::new(),
        screening: None,
        turn_latency_ms: stats.turn_latency_ms.clone(),
        errors,
        callback_errors: stats.callback_errors,
        outcome_source: "simulator",
        ended,
        from: plan.call.from.clone(),
        to: plan.call.to.clone(),
        duration_s: (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        node_url: None,
        node_turn_latency_ms: Vec::new(),
        node_errors: Vec::new(),
        twiml_said: Vec::new(),
        dials: Vec::new(),
        twiml: Vec::new(),
        streams: vec![stats],
        call_updates: Vec::new(),
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    at: Instant,
    rss_kib: f64,
    cpu_s: f64,
}

/// Reads `/proc/PID/status` (VmRSS) and `/proc/PID/stat` (utime + stime).
fn read_process(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    Some(ProcSample {
        at: Instant::now(),
        rss_kib,
        cpu_s: ticks as f64 / hz as f64,
    })
}

async fn sample_process(pid: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> Vec<ProcSample> {
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = every.tick() => samples.extend(read_process(pid)),
            _ = &mut stop => break,
        }
    }
    samples.extend(read_process(pid));
    samples
}

fn node_usage(
    pid: u32,
    samples: &[ProcSample],
    window: (Instant, Instant),
    peak_streams: usize,
    calls: usize,
) -> Option<NodeUsage> {
    let first = samples.first()?;
    let last = samples.last()?;
    let peak_rss = samples.iter().map(|s| s.rss_kib).fold(0.0, f64::max);
    let in_window: Vec<&ProcSample> = samples
        .iter()
        .filter(|s| s.at >= window.0 && s.at <= window.1)
        .collect();
    let (a, b) = match (in_window.first(), in_window.last()) {
        (Some(a), Some(b)) if b.at > a.at => (*a, *b),
        _ => (first, last),
    };
    let cores = if b.at > a.at {
        (b.cpu_s - a.cpu_s) / (b.at - a.at).as_secs_f64()
    } else {
        0.0
    };
    Some(NodeUsage {
        pid,
        rss_before_mib: round2(first.rss_kib / 1024.0),
        rss_peak_mib: round2(peak_rss / 1024.0),
        rss_per_call_kib: round2((peak_rss - first.rss_kib) / peak_streams.max(1) as f64),
        cpu_s: round2(last.cpu_s - first.cpu_s),
        cores_used_at_peak: round2(cores),
        cpu_ms_per_call_second: round2(cores * 1000.0 / calls.max(1) as f64),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn summarize(
    reports: &[CallReport],
    panics: Vec<String>,
    calls: usize,
    ramp: Duration,
    hold: Duration,
    peak: usize,
    simulator: ProcessUsage,
) -> LoadReport {
    let streams: Vec<&StreamStats> = reports.iter().flat_map(|r| r.streams.iter()).collect();
    let sum = |f: fn(&StreamStats) -> u64| streams.iter().map(|s| f(s)).sum::<u64>();
    let webhook: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.twiml.first().map(|d| d.response_ms))
        .collect();
    let handshake: Vec<f64> = streams.iter().filter_map(|s| s.handshake_ms).collect();
    let setup: Vec<f64> = reports
        .iter()
        .filter_map(|r| Some(r.twiml.first()?.response_ms + r.streams.first()?.handshake_ms?))
        .collect();
    let first_audio: Vec<f64> = streams
        .iter()
        .filter_map(|s| s.first_agent_audio_ms)
        .collect();
    let turns: Vec<f64> = streams
        .iter()
        .flat_map(|s| s.turn_latency_ms.iter().map(|&ms| ms as f64))
        .collect();
    let webhook_failures = reports
        .iter()
        .filter(|r| r.ended == CallEnd::ApplicationError && r.streams.is_empty())
        .count();
    let handshake_failures = streams.iter().filter(|s| s.handshake_ms.is_none()).count();
    let completed = reports
        .iter()
        .filter(|r| r.ended == CallEnd::CallerHungUp)
        .count();
    let node_hangups = reports
        .iter()
        .filter(|r| r.ended == CallEnd::NodeHungUp)
        .count();
    let failed = reports.iter().filter(|r| !r.errors.is_empty()).count() + panics.len();
    let failed_beyond_callbacks = reports
        .iter()
        .filter(|r| r.errors.len() > r.callback_errors)
        .count()
        + panics.len();
    let errors = count_errors(
        reports
            .iter()
            .flat_map(|r| r.errors.iter().cloned())
            .chain(panics),
        20,
    );
    LoadReport {
        calls,
        ramp_s: ramp.as_secs_f64(),
        duration_s: hold.as_secs_f64(),
        peak_concurrent_streams: peak,
        completed,
        failed,
        callback_errors: reports.iter().map(|r| r.callback_errors).sum(),
        failed_beyond_callbacks,
        webhook_failures,
        handshake_failures,
        node_hangups,
        frames_sent: sum(|s| s.frames_sent),
        send_late_frames: sum(|s| s.send_late_frames),
        frames_received: sum(|s| s.frames_received),
        late_frames: sum(|s| s.late_frames),
        marks_received: sum(|s| s.marks_received),
        marks_echoed: sum(|s| s.marks_echoed),
        clears: sum(|s| s.clears),
        latency_ms: LoadLatencies {
            webhook: Percentiles::of(&webhook),
            handshake: Percentiles::of(&handshake),
            setup: Percentiles::of(&setup),
            first_agent_audio: Percentiles::of(&first_audio),
            turn: Percentiles::of(&turns),
        },
        simulator,
        node: None,
        errors,
    }
}

/// Thousands of sockets need more than the usual 1024 descriptors: raise the soft limit to the
/// hard one (no privilege needed).
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
