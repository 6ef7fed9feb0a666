//! What a hostile client sends: unsigned webhooks and handshakes in bulk, slow-loris
//! connections, oversized bodies. Raw HTTP/1.1 over TCP, from a loopback address of our choice
//! (127.0.0.2, …) so the edge and node see the attacker as a different source than the
//! simulated Twilio on 127.0.0.1, as they would in production.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use socket2::{Domain, Socket, Type};

/// Connects to `to` from `from` (port chosen by the kernel).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// Sends `request` and returns the status code of the answer (`None`: no answer).
fn exchange(from: IpAddr, to: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut stream = connect_from(from, to).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Answers by status code, and how long the whole flood took.
#[derive(Debug, Default, Clone)]
pub struct FloodResult {
    /// Status → how many.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    pub unanswered: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl FloodResult {
    /// How many got `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Requests sent.
    pub fn total(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.unanswered
    }

    /// `403×N 429×M` for the table.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        if self.unanswered > 0 {
            parts.push(format!("no answer×{}", self.unanswered));
        }
        parts.join(" ")
    }
}

/// `requests` copies of `request` from `from`, over `threads` parallel connections (one request
/// per connection, as a botnet would).
pub fn flood(
    from: IpAddr,
    to: SocketAddr,
    request: &[u8],
    requests: u64,
    threads: u64,
) -> FloodResult {
    let start = Instant::now();
    let per_thread = requests.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let request = request.to_vec();
            std::thread::spawn(move || {
                let mut result = FloodResult::default();
                for _ in 0..per_thread {
                    match exchange(from, to, &request) {
                        Some(status) => *result.statuses.entry(status).or_default() += 1,
                        None => result.unanswered += 1,
                    }
                }
                result
            })
        })
        .collect();
    let mut total = FloodResult::default();
    for handle in handles {
        if let Ok(part) = handle.join() {
            for (status, n) in part.statuses {
                *total.statuses.entry(status).or_default() += n;
            }
            total.unanswered += part.unanswered;
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// An unsigned (badly signed) Twilio voice webhook.
pub fn unsigned_webhook(host: SocketAddr, to: &str) -> Vec<u8> {
    let body = format!(
        "CallSid=CAflood0000000000000000000000000&AccountSid=ACflood&From=%2B15005550006&To={}&CallStatus=ringing&Direction=inbound",
        to.replace('+', "%2B")
    );
    format!(
        "POST /telephony/inbound HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         X-Twilio-Signature: bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An unsigned WebSocket upgrade to a node's `/media`.
pub fn unsigned_handshake(host: SocketAddr) -> Vec<u8> {
    format!(
        "GET /media HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Opens `n` connections that send half a request head and then nothing; returns them (the
/// caller watches when the server closes them).
pub fn slow_loris(from: IpAddr, to: SocketAddr, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    (0..n)
        .map(|_| {
            let mut stream = connect_from(from, to).context("slow-loris connect")?;
            stream.write_all(b"POST /telephony/inbound HTTP/1.1\r\nHost: x\r\nX-Slow: ")?;
            Ok(stream)
        })
        .collect()
}

/// How many of `streams` the server has closed (read returns EOF or an error) within `limit`.
pub fn closed_within(streams: &mut [TcpStream], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut closed = vec![false; streams.len()];
    while Instant::now() < deadline && closed.iter().any(|c| !c) {
        for (stream, done) in streams.iter_mut().zip(closed.iter_mut()) {
            if *done {
                continue;
            }
            let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
            let mut buf = [0u8; 512];
            match stream.read(&mut buf) {
                Ok(0) => *done = true,
                // A 408 answer counts as closing once the server hangs up after it.
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => *done = true,
            }
        }
    }
    closed.iter().filter(|c| **c).count()
}

/// Sends a POST declaring `bytes` of body to `path` and returns the status and the answer's
/// body text.
pub fn oversized(
    to: SocketAddr,
    path: &str,
    bytes: usize,
    signed_header: bool,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let signature = if signed_header {
        "X-Twilio-Signature: AAAA\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/x-www-form-urlencoded\r\n{signature}Content-Length: {bytes}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // The first bytes of the body only: the server must refuse by the declared length, before
    // reading it (and sending more would race its close with our writes).
    let _ = stream.write_all(&vec![b'a'; bytes.min(4096)]);
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.trim().to_owned()))
}
