//! A local stand-in for Twilio's REST API that records what reaches it, speaking the real wire
//! protocol (form POST with Basic auth → 201 and Twilio's JSON), as in
//! `voice-node/tests/twilio_fake/`, but on std threads since xtask has no async runtime.
//!
//! For the SIGKILL drill it can *hold* the first messages: the request is read and never
//! answered until the client goes away, so the node is killed mid-send with its job leased.
//!
//! For the demo it can hand call updates (`Calls/{CA}.json`: a transfer's TwiML, a hang-up) to
//! a *call engine*, the `voice-node simulate --twilio-api-listen` of the call in progress, which
//! makes the live call follow them as Twilio does; with no call in progress it answers Twilio's
//! 404. Messages are kept (recipient and body) so the demo can show what was texted.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

/// The account the nodes are configured with.
pub const ACCOUNT_SID: &str = "ACdrill000000000000000000000000000";

/// What the fake saw.
#[derive(Debug, Default)]
pub struct Counts {
    /// `Messages.json` POSTs received.
    pub messages_received: AtomicU64,
    /// Of those, answered 201 (an SMS Twilio would have sent).
    pub messages_sent: AtomicU64,
    /// Of those, held until the client went away (never sent).
    pub messages_abandoned: AtomicU64,
    /// Other requests (call updates), answered 200.
    pub other: AtomicU64,
    /// `(To, Body)` of each message answered 201.
    pub messages: Mutex<Vec<(String, String)>>,
}

/// The running fake.
#[derive(Debug)]
pub struct TwilioFake {
    /// `http://127.0.0.1:PORT` (the nodes' `TWILIO_API_BASE`).
    pub base: String,
    /// What it saw.
    pub counts: Arc<Counts>,
}

impl TwilioFake {
    /// Serves on a free port; the first `hold` messages are held, not answered.
    pub fn start(hold: u64) -> anyhow::Result<Self> {
        Self::start_with(hold, None)
    }

    /// Serves on a free port, handing call updates to the call engine at `engine` (host:port).
    pub fn with_call_engine(engine: &str) -> anyhow::Result<Self> {
        Self::start_with(0, Some(engine.to_owned()))
    }

    fn start_with(hold: u64, engine: Option<String>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the Twilio fake")?;
        let addr: SocketAddr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = Arc::clone(&shared);
                let engine = engine.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &counts, hold, engine.as_deref());
                });
            }
        });
        Ok(TwilioFake {
            base: format!("http://{addr}"),
            counts,
        })
    }

    /// Messages answered 201.
    pub fn sent(&self) -> u64 {
        self.counts.messages_sent.load(Ordering::SeqCst)
    }

    /// Messages received (answered or not).
    pub fn received(&self) -> u64 {
        self.counts.messages_received.load(Ordering::SeqCst)
    }

    /// Messages held until their client went away.
    pub fn abandoned(&self) -> u64 {
        self.counts.messages_abandoned.load(Ordering::SeqCst)
    }

    /// `(To, Body)` of the messages answered 201 so far.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.counts
            .messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

fn serve(
    stream: TcpStream,
    counts: &Counts,
    hold: u64,
    engine: Option<&str>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        // Kept for a call update handed to the call engine (its Basic auth, its content type).
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            headers.push(line.to_owned());
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let is_message =
            request_line.starts_with("POST ") && request_line.contains("/Messages.json");
        let is_call_update = request_line.starts_with("POST ") && request_line.contains("/Calls/");
        if let (true, Some(engine)) = (is_call_update, engine) {
            counts.other.fetch_add(1, Ordering::SeqCst);
            let answer = to_call_engine(engine, &request_line, &headers, &body)
                .unwrap_or_else(|_| no_such_call());
            writer.write_all(&answer)?;
            writer.flush()?;
            // The engine's answer says `Connection: close`; so does this connection.
            return Ok(());
        }
        if is_message {
            let n = counts.messages_received.fetch_add(1, Ordering::SeqCst);
            if n < hold {
                // Never answered: wait for the client to disappear (the node is killed).
                writer.set_read_timeout(Some(Duration::from_secs(120)))?;
                let mut byte = [0u8; 1];
                let _ = reader.read(&mut byte);
                counts.messages_abandoned.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            let sid = format!("SMdrill{n:025}");
            let json = format!(
                "{{\"sid\":\"{sid}\",\"status\":\"queued\",\"account_sid\":\"{ACCOUNT_SID}\"}}"
            );
            write!(
                writer,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )?;
            writer.flush()?;
            counts.messages_sent.fetch_add(1, Ordering::SeqCst);
            let form = shared::form::Form::parse(&body).unwrap_or_default();
            let field = |name: &str| form.get(name).unwrap_or_default().to_owned();
            if let Ok(mut messages) = counts.messages.lock() {
                messages.push((field("To"), field("Body")));
            }
        } else {
            counts.other.fetch_add(1, Ordering::SeqCst);
            let json = "{\"sid\":\"CAdrill\",\"status\":\"completed\"}";
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )?;
            writer.flush()?;
        }
    }
}

/// Sends the request to the call engine as it came (but `Connection: close`) and returns the
/// engine's whole answer.
fn to_call_engine(
    engine: &str,
    request_line: &str,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(engine)?;
    upstream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = request_line.trim_end().to_owned() + "\r\n";
    for header in headers
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
    {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;
    upstream.write_all(body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(answer)
}

/// Twilio's answer for a call it does not have in progress (no call engine listening).
fn no_such_call() -> Vec<u8> {
    let json = "{\"code\":20404,\"message\":\"The requested resource was not found\",\
                \"more_info\":\"https://www.twilio.com/docs/errors/20404\",\"status\":404}";
    format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}
