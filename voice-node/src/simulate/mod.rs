//! `voice-node simulate`: Twilio's side of a call, for tests, the demo and benchmarks.
//!
//! ```text
//! TWILIO_AUTH_TOKEN=… EDGE_SHARED_SECRET=… voice-node simulate --edge http://127.0.0.1:8787 \
//!     --to +14155550100 --from +14155550123 --say "Hi, this is Dana from the dentist." \
//!     [--audio caller.ulaw] [--dial-status completed|no-answer|busy|failed] [--public-base-url URL]
//! voice-node simulate --edge … --to … --from … --load 100 --duration 30
//! ```
//!
//! One call: a signed voice webhook to `{edge}/telephony/inbound` ([`twilio_http`]); the TwiML is
//! followed like Twilio's call engine ([`twiml_follow`]): `<Dial action>` gets the
//! `--dial-status` outcome, `<Redirect>` is fetched, `<Connect><Stream>` opens the Media Stream
//! with a signed handshake ([`media_call`]), where the caller speaks each `--say` sentence (or
//! the `--audio` file) at real-time pace after the agent finishes its turn, and agent audio plays
//! through a model of Twilio's buffer ([`playback`]) that echoes marks and honours `clear`.
//! Then the final status callback, and the node's record of the call
//! (`GET {node}/internal/calls/{call_sid}`, [`node_record`]). One JSON object goes to stdout
//! ([`report::CallReport`]); the exit status is non-zero when the call failed.
//!
//! `--twilio-api-listen ADDR` serves Twilio's REST call update for this call ([`call_control`]):
//! point the node's `TWILIO_API_BASE` there (directly or through a proxy) and a transfer or
//! hang-up over REST stops the stream and the call follows the new TwiML, as on Twilio.
//!
//! `--load N --duration S` places N such calls at once ([`load`]) and prints counts and latency
//! percentiles ([`report::LoadReport`]). `--stream-url WS_URL` (with `--load`) skips the edge and
//! opens each call's Media Stream straight to that URL, for servers not behind our edge (the
//! benchmark's Node.js baseline).
//!
//! Environment: `TWILIO_AUTH_TOKEN` (required: signs every request like Twilio),
//! `EDGE_SHARED_SECRET` (to read the node's record; without it the report says why the
//! transcript is missing), `TWILIO_ACCOUNT_SID` (optional; default a random `AC…`).

pub mod call;
pub mod call_control;
pub mod caller_audio;
pub mod ids;
pub mod load;
pub mod media_call;
pub mod node_record;
pub mod playback;
pub mod report;
pub mod twilio_http;
pub mod twiml_follow;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use self::call::{CallPlan, RecordSource, place_call};
use self::caller_audio::Utterance;
use self::media_call::SessionOptions;
use self::twilio_http::{CallIdentity, TwilioHttp};
use self::twiml_follow::{CallerBehaviour, DialStatus};

/// Command-line arguments of `voice-node simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The edge's base URL, where webhooks are sent (e.g. http://127.0.0.1:8787).
    #[arg(long, value_name = "URL", required_unless_present = "stream_url")]
    pub edge: Option<String>,
    /// Skip the edge: open the Media Stream straight to this WebSocket URL (signed handshake,
    /// no stream token), e.g. to load-test a server that is not behind our edge. Needs --load.
    #[arg(
        long,
        value_name = "WS_URL",
        conflicts_with = "edge",
        requires = "load"
    )]
    pub stream_url: Option<String>,
    /// The edge's public URL (its PUBLIC_WEBHOOK_BASE_URL), over which Twilio signs; default:
    /// --edge.
    #[arg(long, value_name = "URL")]
    pub public_base_url: Option<String>,
    /// The called number (a tenant's number), E.164.
    #[arg(long, value_name = "E164")]
    pub to: String,
    /// The caller's number, E.164.
    #[arg(long, value_name = "E164")]
    pub from: String,
    /// A caller sentence, spoken with the offline voice after the agent's turn; repeatable.
    #[arg(long = "say", value_name = "SENTENCE")]
    pub say: Vec<String>,
    /// Raw 8 kHz mu-law audio streamed as the caller's last turn.
    #[arg(long, value_name = "FILE.ulaw")]
    pub audio: Option<PathBuf>,
    /// How the owner's phone answers a <Dial>.
    #[arg(long, value_enum, default_value_t = DialStatus::Completed)]
    pub dial_status: DialStatus,
    /// With --dial-status no-answer, ring at most this long (s) instead of the <Dial timeout>
    /// Twilio would wait (20 s for callgate's dials).
    #[arg(long, value_name = "S")]
    pub ring_limit: Option<u64>,
    /// Serve Twilio's REST call update (`POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`,
    /// Basic auth with TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN) for this call on this address:
    /// the stream stops and the call follows the new TwiML, as Twilio's does. Single call only.
    #[arg(long, value_name = "ADDR", conflicts_with = "load")]
    pub twilio_api_listen: Option<String>,
    /// Read the call record from this node (base URL) instead of the one the stream URL names.
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// Agent silence, after its audio played and its marks came back, that ends its turn (ms).
    #[arg(long, default_value_t = 700, value_name = "MS")]
    pub turn_gap_ms: u64,
    /// How long to wait for the agent to start speaking before moving on (s).
    #[arg(long, default_value_t = 15, value_name = "S")]
    pub reply_timeout: u64,
    /// Hang up any call still going after this long (s).
    #[arg(long, default_value_t = 180, value_name = "S")]
    pub max_duration: u64,
    /// Do not post <Stream statusCallback> events.
    #[arg(long)]
    pub no_stream_status: bool,
    /// Load test: place this many concurrent calls.
    #[arg(long, value_name = "N")]
    pub load: Option<usize>,
    /// Load test: seconds each call stays on the line.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub duration: f64,
    /// Load test: seconds over which the calls are started (default: N/500, 1 to 10).
    #[arg(long, value_name = "S")]
    pub ramp: Option<f64>,
    /// Load test: the node's pid on this machine, to report its memory per call and CPU from
    /// /proc.
    #[arg(long, value_name = "PID")]
    pub node_pid: Option<u32>,
}

