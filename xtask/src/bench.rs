//! `cargo xtask bench [--quick]`: the README's measured claims, measured again on this machine.
//!
//! 1. Builds the node and the native edge in release, starts a private Postgres, seeds one
//!    screening tenant and number, and starts the node with no AI models (`CALLGATE_MODELS_DIR`
//!    an empty directory), so every call gets the minimal agent (`GreetingRecorder`), and the
//!    edge in front of it, as real processes.
//! 2. Node capacity: `voice-node simulate --load N` through the edge at increasing N until a run
//!    is not clean (a call failed, a greeting frame arrived more than 20 ms late or never, or
//!    the node counted a late or dropped frame). A status callback the edge did not accept (its
//!    503 when no node took the forwarded event) is reported in its own column and does not make
//!    a run unclean: it says nothing about frames. A warm-up call goes first, so the edge has its
//!    routing snapshot before the first measured call. Memory and CPU per call come from /proc
//!    (sampled by the simulator), frame → agent latency from `/metrics` histogram deltas.
//! 3. The same search against a Node.js relay written the way Twilio's samples are
//!    (`bench/node-relay/`, clearly a baseline), reported as ratios.
//! 4. Edge: the `bench_edge` example (workerd vs native; bundle size).
//!
//! The node is pinned to CPU 1 and everything else (load generator, edge, Postgres, the relay's
//! generator) to CPU 0 with `taskset`, so the generator does not take the node's CPU; with
//! `--no-pin` they share both cores. Results go to `bench/results/<date>-<host>[-quick].md` and
//! `.json`, with the machine, the command and every figure.

mod load_run;
mod machine;
mod results;
mod scrape;
pub mod stall_probe;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;

use self::load_run::{Generator, LoadRun, Target};
use self::machine::Machine;
use crate::demo::{Service, capture, free_addr, path_str, random_hex};
use crate::interrupt;
use crate::local_postgres::LocalPostgres;
use crate::prerequisites::Context;
use crate::run::{cmd, output, run as run_cmd, target_dir};

/// The benchmark tenant's number.
const NUMBER: &str = "+15550100100";

/// The minimal agent's screening greeting (`voice-node`'s `Prompt::Greeting(Screening)`), which
/// the baseline relay plays too, synthesized the same way (espeak-ng en-us at 165 wpm, sox to
/// 8 kHz mu-law).
const GREETING: &str = "Hello, you have reached a call screening assistant. Please say who you are and why you are calling.";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Small sizes and short holds: a few minutes, for iterating.
    #[arg(long)]
    quick: bool,
    /// Call counts to try, comma-separated, increasing (default: 250,500,1000,1500,2000,2500,3000;
    /// --quick: 50,100,200).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Seconds each call stays up (default 30; --quick 10).
    #[arg(long)]
    duration: Option<u64>,
    /// Calls started per second while a run ramps up (default 500: the simulator's own ramp,
    /// a burst far steeper than a real node sees).
    #[arg(long, value_name = "CALLS_PER_S")]
    ramp_rate: Option<f64>,
    /// Do not pin the node and the load generator to separate cores.
    #[arg(long)]
    no_pin: bool,
    /// Skip the Node.js baseline.
    #[arg(long)]
    skip_baseline: bool,
    /// Skip the edge benchmark (it needs the wasm32 toolchain and workerd).
    #[arg(long)]
    skip_edge: bool,
    /// Use the release binaries already in target/release instead of building them (e.g. to
    /// measure a known build while the tree is being edited).
    #[arg(long)]
    no_build: bool,
}

/// Calls started per second by default: `voice-node simulate`'s own ramp (N / 500 s, at least 1 s).
const DEFAULT_RAMP_RATE: f64 = 500.0;

