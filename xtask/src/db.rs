//! `cargo xtask db`: a local Postgres for development, up until Ctrl-C.
//!
//! By default the cluster is persistent, in `$CALLGATE_DATA_DIR/postgres` (`.callgate/postgres` in
//! the repository when unset) — the same place the voice node uses when `DATABASE_URL` is unset —
//! so data survives restarts. `--ephemeral` gives a throwaway one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::interrupt;
use crate::local_postgres::{LocalPostgres, LocalPostgresOptions};
use crate::prerequisites::Context;

#[derive(Debug, Args)]
pub struct DbArgs {
    /// A temporary cluster, deleted on exit.
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// The data directory (default: $CALLGATE_DATA_DIR/postgres, or .callgate/postgres).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &DbArgs) -> anyhow::Result<ExitCode> {
    Context::default().ensure_postgres()?;
    let options = if args.ephemeral {
        LocalPostgresOptions::ephemeral()
    } else {
        LocalPostgresOptions::persistent(args.data_dir.clone().unwrap_or_else(default_data_dir))
    };
    let pg = LocalPostgres::start(options)?;
    interrupt::stop_on_interrupt(pg.stopper());

    eprintln!("data dir: {}", pg.data_dir().display());
    eprintln!("server log: {}", pg.log_file().display());
    if !pg.owns_server() {
        eprintln!("(a server was already running in that dir; it is left running on exit)");
    }
    eprintln!("use it with: export DATABASE_URL={}", pg.url());
    eprintln!("Ctrl-C stops it.");
    // The URL alone on stdout, for scripts.
    println!("{}", pg.url());
    loop {
        // The interrupt handler stops the cluster and exits.
        std::thread::park();
    }
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("CALLGATE_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".callgate"))
        .join("postgres")
}
