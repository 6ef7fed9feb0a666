//! A private PostgreSQL cluster run from the machine's own `initdb` and `pg_ctl`.
//!
//! Used when `DATABASE_URL` is unset (the node keeps its cluster under `CALLGATE_DATA_DIR`), by
//! `cargo xtask test` (an ephemeral cluster for `#[sqlx::test]`) and by `cargo xtask db`.
//!
//! This file is std-only on purpose (plus `thiserror`): `xtask` includes it with
//! `#[path = "../../voice-node/src/local_postgres.rs"] mod local_postgres;` so it can start a
//! database without building the node's tokio/sqlx stack.
//!
//! What it does, and why:
//! - Finds `initdb`/`pg_ctl` on `PATH`, else under `/usr/lib/postgresql/<major>/bin` (Debian's
//!   layout, highest major first, or the major an existing data dir was made with).
//! - `initdb` refuses to run as root. As root, the data dir is given to the `postgres` system user
//!   and every server binary runs through `runuser -u postgres --`; its parent directories get the
//!   "others may traverse" bit if they lack it (e.g. a data dir under `/root`). Not root: the
//!   binaries run as the current user.
//! - The cluster is `-A trust`, listens on 127.0.0.1 only, on a free port picked by binding port 0,
//!   and keeps its Unix socket inside the data dir (no `/var/run/postgresql` needed).
//! - [`LocalPostgres::persistent`] reuses an initialized data dir (and attaches to a server already
//!   running in it); [`LocalPostgres::ephemeral`] makes a temporary one with fsync off and deletes
//!   it when dropped. Dropping a cluster this value started stops it (`pg_ctl stop -m fast`).
//!
//! ```no_run
//! # use voice_node::local_postgres::LocalPostgres;
//! let pg = LocalPostgres::ephemeral()?;
//! println!("DATABASE_URL={}", pg.url());
//! // … the cluster stops and its files are removed when `pg` is dropped.
//! # Ok::<(), voice_node::local_postgres::LocalPostgresError>(())
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The database superuser the cluster is created with; also the role in [`LocalPostgres::url`].
pub const SUPERUSER: &str = "postgres";

/// The system user that owns the cluster when this process runs as root.
const SERVICE_USER: &str = "postgres";

/// How many server log lines an error quotes.
const LOG_TAIL_LINES: usize = 25;

/// Prefix of ephemeral cluster directories in the temp dir; the pid that made one follows it.
const EPHEMERAL_PREFIX: &str = "callgate-pg-";

/// Why a local cluster could not be found, created, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    /// No `initdb`/`pg_ctl` pair anywhere we looked.
    #[error(
        "PostgreSQL server binaries not found: no `{missing}` on PATH or in /usr/lib/postgresql/*/bin \
         (searched: {searched}). Install them with `apt-get update && apt-get install -y postgresql`"
    )]
    BinariesNotFound {
        /// The binary that was missing (`initdb` or `pg_ctl`).
        missing: &'static str,
        /// Where we looked, for the message.
        searched: String,
    },
    /// Running as root, but there is no unprivileged user to own the cluster.
    #[error(
        "running as root, so the cluster must belong to the `{user}` system user (initdb refuses \
         root), but `id {user}` failed: {detail}. `apt-get install -y postgresql` creates that user"
    )]
    NoServiceUser {
        /// The user we need (`postgres`).
        user: &'static str,
        /// What `id` said.
        detail: String,
    },
    /// A program could not be executed at all.
    #[error("could not run `{program}` ({step}): {source}")]
    Spawn {
        /// The step we were at, e.g. "initdb".
        step: &'static str,
        /// The program we tried to run.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// A step ran and failed; `details` holds its output and, for the server, the log's tail.
    #[error("{step} failed ({status}) for data dir {}:\n{details}", data_dir.display())]
    StepFailed {
        /// What we were doing, e.g. "pg_ctl start".
        step: &'static str,
        /// The exit status as printed.
        status: String,
        /// The data directory concerned.
        data_dir: PathBuf,
        /// Program output, then the last lines of the server log when there is one.
        details: String,
    },
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What we tried, e.g. "create directory".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The data dir exists and holds something other than a Postgres cluster.
    #[error(
        "{} is not empty and is not a PostgreSQL data directory (no PG_VERSION); refusing to \
         initdb over it",
        path.display()
    )]
    NotADataDir {
        /// The directory.
        path: PathBuf,
    },
    /// No free TCP port on the loopback interface.
    #[error("could not find a free TCP port on 127.0.0.1: {0}")]
    NoFreePort(#[source] io::Error),
}