/// Where the two sides of the machine go when pinning.
const SERVER_CPU: &str = "1";
const GENERATOR_CPU: &str = "0";

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let machine = Machine::read();
    let command_line = format!(
        "cargo xtask bench {}",
        std::env::args().skip(2).collect::<Vec<_>>().join(" ")
    )
    .trim_end()
    .to_owned();
    let pin = !args.no_pin && machine.cores >= 2;
    let hold_s = args.duration.unwrap_or(if args.quick { 10 } else { 30 });
    let sizes = if !args.sizes.is_empty() {
        args.sizes.clone()
    } else if args.quick {
        vec![50, 100, 200]
    } else {
        vec![250, 500, 1000, 1500, 2000, 2500, 3000]
    };
    let ramp_rate = args.ramp_rate.unwrap_or(DEFAULT_RAMP_RATE);
    if !(ramp_rate.is_finite() && ramp_rate > 0.0) {
        bail!("--ramp-rate must be a positive number of calls per second, e.g. 100");
    }
    if sizes.windows(2).any(|w| w[0] >= w[1]) || sizes.contains(&0) {
        bail!("--sizes must be positive and increasing, e.g. 250,500,1000");
    }
    let latency_sizes: &[usize] = if args.quick { &[100] } else { &[100, 1000] };
    println!("callgate benchmark: {command_line}");
    println!("machine: {}", machine.describe());

    let mut ctx = Context::default();
    ctx.ensure_postgres()?;
    ctx.ensure_speech_tools()?;
    if args.no_build {
        step("using the release binaries already built (--no-build)");
    } else {
        step("building the voice node and the edge (release)");
        crate::run::build_node_and_edge(true)?;
    }
    let bins = target_dir().join("release");
    for bin in ["voice-node", "edge-worker"] {
        if !bins.join(bin).exists() {
            bail!(
                "{} is missing: run without --no-build",
                bins.join(bin).display()
            );
        }
    }
    let node_bin = path_str(&bins.join("voice-node"))?.to_owned();
    let edge_bin = path_str(&bins.join("edge-worker"))?.to_owned();

    let work = crate::repo_root().join(".callgate/bench");
    let no_models = work.join("no-models");
    std::fs::create_dir_all(&no_models)
        .with_context(|| format!("creating {}", no_models.display()))?;
    if std::fs::read_dir(&no_models)?.next().is_some() {
        bail!(
            "{} must be empty (the node runs without models there)",
            no_models.display()
        );
    }
    let greeting = work.join("greeting.ulaw");
    synthesize_greeting(&greeting)?;
    let greeting_frames = std::fs::metadata(&greeting)?.len() / 160;

    step("starting a private Postgres (thrown away on exit)");
    let pg = LocalPostgres::ephemeral()?;
    interrupt::stop_on_interrupt(pg.stopper());
    let db = pg.url();
    place_postmaster(pg.data_dir(), pin);
    capture(cmd(&node_bin, ["migrate"]).env("DATABASE_URL", &db))?;
    let tenant = capture(
        cmd(
            &node_bin,
            ["tenant", "create", "--name", "Bench", "--mode", "screening"],
        )
        .env("DATABASE_URL", &db),
    )?;
    capture(
        cmd(
            &node_bin,
            ["number", "add", "--tenant", &tenant, "--e164", NUMBER],
        )
        .env("DATABASE_URL", &db),
    )?;

    let secret = random_hex(32)?;
    let auth_token = random_hex(16)?;
    let node_addr = free_addr(0)?;
    let edge_addr = free_addr(0)?;
    let node_url = format!("http://{node_addr}");
    let edge_url = format!("http://{edge_addr}");

    step(&format!(
        "starting the voice node on {node_url}{}",
        if pin {
            format!(" (pinned to CPU {SERVER_CPU})")
        } else {
            String::new()
        }
    ));
    let mut node = pinned(pin.then_some(SERVER_CPU), &node_bin, &["serve"]);
    node.env("DATABASE_URL", &db)
        .env("LISTEN_ADDR", &node_addr)
        .env("PUBLIC_BASE_URL", &node_url)
        .env("NODE_ID", "bench-node")
        .env("NODE_REGION", "iad")
        .env("TWILIO_AUTH_TOKEN", &auth_token)
        .env("EDGE_SHARED_SECRET", &secret)
        .env("CALLGATE_MODELS_DIR", &no_models)
        // The search must find the node's limit, not the configured one.
        .env("NODE_CAPACITY", "100000")
        .env("RUST_LOG", "warn")
        .env("DRAIN_GRACE_SECS", "5");
    let node = Service::start("voice node", node, &work.join("node.log"))?;
    node.wait_http(&node_addr, "/readyz", Duration::from_secs(90))?;

    step(&format!(
        "starting the edge (native, release) on {edge_url}"
    ));
    let mut edge = pinned(pin.then_some(GENERATOR_CPU), &edge_bin, &[]);
    edge.env("LISTEN_ADDR", &edge_addr)
        .env("TWILIO_AUTH_TOKEN", &auth_token)
        .env("EDGE_SHARED_SECRET", &secret)
        .env("PUBLIC_WEBHOOK_BASE_URL", &edge_url)
        .env("CONTROL_URL", &node_url)
        .env("RUST_LOG", "warn");
    let edge = Service::start("edge", edge, &work.join("edge.log"))?;
    edge.wait_http(&edge_addr, "/healthz", Duration::from_secs(30))?;

    let generator = Generator {
        bin: node_bin.clone(),
        cpus: pin.then(|| GENERATOR_CPU.to_owned()),
        nice: is_root().then(|| PRIORITY.to_owned()),
        auth_token: auth_token.clone(),
        hold_s,
        greeting_frames,
        ramp_rate,
        probe_cpus: pin.then(|| SERVER_CPU.to_owned()),
    };
    let node_target = Target {
        name: "voice node",
        route: vec!["--edge".into(), edge_url.clone()],
        pid: node.pid(),
        metrics_addr: Some(node_addr.clone()),
    };
    step(&format!(
        "node capacity: {sizes:?} concurrent calls through the edge, {hold_s} s each, minimal agent"
    ));
    // Until the edge has pulled a snapshot naming the node, a call gets no node: settle that
    // before measuring.
    load_run::warm_up(&generator, &node_target, Duration::from_secs(30))?;
    let node_runs = load_run::search(&generator, &node_target, &sizes)?;
    // Latency sizes the search did not reach (or skipped) get a run of their own.
    let mut node_latency_runs = Vec::new();
    for &n in latency_sizes {
        if !node_runs.iter().any(|r| r.calls == n) {
            step(&format!("frame → agent latency at {n} calls"));
            load_run::settle(&node_target)?;
            node_latency_runs.push(load_run::run(&generator, &node_target, n)?);
        }
    }
    load_run::settle(&node_target)?;
    edge.stop();
    node.stop();
    drop(pg);

    let mut baseline_runs: Vec<LoadRun> = Vec::new();
    let mut baseline_error = None;
    if !args.skip_baseline {
        match run_baseline(&generator, pin, &greeting, &sizes, &work) {
            Ok(runs) => baseline_runs = runs,
            Err(err) => {
                println!("baseline: not measured: {err:#}");
                baseline_error = Some(format!("{err:#}"));
            }
        }
    }

    let edge_result = if args.skip_edge {
        results::EdgeResult::Skipped
    } else {
        match run_edge_bench(&mut ctx, if args.quick { 500 } else { 2000 }) {
            Ok(text) => results::EdgeResult::Measured(text),
            Err(err) => {
                println!("edge benchmark: not measured: {err:#}");
                results::EdgeResult::Failed(format!("{err:#}"))
            }
        }
    };

    let results = results::Results {
        machine,
        command: command_line,
        date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .unwrap_or_default()
            .trim()
            .to_owned(),
        quick: args.quick,
        pinned: pin,
        niced: is_root(),
        hold_s,
        ramp_rate,
        greeting_frames,
        latency_sizes: latency_sizes.to_vec(),
        node_runs,
        node_latency_runs,
        baseline_runs,
        baseline_error,
        edge: edge_result,
        elapsed_s: started.elapsed().as_secs(),
    };
    let (md, json) = results.write(&crate::repo_root().join("bench/results"))?;
    println!("\n{}", results.summary());
    println!("results: {} and {}", md.display(), json.display());
    Ok(ExitCode::SUCCESS)
}

