//! The native edge server: the same Router as the Worker, on tokio, for local development and
//! the demo (`cargo run -p edge-worker`).
//!
//! Environment: `LISTEN_ADDR` (default `127.0.0.1:8787`), `TWILIO_AUTH_TOKEN`,
//! `EDGE_SHARED_SECRET`, `PUBLIC_WEBHOOK_BASE_URL`, `CONTROL_URL` (required), `FALLBACK_NODES`,
//! `FALLBACK_NUMBERS`, `SNAPSHOT_TTL_MS` (optional), `RUST_LOG`. A missing or invalid variable
//! is named on stderr and the process exits with status 2.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::net::SocketAddr;
    use std::process::ExitCode;

    use axum::extract::Request;
    use edge_worker::config::Config;
    use edge_worker::native_server::{serve as serve_limited, webhook_limits, with_body_limits};
    use edge_worker::platform::RequestLocation;
    use edge_worker::{AppState, app};
    use shared::routing::GeoPoint;
    use tracing_subscriber::EnvFilter;

    pub fn main() -> ExitCode {
        tracing_subscriber::fmt()
            .with_env_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
            )
            .init();
        let config = match Config::from_lookup(|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("edge-worker: configuration error: {err}");
                return ExitCode::from(2);
            }
        };
        let addr: SocketAddr = match std::env::var("LISTEN_ADDR")
            .unwrap_or_else(|_| "127.0.0.1:8787".to_owned())
            .parse()
        {
            Ok(addr) => addr,
            Err(err) => {
                eprintln!("edge-worker: configuration error: LISTEN_ADDR is invalid: {err}");
                return ExitCode::from(2);
            }
        };
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(err) => {
                eprintln!("edge-worker: cannot start the tokio runtime: {err}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(serve(addr, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("edge-worker: {err}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(addr: SocketAddr, config: Config) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(
            addr = %listener.local_addr()?,
            public_base_url = %config.public_base_url,
            control_url = %config.control_url,
            fallback_nodes = config.fallback_nodes.len(),
            "edge-worker (native) listening"
        );
        let limits = webhook_limits();
        let router = with_body_limits(
            app(AppState::new(config)).layer(axum::middleware::map_request(dev_location)),
            limits,
        );
        // Header/body deadlines and the body cap; each request carries its peer address, the
        // source unsigned-webhook floods are limited by.
        serve_limited(listener, router, limits, shutdown_signal()).await;
        tracing::info!("edge-worker stopped");
        Ok(())
    }

    /// Local development only: `X-Dev-Lat`/`X-Dev-Lon` stand in for the Worker's `cf`
    /// coordinates, so nearest-node choice can be tried without Cloudflare.
    async fn dev_location(mut req: Request) -> Request {
        let coord = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let (Some(lat), Some(lon)) = (coord("x-dev-lat"), coord("x-dev-lon")) {
            req.extensions_mut()
                .insert(RequestLocation(GeoPoint::new(lat, lon)));
        }
        req
    }

    /// Ctrl-C or SIGTERM: stop accepting, let in-flight webhooks finish.
    async fn shutdown_signal() {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}
