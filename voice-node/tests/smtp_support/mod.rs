//! A real local SMTP server for the node's e-mail tests: aiosmtpd from PyPI (in a venv under
//! the user's cache, installed on first use), storing what it receives in a Maildir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// The venv's python with aiosmtpd, installed if missing.
fn aiosmtpd_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("a cache dir");
    let venv = cache.join("callgate").join("aiosmtpd-venv");
    let python = venv.join("bin").join("python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin").join("pip"))
                .args(["install", "-q", "aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && ready(&python),
            "could not install aiosmtpd into {}",
            venv.display()
        );
    }
    python
}

/// Undoes quoted-printable (soft line breaks, `=XX` bytes); headers pass through unchanged.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// aiosmtpd on a free port, storing what it receives in a Maildir.
pub struct SmtpServer {
    child: Child,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let python = aiosmtpd_python();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = std::env::temp_dir().join(format!("callgate-maildir-{}", Uuid::new_v4()));
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        // Built first so that Drop stops the child on every path, the panic below included.
        let server = SmtpServer {
            child,
            port,
            maildir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on {port}");
    }

    /// The received messages (Maildir `new` and `cur`), quoted-printable decoded.
    pub fn messages(&self) -> Vec<String> {
        ["new", "cur"]
            .into_iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .map(|e| quoted_printable(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