/// The Node.js relay: npm packages installed by this command (`npm ci` into
/// `bench/node-relay/node_modules`), pinned like the node, the same search straight to its
/// WebSocket.
fn run_baseline(
    generator: &Generator,
    pin: bool,
    greeting: &Path,
    sizes: &[usize],
    work: &Path,
) -> anyhow::Result<Vec<LoadRun>> {
    let dir = crate::repo_root().join("bench/node-relay");
    if output(&mut cmd("node", ["--version"])).is_none() {
        bail!("node is missing: install Node.js 20 or newer to run the baseline");
    }
    if !dir.join("node_modules/fastify/package.json").exists()
        || !dir
            .join("node_modules/@fastify/websocket/package.json")
            .exists()
    {
        step("installing the baseline's npm packages (npm ci in bench/node-relay)");
        run_cmd(cmd("npm", ["ci", "--no-fund", "--no-audit"]).current_dir(&dir))?;
    }
    let addr = free_addr(0)?;
    let port = addr.rsplit_once(':').map_or("0", |(_, p)| p).to_owned();
    step(&format!(
        "starting the Node.js baseline relay on {addr} ({})",
        output(&mut cmd("node", ["--version"]))
            .unwrap_or_default()
            .trim()
    ));
    let mut relay = pinned(pin.then_some(SERVER_CPU), "node", &["relay.js"]);
    relay
        .current_dir(&dir)
        .env("PORT", &port)
        .env("GREETING_ULAW", greeting);
    let relay = Service::start("Node.js relay", relay, &work.join("relay.log"))?;
    relay.wait_http(&addr, "/healthz", Duration::from_secs(30))?;
    let target = Target {
        name: "Node.js relay (baseline)",
        route: vec!["--stream-url".into(), format!("ws://{addr}/media")],
        pid: relay.pid(),
        metrics_addr: None,
    };
    step("baseline capacity: the same sizes, straight to the relay's WebSocket");
    let runs = load_run::search(generator, &target, sizes);
    relay.stop();
    runs
}

