//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), JSON when
//! `LOG_FORMAT=json` (production on Fly.io). Stdout stays free for command output (ids, JSON).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
