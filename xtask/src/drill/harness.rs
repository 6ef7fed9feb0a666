//! The drills' cast as real processes: a private Postgres that can be killed and restarted on
//! its port, voice nodes and the native edge with logs, `voice-node simulate --load` runs, and
//! the small HTTP and /proc probes the drills judge by.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::demo::{capture, random_hex};
use crate::interrupt;
use crate::local_postgres::{LocalPostgres, PgBinaries};

/// The caller's number every drill call comes from.
pub const CALLER: &str = "+14155550142";

/// Where the binaries are and the secrets every process of one drill shares.
#[derive(Debug, Clone)]
pub struct Kit {
    /// `target/release/voice-node`.
    pub node_bin: PathBuf,
    /// `target/release/edge-worker`.
    pub edge_bin: PathBuf,
    /// Logs and scratch files of this drill run.
    pub work: PathBuf,
    /// `TWILIO_AUTH_TOKEN` for everyone (the simulator signs with it).
    pub auth_token: String,
    /// `EDGE_SHARED_SECRET`.
    pub secret: String,
}

impl Kit {
    /// A kit with fresh secrets, logging under `work`.
    pub fn new(bins: &Path, work: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        Ok(Kit {
            node_bin: bins.join("voice-node"),
            edge_bin: bins.join("edge-worker"),
            work,
            auth_token: random_hex(16)?,
            secret: random_hex(32)?,
        })
    }

    /// A directory with no models in it: drills measure the media plane with the light agent,
    /// not Whisper on two cores.
    fn no_models(&self) -> PathBuf {
        self.work.join("no-models")
    }
}

/// A private Postgres that a drill may kill (`pg_ctl stop -m immediate`, a crash without
/// checkpoint) and restart on the same port.
#[derive(Debug)]
pub struct Db {
    /// The cluster (thrown away on drop).
    pg: LocalPostgres,
    /// `pg_ctl`, and `psql` beside it.
    bins: PgBinaries,
}

impl Db {
    /// Starts an ephemeral cluster and applies the schema with `voice-node migrate`.
    pub fn start(kit: &Kit) -> anyhow::Result<Self> {
        let pg = LocalPostgres::ephemeral().context("starting a private Postgres")?;
        interrupt::stop_on_interrupt(pg.stopper());
        let bins = PgBinaries::find().context("finding pg_ctl")?;
        let db = Db { pg, bins };
        capture(
            Command::new(&kit.node_bin)
                .arg("migrate")
                .env("DATABASE_URL", db.url()),
        )?;
        Ok(db)
    }

    /// `postgres://…` for the nodes.
    pub fn url(&self) -> String {
        self.pg.url()
    }

    /// Kills the server: immediate shutdown, no checkpoint, every connection cut.
    pub fn kill(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-w", "-m", "immediate"])
    }

