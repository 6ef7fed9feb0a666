//! `shared`: everything callgate's edge and voice nodes must agree on, with no I/O.
//!
//! Only this crate knows Twilio's wire formats (form fields, JSON, TwiML); the edge worker and
//! the voice node see typed values. It builds for `wasm32-unknown-unknown` (the Cloudflare Worker)
//! and natively (the voice node, tests, fuzzing), so it uses no tokio, no sqlx and no clock of its
//! own: callers pass "now" in.
//!
//! Components:
//! - [`form`]: `application/x-www-form-urlencoded` bodies as ordered key/value pairs.
//! - [`signature`]: `X-Twilio-Signature` computation and constant-time validation.
//! - [`webhook`]: typed webhook parameters (voice, status, dial, gather, recording, stream, SMS).
//! - [`twiml`]: a typed TwiML builder with correct XML escaping.
//! - [`media_stream`]: Media Streams WebSocket messages in both directions.
//! - [`access_token`]: Twilio Voice SDK access tokens (HS256 JWT).
//! - [`mulaw`]: G.711 mu-law encode/decode and 20 ms framing.
//! - [`routing`]: the routing snapshot and nearest-healthy-node choice.
//! - [`stream_token`]: the edge-issued token a voice node checks on a stream's `start`.
//! - [`domain`]: domain enums shared by both sides (call mode, screening label).
//! - [`failure_limit`]: per-source token buckets drained only by failed (unsigned) requests.

pub mod access_token;
pub mod domain;
pub mod failure_limit;
pub mod form;
pub mod forwarded;
pub mod media_stream;
pub mod mulaw;
pub mod routing;
pub mod signature;
pub mod stream_token;
pub mod twiml;
pub mod webhook;