type Result<T, E = LocalPostgresError> = std::result::Result<T, E>;

/// The `initdb` and `pg_ctl` to use (from one installation, so their versions match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// The `initdb` executable.
    pub initdb: PathBuf,
    /// The `pg_ctl` executable; it finds `postgres` beside itself.
    pub pg_ctl: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: `PATH` first, then `/usr/lib/postgresql/<major>/bin`, highest major first.
    pub fn find() -> Result<Self> {
        Self::find_preferring(None)
    }

    /// Like [`PgBinaries::find`], but tries `/usr/lib/postgresql/<major>/bin` first: an existing
    /// data dir can only be started by the major version that created it.
    pub fn find_preferring(major: Option<&str>) -> Result<Self> {
        let mut candidates = Vec::new();
        if let Some(major) = major {
            candidates.push(Path::new("/usr/lib/postgresql").join(major).join("bin"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        candidates.extend(debian_bin_dirs(Path::new("/usr/lib/postgresql")));
        Self::find_in(&candidates)
    }

    /// The first directory of `dirs` that holds both binaries.
    pub fn find_in(dirs: &[PathBuf]) -> Result<Self> {
        let mut first_missing = "initdb";
        for dir in dirs {
            let initdb = dir.join("initdb");
            let pg_ctl = dir.join("pg_ctl");
            match (is_executable(&initdb), is_executable(&pg_ctl)) {
                // Resolve symlinks (e.g. /usr/local/bin/pg_ctl → /usr/lib/postgresql/15/bin/pg_ctl):
                // pg_ctl looks for `postgres` beside its real path, and errors should name it.
                (true, true) => {
                    return Ok(Self {
                        initdb: fs::canonicalize(&initdb).unwrap_or(initdb),
                        pg_ctl: fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl),
                    });
                }
                (true, false) => first_missing = "pg_ctl",
                _ => {}
            }
        }
        Err(LocalPostgresError::BinariesNotFound {
            missing: first_missing,
            searched: if dirs.is_empty() {
                "nowhere: no directories given".to_owned()
            } else {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            },
        })
    }
}

/// `ROOT/<major>/bin` for every numeric `<major>` under `root`, highest first.
fn debian_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    majors.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    majors.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Who runs the server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunAs {
    /// We are not root: run them directly.
    CurrentUser,
    /// We are root: run them as this system user via `runuser`, which owns the data dir.
    ServiceUser {
        name: &'static str,
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    fn detect() -> Result<Self> {
        if current_uid() != Some(0) {
            return Ok(Self::CurrentUser);
        }
        let id = |flag: &str| -> Result<u32> {
            let out = Command::new("id")
                .args([flag, SERVICE_USER])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| LocalPostgresError::NoServiceUser {
                    user: SERVICE_USER,
                    detail: e.to_string(),
                })?;
            let text = String::from_utf8_lossy(&out.stdout);
            match (out.status.success(), text.trim().parse::<u32>()) {
                (true, Ok(n)) => Ok(n),
                _ => Err(LocalPostgresError::NoServiceUser {
                    user: SERVICE_USER,
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                }),
            }
        };
        Ok(Self::ServiceUser {
            name: SERVICE_USER,
            uid: id("-u")?,
            gid: id("-g")?,
        })
    }

    /// A command running `program` as this user, from `/` (the service user may not be allowed into
    /// our working directory, and initdb complains when it cannot return to it).
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match self {
            Self::CurrentUser => Command::new(program),
            Self::ServiceUser { name, .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", name, "--"]).arg(program);
                cmd
            }
        };
        cmd.current_dir("/")
            .stdin(Stdio::null())
            // Messages in plain English whatever the caller's locale (an unknown LANG makes the
            // server warn on every start); the cluster's own locale is fixed by initdb.
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST");
        cmd
    }

    /// Gives `dir` to the service user (no-op when not root).
    fn take_ownership(&self, dir: &Path) -> Result<()> {
        if let Self::ServiceUser { uid, gid, .. } = *self {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|source| {
                LocalPostgresError::Io {
                    action: "chown to the postgres user",
                    path: dir.to_owned(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Makes every ancestor of `dir` traversable by the service user (no-op when not root).
    fn make_ancestors_traversable(&self, dir: &Path) -> Result<()> {
        let Self::ServiceUser { uid, .. } = *self else {
            return Ok(());
        };
        for ancestor in dir.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() {
                continue;
            }
            let meta = fs::metadata(ancestor).map_err(|source| LocalPostgresError::Io {
                action: "inspect",
                path: ancestor.to_owned(),
                source,
            })?;
            let mode = meta.permissions().mode();
            if meta.uid() != uid && mode & 0o001 == 0 {
                // Only the execute bit for others: traverse, not list.
                fs::set_permissions(ancestor, fs::Permissions::from_mode(mode | 0o001)).map_err(
                    |source| LocalPostgresError::Io {
                        action: "make traversable (chmod o+x)",
                        path: ancestor.to_owned(),
                        source,
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// The effective uid of this process (owner of `/proc/self`), falling back to `id -u`.
fn current_uid() -> Option<u32> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Some(meta.uid());
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// How [`LocalPostgres::start`] sets up a cluster.
#[derive(Debug, Clone)]
pub struct LocalPostgresOptions {
    /// `Some(dir)`: a persistent cluster in `dir` (created if missing, reused if initialized).
    /// `None`: an ephemeral cluster in a new temp dir, deleted on drop.
    pub data_dir: Option<PathBuf>,
    /// Where `initdb`/`pg_ctl` live; `None` searches (see [`PgBinaries::find`]).
    pub bin_dir: Option<PathBuf>,
    /// `fsync`, `synchronous_commit` and `full_page_writes` on. Off is much faster and fine for
    /// data that may be lost on a machine crash (tests). Default: on for persistent, off for
    /// ephemeral.
    pub durable: bool,
}

impl LocalPostgresOptions {
    /// Options for a persistent cluster in `data_dir`.
    pub fn persistent(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: Some(data_dir.into()),
            bin_dir: None,
            durable: true,
        }
    }

    /// Options for an ephemeral cluster.
    pub fn ephemeral() -> Self {
        Self {
            data_dir: None,
            bin_dir: None,
            durable: false,
        }
    }
}

/// A running local cluster. Stops it on drop if this value started it; see the module docs.
#[derive(Debug)]
pub struct LocalPostgres {
    /// Shared with [`ClusterStopper`]s so a signal handler can stop the cluster too.
    cluster: Arc<Cluster>,
    /// The port the server listens on, on 127.0.0.1.
    port: u16,
    /// Whether `initdb` ran in this start (false when an existing data dir was reused).
    initialized_now: bool,
    /// Whether this value started the server (false: attached to one already running in the dir,
    /// which is left running on drop).
    owned: bool,
}

impl LocalPostgres {
    /// Starts an ephemeral cluster in a new temp dir, with fsync off; deleted on drop.
    pub fn ephemeral() -> Result<Self> {
        Self::start(LocalPostgresOptions::ephemeral())
    }

    /// Starts (or attaches to) the persistent cluster in `data_dir`, creating it if needed.
    pub fn persistent(data_dir: impl Into<PathBuf>) -> Result<Self> {
        Self::start(LocalPostgresOptions::persistent(data_dir))
    }

    /// Starts a cluster as `options` say.
    pub fn start(options: LocalPostgresOptions) -> Result<Self> {
        let run_as = RunAs::detect()?;
        let (data_dir, ephemeral_root) = match &options.data_dir {
            Some(dir) => (absolute(dir)?, None),
            None => {
                sweep_abandoned_ephemeral_clusters(&std::env::temp_dir());
                let root = new_ephemeral_root(&run_as)?;
                (root.join("data"), Some(root))
            }
        };
        let major = fs::read_to_string(data_dir.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let binaries = match &options.bin_dir {
            Some(dir) => PgBinaries::find_in(std::slice::from_ref(dir))?,
            None => PgBinaries::find_preferring(major.as_deref())?,
        };
        let cluster = Arc::new(Cluster {
            binaries,
            run_as,
            data_dir,
            ephemeral_root,
            stopped: Mutex::new(false),
        });
        // From here on, an error drops `cluster`, which removes an ephemeral root.

        if major.is_some()
            && let Some(port) = cluster.running_port()
        {
            return Ok(Self {
                cluster,
                port,
                initialized_now: false,
                owned: false,
            });
        }
        let initialized_now = if major.is_none() {
            cluster.init()?;
            true
        } else {
            false
        };
        let port = cluster.start_server(options.durable)?;
        Ok(Self {
            cluster,
            port,
            initialized_now,
            owned: true,
        })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.cluster.data_dir
    }

    /// The server log (appended to across starts).
    pub fn log_file(&self) -> PathBuf {
        self.cluster.log_file()
    }

    /// Whether this start ran `initdb` (false when an existing data dir was reused).
    pub fn initialized_now(&self) -> bool {
        self.initialized_now
    }

    /// Whether this value started the server (false when it attached to a running one).
    pub fn owns_server(&self) -> bool {
        self.owned
    }

    /// A handle that can stop this cluster from elsewhere, e.g. a Ctrl-C handler, where `Drop`
    /// would never run. Stopping twice is harmless.
    pub fn stopper(&self) -> ClusterStopper {
        ClusterStopper {
            cluster: Arc::clone(&self.cluster),
            owned: self.owned,
        }
    }

    /// Stops the cluster now (if this value started it) and reports failure, unlike `Drop`.
    pub fn stop(self) -> Result<()> {
        if self.owned {
            self.cluster.shutdown()
        } else {
            Ok(())
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.owned {
            // Errors cannot be returned from drop; the server log keeps the story.
            let _ = self.cluster.shutdown();
        }
    }
}

/// Stops a [`LocalPostgres`] from another thread (see [`LocalPostgres::stopper`]).
#[derive(Debug, Clone)]
pub struct ClusterStopper {
    /// The cluster to stop.
    cluster: Arc<Cluster>,
    /// Only a cluster this process started is stopped.
    owned: bool,
}

impl ClusterStopper {
    /// Stops the cluster (and removes an ephemeral one's files) unless already done.
    pub fn stop(&self) -> Result<()> {
        if self.owned {
            self.cluster.shutdown()
        } else {
            Ok(())
        }
    }
}

/// One data directory and how to drive it.
struct Cluster {
    /// The binaries, from one installation.
    binaries: PgBinaries,
    /// Who runs them.
    run_as: RunAs,
    /// `PGDATA`.
    data_dir: PathBuf,
    /// For an ephemeral cluster, the temp dir holding `data_dir`, removed after the server stops.
    ephemeral_root: Option<PathBuf>,
    /// Set once the cluster has been shut down; the lock serializes drop and signal handlers.
    stopped: Mutex<bool>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.data_dir)
            .field("ephemeral", &self.ephemeral_root.is_some())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    fn log_file(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// Creates the data dir (if needed) and runs `initdb` in it.
    fn init(&self) -> Result<()> {
        let dir = &self.data_dir;
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(LocalPostgresError::NotADataDir { path: dir.clone() });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(|source| LocalPostgresError::Io {
                    action: "create directory",
                    path: dir.clone(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(LocalPostgresError::Io {
                    action: "read directory",
                    path: dir.clone(),
                    source,
                });
            }
        }
        // initdb insists on 0700 (or 0750) and on owning the directory.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            LocalPostgresError::Io {
                action: "chmod 0700",
                path: dir.clone(),
                source,
            }
        })?;
        self.run_as.take_ownership(dir)?;
        self.run_as.make_ancestors_traversable(dir)?;

        let mut cmd = self.run_as.command(&self.binaries.initdb);
        cmd.arg("-D").arg(dir).args([
            "--username",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            // The C locale: identical on every machine, and no dependence on installed locales.
            "--no-locale",
            // A fresh cluster that is lost on a crash is simply made again.
            "--no-sync",
        ]);
        let out = run(cmd, "initdb", &self.binaries.initdb)?;
        if !out.status.success() {
            return Err(self.step_failed("initdb", &out, false));
        }
        Ok(())
    }

    /// If a server is already running in the data dir, its port.
    fn running_port(&self) -> Option<u16> {
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        let out = cmd.output().ok()?;
        if !out.status.success() {
            return None;
        }
        // postmaster.pid: pid, data dir, start time, port, socket dir, listen address, …
        let pid_file = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// `pg_ctl -w start` on a free port; returns the port.
    fn start_server(&self, durable: bool) -> Result<u16> {
        // Another process may grab the port between our probe and the server's bind: try again
        // with a new one.
        const ATTEMPTS: usize = 3;
        // Also for a reused dir: the server must reach it even if a parent's mode changed since.
        self.run_as.make_ancestors_traversable(&self.data_dir)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let mut server_options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 \
                 -c unix_socket_directories=. -c unix_socket_permissions=0700"
            );
            // The socket directory is relative to the data dir (the server's working directory):
            // it stays inside the cluster and clear of the 107-byte socket path limit.
            if !durable {
                server_options
                    .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
            cmd.arg("start")
                .arg("-w")
                .args(["-t", "60"])
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(self.log_file())
                .arg("-o")
                .arg(&server_options);
            let out = run(cmd, "pg_ctl start", &self.binaries.pg_ctl)?;
            if out.status.success() {
                return Ok(port);
            }
            let log = tail_lines(&self.log_file(), LOG_TAIL_LINES);
            let port_taken = log.contains("could not bind") || log.contains("already in use");
            if !(port_taken && attempt < ATTEMPTS) {
                return Err(self.step_failed("pg_ctl start", &out, true));
            }
        }
    }

    /// Stops the server (fast: disconnects clients, rolls back, checkpoints) and removes an
    /// ephemeral cluster's files. Idempotent.
    fn shutdown(&self) -> Result<()> {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return Ok(());
        }
        *stopped = true;
        let result = self.pg_ctl_stop("fast").or_else(|first| {
            // A server that will not stop within the timeout is killed rather than orphaned.
            self.pg_ctl_stop("immediate").map_err(|_| first)
        });
        if let Some(root) = &self.ephemeral_root {
            let _ = fs::remove_dir_all(root);
        }
        result
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        if !self.data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("stop")
            .arg("-w")
            .args(["-t", "60", "-m", mode])
            .arg("-D")
            .arg(&self.data_dir);
        let out = run(cmd, "pg_ctl stop", &self.binaries.pg_ctl)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.step_failed("pg_ctl stop", &out, true))
        }
    }

    fn step_failed(&self, step: &'static str, out: &Output, with_log: bool) -> LocalPostgresError {
        let mut details = String::new();
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            if !text.trim().is_empty() {
                details.push_str(text.trim_end());
                details.push('\n');
            }
        }
        if with_log {
            let log_file = self.log_file();
            let tail = tail_lines(&log_file, LOG_TAIL_LINES);
            if !tail.is_empty() {
                details.push_str(&format!(
                    "--- last lines of {} ---\n{tail}",
                    log_file.display()
                ));
            }
        }
        LocalPostgresError::StepFailed {
            step,
            status: out.status.to_string(),
            data_dir: self.data_dir.clone(),
            details,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Reached with `stopped == false` only when start failed before a server ran: nothing to
        // stop, but an ephemeral root must not be left in the temp dir.
        let stopped = *self.stopped.get_mut().unwrap_or_else(|e| e.into_inner());
        if !stopped && let Some(root) = &self.ephemeral_root {
            let _ = self.pg_ctl_stop("immediate");
            let _ = fs::remove_dir_all(root);
        }
    }
}

fn run(mut cmd: Command, step: &'static str, program: &Path) -> Result<Output> {
    cmd.output().map_err(|source| LocalPostgresError::Spawn {
        step,
        program: program.display().to_string(),
        source,
    })
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|source| LocalPostgresError::Io {
        action: "resolve",
        path: dir.to_owned(),
        source,
    })
}

/// A new, empty `TMP/callgate-pg-<pid>-<n>-<nanos>` owned by whoever runs the server.
fn new_ephemeral_root(run_as: &RunAs) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{EPHEMERAL_PREFIX}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let root = absolute(&std::env::temp_dir().join(name))?;
    fs::create_dir(&root).map_err(|source| LocalPostgresError::Io {
        action: "create directory",
        path: root.clone(),
        source,
    })?;
    run_as.take_ownership(&root)?;
    run_as.make_ancestors_traversable(&root)?;
    Ok(root)
}

/// Stops and removes ephemeral clusters whose creating process is gone (it was killed before its
/// `Drop` ran), so crashed test runs do not pile up servers. Best effort.
fn sweep_abandoned_ephemeral_clusters(temp_dir: &Path) {
    let Ok(entries) = fs::read_dir(temp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(EPHEMERAL_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if process_is_alive(pid) {
            continue;
        }
        let root = entry.path();
        let data_dir = root.join("data");
        if data_dir.join("postmaster.pid").exists()
            && let (Ok(run_as), Ok(binaries)) = (RunAs::detect(), PgBinaries::find())
        {
            let mut cmd = run_as.command(&binaries.pg_ctl);
            cmd.args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
                .arg(&data_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
        let _ = fs::remove_dir_all(&root);
    }
}

/// Whether `pid` names a running process. A zombie counts as dead: a killed parent whose own
/// parent has not reaped it yet must not keep its cluster alive.
fn process_is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state …": comm may contain spaces and parentheses, so split at the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(LocalPostgresError::NoFreePort)?;
    let port = listener
        .local_addr()
        .map_err(LocalPostgresError::NoFreePort)?
        .port();
    Ok(port)
}

/// The last `n` lines of a text file, or "" if it cannot be read.
fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    tail
}

#[cfg(test)]
mod tests {
    // Helpers only; starting real clusters is tested in `voice-node/tests/local_postgres.rs`
    // (integration tests, so xtask, which includes this file, does not run them a second time).
    use super::*;

    /// A scratch directory under the temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "callgate-lpg-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_binaries_error_names_the_binary_and_apt_get() {
        let empty = Scratch::new("nobin");
        let err = PgBinaries::find_in(std::slice::from_ref(&empty.0)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`initdb`"), "{msg}");
        assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
        assert!(msg.contains(&empty.0.display().to_string()), "{msg}");
    }

    #[test]
    fn debian_bin_dirs_are_highest_major_first() {
        let root = Scratch::new("majors");
        for major in ["9", "15", "13", "not-a-version"] {
            fs::create_dir_all(root.0.join(major).join("bin")).unwrap();
        }
        let dirs = debian_bin_dirs(&root.0);
        assert_eq!(
            dirs,
            vec![
                root.0.join("15/bin"),
                root.0.join("13/bin"),
                root.0.join("9/bin")
            ]
        );
    }

    #[test]
    fn abandoned_ephemeral_dirs_are_swept() {
        let temp = Scratch::new("sweep");
        // pid 0 never names a live process under /proc.
        let dead = temp.0.join(format!("{EPHEMERAL_PREFIX}0-0-0"));
        fs::create_dir_all(dead.join("data")).unwrap();
        let alive = temp
            .0
            .join(format!("{EPHEMERAL_PREFIX}{}-0-0", std::process::id()));
        fs::create_dir_all(&alive).unwrap();
        sweep_abandoned_ephemeral_clusters(&temp.0);
        assert!(!dead.exists());
        assert!(alive.exists());
    }

    #[test]
    fn liveness_sees_this_process_and_not_a_missing_one() {
        assert!(process_is_alive(std::process::id()));
        assert!(!process_is_alive(0));
    }

    #[test]
    fn tail_lines_keeps_the_end() {
        let scratch = Scratch::new("tail");
        let file = scratch.0.join("log");
        fs::write(&file, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail_lines(&file, 2), "c\nd\n");
        assert_eq!(tail_lines(&scratch.0.join("missing"), 2), "");
    }
}
