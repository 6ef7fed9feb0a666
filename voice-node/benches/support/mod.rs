//! Helpers the latency benches share: settings from the environment, the machine's load and
//! the process's CPU (figures are only comparable at similar load), percentiles.

#![allow(dead_code)]

/// `name` parsed from the environment, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 1-minute load average (the machine is shared: figures are only comparable at similar
/// load).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The CPU's model name (Linux), for the report.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// User + system CPU time of this process so far (Linux), in seconds.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // `rest` starts at field 3 (state); clock ticks are 100 per second on Linux.
    (ticks(14 - 3) + ticks(15 - 3)) / 100.0
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Logs to stderr when `RUST_LOG` is set (`RUST_LOG=voice_node=debug`: the node's logs, such as
/// provider failures and VAD fallbacks).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
}

/// Whether this is a measuring run. `cargo bench` passes `--bench`; `cargo test --all-targets`
/// (CI) runs the binary without it, and then a bench makes a smoke run that proves it still
/// works without spending CI's minutes.
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The runtime the calls run on: two workers, as on the 2-core dev VM the figures come from.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts call `n` in `mode` with `factory`'s agent, its clock starting now, and tells the
/// agent it started.
pub fn start_call(
    factory: &dyn voice_node::agent::AgentFactory,
    n: usize,
    mode: shared::domain::CallMode,
) -> (
    voice_node::agent::CallStarted,
    voice_node::agent::AgentHandle,
) {
    let call = voice_node::agent::CallStarted {
        call_sid: format!("CA{n:032}"),
        stream_sid: format!("MZ{n:032}"),
        tenant_id: "bench".into(),
        mode,
        custom_parameters: std::collections::BTreeMap::new(),
        clock: voice_node::agent::CallClock::starting_at(tokio::time::Instant::now()),
    };
    let agent = factory.start(
        &call,
        std::sync::Arc::new(voice_node::metrics::Metrics::new()),
    );
    let _ = agent.deliver(voice_node::agent::AgentEvent::Started(call.clone()));
    (call, agent)
}

/// `stage` of every turn, sorted for [`percentile`].
pub fn sorted<T>(turns: &[T], stage: impl Fn(&T) -> f64) -> Vec<f64> {
    let mut values: Vec<f64> = turns.iter().map(stage).collect();
    values.sort_by(f64::total_cmp);
    values
}