/// `cargo xtask bench-edge`'s steps with the output kept: the bundle, the release example,
/// and its run.
fn run_edge_bench(ctx: &mut Context, requests: usize) -> anyhow::Result<String> {
    step("edge: the WASM bundle in workerd vs the native build");
    crate::edge_bundle::build(ctx)?;
    run_cmd(&mut cmd(
        "cargo",
        [
            "build",
            "--release",
            "--quiet",
            "-p",
            "edge-worker",
            "--bin",
            "edge-worker",
            "--example",
            "bench_edge",
        ],
    ))?;
    let release = target_dir().join("release");
    let out = Command::new(release.join("examples/bench_edge"))
        .current_dir(crate::repo_root())
        .arg("--requests")
        .arg(requests.to_string())
        .arg("--native-bin")
        .arg(release.join("edge-worker"))
        .stdin(Stdio::null())
        .output()
        .context("running bench_edge")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        bail!(
            "bench_edge failed ({}): {}",
            out.status,
            crate::demo::tail(&String::from_utf8_lossy(&out.stderr), 800)
        );
    }
    println!("{text}");
    Ok(text)
}

/// espeak-ng + sox → raw 8 kHz mu-law, as the node's `speech::synthesize_mulaw` does.
fn synthesize_greeting(out: &Path) -> anyhow::Result<()> {
    let wav = out.with_extension("wav");
    run_cmd(&mut cmd(
        "espeak-ng",
        ["-v", "en-us", "-s", "165", "-w", path_str(&wav)?, GREETING],
    ))?;
    run_cmd(&mut cmd(
        "sox",
        [
            "-q",
            "-t",
            "wav",
            path_str(&wav)?,
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "mu-law",
            "-b",
            "8",
            "-t",
            "raw",
            path_str(out)?,
        ],
    ))
}

/// `program args`, under `taskset -c CPUS` when given, and at [`PRIORITY`] when running as root.
fn pinned(cpus: Option<&str>, program: &str, args: &[&str]) -> Command {
    let mut argv: Vec<String> = Vec::new();
    if is_root() {
        argv.extend(["nice", "-n", PRIORITY].map(String::from));
    }
    if let Some(cpus) = cpus {
        argv.extend(["taskset", "-c", cpus].map(String::from));
    }
    argv.push(program.to_owned());
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    cmd(&argv[0], &argv[1..])
}

/// The nice value of everything the benchmark runs (as root): the machine is shared with other
/// people's builds, and at nice 0 a compiler on the node's core preempts it for long enough to
/// make frames late. Applied to the node and the baseline alike.
pub(crate) const PRIORITY: &str = "-15";

/// Whether this process runs as root (needed for a negative nice value).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Pins the running postmaster to the generator's CPU (when `pin`) and gives it the
/// benchmark's priority (as root); its backends, forked later, inherit both.
fn place_postmaster(data_dir: &Path, pin: bool) {
    let pid = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()));
    if let Some(pid) = pid {
        if pin {
            let _ = output(Command::new("taskset").args(["-p", "-c", GENERATOR_CPU, &pid]));
        }
        if is_root() {
            let _ = output(Command::new("renice").args(["-n", PRIORITY, "-p", &pid]));
        }
    }
}

fn step(what: &str) {
    println!("==> {what}");
}