/// Runs `voice-node simulate`.
pub async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let auth_token = env("TWILIO_AUTH_TOKEN").context(
        "TWILIO_AUTH_TOKEN is not set: the simulator signs every request with it, as Twilio \
         does; use the same value the edge has",
    )?;
    let secret = env("EDGE_SHARED_SECRET");
    let account_sid = env("TWILIO_ACCOUNT_SID").unwrap_or_else(|| ids::sid("AC"));
    for (flag, number) in [("--to", &args.to), ("--from", &args.from)] {
        crate::admin::parse_e164(flag, number)?;
    }
    // Direct mode sends no webhook; the stream URL stands in as the (unused) edge base.
    let edge = match (&args.edge, &args.stream_url) {
        (Some(edge), _) => edge.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => bail!("--edge URL is required (or --stream-url with --load)"),
    };
    let public_base = args.public_base_url.clone().unwrap_or_else(|| edge.clone());
    let http = TwilioHttp::new(&auth_token, &public_base, &edge)?;

    let mut script = Vec::new();
    for sentence in &args.say {
        script.push(Utterance::speak(sentence).await?);
    }
    if let Some(path) = &args.audio {
        script.push(Utterance::from_file(path)?);
    }

    let call = CallIdentity::new(&account_sid, &args.from, &args.to);
    // Kept until the call is over: dropping it stops the endpoint.
    let mut call_control = None;
    let mut control = None;
    if let Some(listen) = &args.twilio_api_listen {
        let (server, inbox) =
            call_control::CallControlServer::start(listen, &call, &auth_token).await?;
        tracing::info!(addr = %server.addr, "serving Twilio's REST call update for the call");
        call_control = Some(server);
        control = Some(inbox);
    }
    let plan = CallPlan {
        http,
        call,
        script: Arc::new(script),
        behaviour: CallerBehaviour {
            dial_status: args.dial_status,
            voicemail_secs: 4,
            ring_limit: args.ring_limit.map(Duration::from_secs),
        },
        session: SessionOptions {
            turn_gap: Duration::from_millis(args.turn_gap_ms),
            reply_timeout: Duration::from_secs(args.reply_timeout),
            max_duration: Duration::from_secs(args.max_duration),
            stream_status_callbacks: !args.no_stream_status,
            call_control: control,
            ..SessionOptions::default()
        },
        record: secret.as_ref().map(|s| RecordSource {
            secret: s.as_bytes().to_vec(),
            node_override: args.node.clone(),
            wait: Duration::from_secs(10),
        }),
        record_unavailable: secret.is_none().then(|| {
            "EDGE_SHARED_SECRET is not set, so the node's record (transcript, outcome) could not \
             be read"
                .to_owned()
        }),
    };

    if let Some(calls) = args.load {
        if calls == 0 {
            bail!("--load must be at least 1");
        }
        if args.duration.is_nan() || args.duration <= 0.0 {
            bail!("--duration must be positive");
        }
        let ramp = args
            .ramp
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| load::default_ramp(calls));
        let hold = Duration::from_secs_f64(args.duration);
        let target = match &args.stream_url {
            None => load::LoadTarget::ThroughEdge,
            // No <Stream statusCallback> here: the StreamSpec has none, so none are posted.
            Some(url) => load::LoadTarget::Stream(twiml_follow::StreamSpec {
                url: url.clone(),
                parameters: [("from", &args.from), ("to", &args.to)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
                ..twiml_follow::StreamSpec::default()
            }),
        };
        let report = load::run_load_to(plan, target, calls, hold, ramp, args.node_pid).await;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if report.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    let mut report = place_call(plan).await;
    if let Some(server) = &call_control {
        report.call_updates = server.updates();
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
