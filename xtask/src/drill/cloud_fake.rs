//! A cloud LLM having a bad day: an OpenAI-compatible endpoint that answers every request with a
//! 500, or never answers at all (the connection is held until the client gives up). Counts the
//! requests, so the drill knows the node really tried the provider before falling back.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;

/// How the provider fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// `500 Internal Server Error` with an OpenAI-style error body.
    Errors,
    /// Reads the request and never answers.
    Hangs,
}

/// The running fake.
#[derive(Debug)]
pub struct CloudFake {
    /// `http://127.0.0.1:PORT/v1`, the node's `CALLGATE_LLM_BASE_URL`.
    pub base: String,
    /// Requests received.
    requests: Arc<AtomicU64>,
}

impl CloudFake {
    /// Serves on a free port, failing as `outage` says.
    pub fn start(outage: Outage) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the cloud fake")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    let _ = serve(stream, &count, outage);
                });
            }
        });
        Ok(CloudFake {
            base: format!("http://{addr}/v1"),
            requests,
        })
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(stream: std::net::TcpStream, count: &AtomicU64, outage: Outage) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        count.fetch_add(1, Ordering::SeqCst);
        match outage {
            Outage::Hangs => {
                writer.set_read_timeout(Some(Duration::from_secs(300)))?;
                let mut byte = [0u8; 1];
                let _ = reader.read(&mut byte);
                return Ok(());
            }
            Outage::Errors => {
                let json = r#"{"error":{"message":"The server had an error while processing your request (drill)","type":"server_error"}}"#;
                write!(
                    writer,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                    json.len()
                )?;
                writer.flush()?;
            }
        }
    }
}