    /// Starts it again on the same port (crash recovery runs first).
    pub fn restart(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=. \
             -c unix_socket_permissions=0700 -c fsync=off",
            self.pg.port()
        );
        let log = self.pg.log_file().display().to_string();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options])
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = as_postgres(&self.bins.pg_ctl);
        cmd.current_dir("/")
            .args(args)
            .arg("-D")
            .arg(self.pg.data_dir());
        let out = cmd.output().context("running pg_ctl")?;
        if !out.status.success() {
            bail!(
                "pg_ctl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs `sql` with psql and returns its rows, fields separated by `|`.
    pub fn query(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let psql = self
            .bins
            .pg_ctl
            .parent()
            .map(|d| d.join("psql"))
            .context("no directory for psql")?;
        let out = Command::new(&psql)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", psql.display()))?;
        if !out.status.success() {
            bail!(
                "psql failed on {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// A single number from `sql`.
    pub fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        let rows = self.query(sql)?;
        let first = rows
            .first()
            .with_context(|| format!("{sql:?} returned no row"))?;
        first
            .trim()
            .parse()
            .with_context(|| format!("{sql:?} returned {first:?}, not a number"))
    }

    /// A tenant with one screening-mode number; returns the tenant id.
    pub fn seed_number(&self, kit: &Kit, e164: &str) -> anyhow::Result<String> {
        let tenant = capture(
            Command::new(&kit.node_bin)
                .args(["tenant", "create", "--name", "Drill", "--mode", "screening"])
                .env("DATABASE_URL", self.url()),
        )?;
        capture(
            Command::new(&kit.node_bin)
                .args(["number", "add", "--tenant", &tenant, "--e164", e164])
                .args(["--owner", "+14155550199"])
                .env("DATABASE_URL", self.url()),
        )?;
        Ok(tenant)
    }
}

/// `program` run as the `postgres` user when we are root (the cluster's files are theirs).
fn as_postgres(program: &Path) -> Command {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A server process this drill started (node or edge), logging to a file. Killed on drop if
/// still running, so a failed drill leaves nothing behind.
#[derive(Debug)]
pub struct Proc {
    /// For messages.
    pub name: String,
    /// The process.
    child: Child,
    /// Its log.
    pub log: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Proc {
    fn spawn(
        name: &str,
        mut command: Command,
        log: PathBuf,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        let child = crate::run::spawn_logged(name, &mut command, &log)?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
            addr,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Polls `GET path` until 200, failing early with the log's tail if the process exits.
    pub fn wait_ready(&mut self, path: &str, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "{} exited ({status}) during start-up: {}",
                    self.name,
                    self.log_tail()
                );
            }
            if http_get(self.addr, path).map(|r| r.0) == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} not ready within {:?}: {}",
            self.name,
            limit,
            self.log_tail()
        )
    }

    /// Sends `signal` (`TERM`, `KILL`) to this process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -s {signal} {} failed", self.pid());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(None)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// A counter or gauge from its `/metrics` (`None` when it does not answer).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.addr, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Options for one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `NODE_ID`.
    pub id: &'static str,
    /// `DRAIN_GRACE_SECS`.
    pub drain_grace_s: u64,
    /// `JOB_WORKERS`.
    pub job_workers: usize,
    /// `TWILIO_API_BASE` (the recording fake), if any.
    pub twilio_api: Option<String>,
    /// More environment, applied last (overrides the defaults above).
    pub env: Vec<(&'static str, String)>,
}

impl NodeSpec {
    /// A node with no job workers and a 60 s drain.
    pub fn new(id: &'static str) -> Self {
        NodeSpec {
            id,
            drain_grace_s: 60,
            job_workers: 0,
            twilio_api: None,
            env: Vec::new(),
        }
    }
}

/// Starts a voice node on a free port and waits for `/readyz`.
pub fn start_node(kit: &Kit, db: &Db, spec: &NodeSpec) -> anyhow::Result<Proc> {
    let addr = free_addr()?;
    std::fs::create_dir_all(kit.no_models())?;
    let mut cmd = Command::new(&kit.node_bin);
    cmd.arg("serve")
        .env("DATABASE_URL", db.url())
        .env("LISTEN_ADDR", addr.to_string())
        .env("PUBLIC_BASE_URL", format!("http://{addr}"))
        .env("NODE_ID", spec.id)
        .env("NODE_REGION", "iad")
        .env("TWILIO_AUTH_TOKEN", &kit.auth_token)
        .env("EDGE_SHARED_SECRET", &kit.secret)
        .env("HEARTBEAT_SECS", "1")
        .env("DRAIN_GRACE_SECS", spec.drain_grace_s.to_string())
        .env("JOB_WORKERS", spec.job_workers.to_string())
        .env("CALLGATE_MODELS_DIR", kit.no_models())
        .env("RUST_LOG", "info");
    if let Some(api) = &spec.twilio_api {
        cmd.env("TWILIO_API_BASE", api)
            .env("TWILIO_ACCOUNT_SID", crate::drill::twilio_fake::ACCOUNT_SID);
    }
    for (name, value) in &spec.env {
        cmd.env(name, value);
    }
    let log = kit.work.join(format!("{}.log", spec.id));
    let mut node = Proc::spawn(spec.id, cmd, log, addr)?;
    node.wait_ready("/readyz", Duration::from_secs(60))?;
    Ok(node)
}

/// Starts the native edge, pulling its snapshot from `control` every half second.
pub fn start_edge(kit: &Kit, control: &Proc) -> anyhow::Result<Proc> {
    let addr = free_addr()?;
    let mut cmd = Command::new(&kit.edge_bin);
    cmd.env("LISTEN_ADDR", addr.to_string())
        .env("TWILIO_AUTH_TOKEN", &kit.auth_token)
        .env("EDGE_SHARED_SECRET", &kit.secret)
        .env("PUBLIC_WEBHOOK_BASE_URL", format!("http://{addr}"))
        .env("CONTROL_URL", control.url())
        .env("SNAPSHOT_TTL_MS", "500")
        .env("RUST_LOG", "warn");
    let mut edge = Proc::spawn("edge", cmd, kit.work.join("edge.log"), addr)?;
    edge.wait_ready("/healthz", Duration::from_secs(30))?;
    Ok(edge)
}

/// A `voice-node simulate --load` run in the background.
#[derive(Debug)]
pub struct Load {
    /// The simulator.
    child: Child,
    /// Where its stdout (the JSON report) goes.
    report: PathBuf,
}

/// What a load run is asked to do.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent calls.
    pub calls: usize,
    /// Seconds each call lasts.
    pub duration_s: f64,
    /// Seconds over which calls start.
    pub ramp_s: f64,
    /// The number called.
    pub to: String,
    /// A name for its log.
    pub label: String,
}

impl Load {
    /// Starts a load run against `edge`.
    pub fn start(kit: &Kit, edge: &Proc, spec: &LoadSpec) -> anyhow::Result<Self> {
        let args = [
            "--load".to_owned(),
            spec.calls.to_string(),
            "--duration".to_owned(),
            spec.duration_s.to_string(),
            "--ramp".to_owned(),
            spec.ramp_s.to_string(),
        ];
        Self::simulate(kit, edge, &spec.to, &spec.label, &args, &[])
    }

    /// Starts `voice-node simulate` against `edge`, calling `to`, with `args` and `env`.
    pub fn simulate(
        kit: &Kit,
        edge: &Proc,
        to: &str,
        label: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let log = kit.work.join(format!("simulate-{label}.log"));
        let stdout = kit.work.join(format!("simulate-{label}.json"));
        let child = Command::new(&kit.node_bin)
            .args([
                "simulate",
                "--edge",
                &edge.url(),
                "--to",
                to,
                "--from",
                CALLER,
            ])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("TWILIO_AUTH_TOKEN", &kit.auth_token)
            .env("EDGE_SHARED_SECRET", &kit.secret)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&log)?)
            .spawn()
            .context("starting voice-node simulate")?;
        interrupt::terminate_on_interrupt(child.id());
        Ok(Load {
            child,
            report: stdout,
        })
    }

    /// Waits for the run and returns its JSON report.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the load run did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let text = std::fs::read_to_string(&self.report).unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .ok()
            .or_else(|| {
                text.lines()
                    .rev()
                    .find_map(|l| serde_json::from_str::<Value>(l).ok())
            })
            .filter(Value::is_object)
            .with_context(|| {
                format!(
                    "simulate printed no JSON report (see {})",
                    self.report.display()
                )
            })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A number from a load report (`0` when missing).
pub fn num(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or(0)
}

/// `GET path` over plain HTTP/1.1: status and body, `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Resident memory (KiB) and open file descriptors of `pid`, from /proc.
pub fn rss_and_fds(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// A free 127.0.0.1 port.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}
