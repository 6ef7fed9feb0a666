//! callgate's voice node: holds Twilio Media Streams WebSockets, runs each call's agent, and
//! persists calls to the shared Postgres.
//!
//! Components:
//! - [`server`]: `voice-node serve` — the HTTP + WebSocket server, its routes, and the drained
//!   exit; [`server::app`] builds the router for in-process tests.
//! - [`config`]: configuration from the environment; phone-number masking for logs.
//! - [`media`]: one task per call: the socket layer (frames ↔ typed events), the session (token
//!   check, agent, persistence, end of call) and the player (20 ms frames, pacing, marks, clear).
//! - [`agent`]: the seam between a call and whatever talks to the caller (`CallAgent`,
//!   `AgentFactory`), and `GreetingRecorder`, the minimal agent until the AI pipeline lands.
//! - [`ai`]: the offline AI pipeline (Whisper tiny.en, MiniLM screening and FAQ retrieval,
//!   deterministic flows) and its agent; the greeting recorder stands in when models are absent.
//! - [`store`]: the write queue (calls never wait for Postgres), idempotent SQL, forwarded Twilio
//!   callbacks, the call report.
//! - [`api`]: `/api/…`, the dashboard's JSON API (session cookies, tenant scope, live socket),
//!   and the built dashboard at `/`.
//! - [`internal_api`]: `/internal/…`, the edge's HMAC-signed API (events, call report, routing
//!   snapshot).
//! - [`registry`]: this node's heartbeat row and the routing snapshot.
//! - [`reaper`]: closes the calls and releases the jobs of nodes that stopped heartbeating.
//! - [`drain`]: SIGTERM → refuse new streams, let calls finish, close the rest, exit 0.
//! - [`metrics`]: the Prometheus series at `/metrics`.
//! - [`providers`]: cloud AI providers (OpenAI-compatible LLM, Deepgram, ElevenLabs, OpenAI TTS)
//!   with timeouts, retries and fallback to the offline pipeline.
//! - [`twilio_rest`]: Twilio's REST API (send SMS, transfer or end a live call, recordings),
//!   typed errors; the node's one Twilio client.
//! - [`jobs`]: the Postgres job queue every node works (SKIP LOCKED, leases, retries) and its
//!   handlers: missed-call text-back, SMS sends, the AI's SMS takeover, retention, post-call
//!   summary and lead e-mails (SMTP).
//! - [`sms`]: SMS threads: callers' texts, the owner's relays and commands, the 60 s takeover.
//! - [`admin`]: migrations, tenants, numbers and users from the command line.
//! - [`simulate`]: Twilio's side of a call, for tests, the demo and benchmarks.
//! - [`local_postgres`]: a private Postgres cluster from the machine's `initdb`/`pg_ctl`, used when
//!   `DATABASE_URL` is unset and by `cargo xtask test`.
//! - [`db`]: the embedded migrations (`migrations/`) and the connection pool.
//! - [`speech`]: espeak-ng + sox → 8 kHz mu-law, the light offline voice.
//! - [`telemetry`]: logging setup.
//!
//! Architecture invariant: only `media::socket` sees WebSocket frames and Media Streams JSON;
//! sessions and agents see typed events.

pub mod admin;
pub mod agent;
pub mod ai;
pub mod api;
pub mod config;
pub mod db;
pub mod drain;
pub mod internal_api;
pub mod jobs;
pub mod local_postgres;
pub mod media;
pub mod metrics;
pub mod providers;
pub mod reaper;
pub mod registry;
pub mod server;
pub mod simulate;
pub mod sms;
pub mod speech;
pub mod store;
pub mod telemetry;
pub mod twilio_rest;
