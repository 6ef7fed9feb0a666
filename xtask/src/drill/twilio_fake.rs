//! A local stand-in for Twilio's REST API that records what reaches it, speaking the real wire
//! protocol (form POST with Basic auth → 201 and Twilio's JSON), as in
//! `voice-node/tests/twilio_fake/`, but on std threads since xtask has no async runtime.
//!
//! For the SIGKILL drill it can *hold* the first messages: the request is read and never
//! answered until the client goes away, so the node is killed mid-send with its job leased.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the Twilio fake")?;
        let addr: SocketAddr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &counts, hold);
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
}

fn serve(stream: TcpStream, counts: &Counts, hold: u64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
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
