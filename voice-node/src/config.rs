//! The node's configuration, read once from the environment (names and defaults from
//! `contract.md`), and the masking of phone numbers for logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why the environment does not make a usable configuration. Each message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{name} is not set: {why}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What it is for, so the operator knows what to put there.
        why: &'static str,
    },
    /// A variable is set to something that does not parse.
    #[error("{name}={value:?} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value (never a secret: secrets are not parsed).
        value: String,
        /// What was expected.
        why: &'static str,
    },
}

/// Everything `voice-node serve` needs to know, resolved from the environment.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`; `None` starts a private cluster under [`Config::data_dir`].
    pub database_url: Option<String>,
    /// `CALLGATE_DATA_DIR`: local state (the private Postgres cluster).
    pub data_dir: PathBuf,
    /// `LISTEN_ADDR`: where the HTTP + WebSocket server binds.
    pub listen_addr: SocketAddr,
    /// `PUBLIC_BASE_URL` without a trailing slash: what Twilio and the edge use to reach this node;
    /// the handshake signature is checked over its `wss://` form.
    pub public_base_url: String,
    /// `NODE_ID`: this node's name in the routing snapshot, stream tokens and `fly-replay`.
    pub node_id: String,
    /// `NODE_REGION`.
    pub region: String,
    /// `NODE_LAT`/`NODE_LON`, or the region's coordinates when it is a known Fly region.
    pub position: Option<(f64, f64)>,
    /// `NODE_CAPACITY`: calls this node takes before the edge spills over to others.
    pub capacity: u32,
    /// `TWILIO_AUTH_TOKEN`: checks the Media Streams handshake signature.
    pub twilio_auth_token: String,
    /// `TWILIO_ACCOUNT_SID`: with the auth token, lets the node hang calls up over REST.
    pub twilio_account_sid: Option<String>,
    /// `TWILIO_API_BASE`: Twilio's REST base (tests point it at a local server).
    pub twilio_api_base: String,
    /// `EDGE_SHARED_SECRET`: stream tokens and signed edge ↔ node requests.
    pub edge_shared_secret: Vec<u8>,
    /// `DRAIN_GRACE_SECS`: how long live calls may run after SIGTERM.
    pub drain_grace: Duration,
    /// `HEARTBEAT_SECS`: how often the node row is refreshed.
    pub heartbeat_interval: Duration,
    /// `TWILIO_API_KEY_SID`: signs the browser dialer's access tokens (with the secret below).
    pub twilio_api_key_sid: Option<String>,
    /// `TWILIO_API_KEY_SECRET`.
    pub twilio_api_key_secret: Option<String>,
    /// `TWIML_APP_SID`: the TwiML App whose voice URL is the edge's `/telephony/outbound`.
    pub twiml_app_sid: Option<String>,
    /// `CALLGATE_SEAL_KEY`: 64 hex digits sealing tenants' provider API keys (default: derived
    /// from `EDGE_SHARED_SECRET`).
    pub seal_key_hex: Option<String>,
    /// `DASHBOARD_DIR`: the built dashboard served at `/` (default: the source tree's
    /// `dashboard/dist`).
    pub dashboard_dir: PathBuf,
    /// `JOB_WORKERS`: job-queue worker tasks on this node (default 2; 0 runs no jobs here).
    pub job_workers: usize,
    /// `SMTP_URL` (`smtp://user:pass@host:587?tls=required`, `smtps://…`): summary and lead e-mails;
    /// unset → they are recorded as undeliverable.
    pub smtp_url: Option<String>,
    /// `SMTP_FROM`: the sender address (default `callgate <callgate@localhost>`).
    pub smtp_from: String,
    /// `PUBLIC_WEBHOOK_BASE_URL`: the edge's public URL (the same value the edge has), for the
    /// `<Dial action>` of a transfer, so a missed transfer reaches `/telephony/dial-result`.
    pub public_webhook_base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets are never printed, not even in debug output.
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("listen_addr", &self.listen_addr)
            .field("public_base_url", &self.public_base_url)
            .field("node_id", &self.node_id)
            .field("region", &self.region)
            .field("position", &self.position)
            .field("capacity", &self.capacity)
            .field("drain_grace", &self.drain_grace)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("twiml_app_sid", &self.twiml_app_sid)
            .field("dashboard_dir", &self.dashboard_dir)
            .field("job_workers", &self.job_workers)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<set>"))
            .field("smtp_from", &self.smtp_from)
            .field("public_webhook_base_url", &self.public_webhook_base_url)
            .finish_non_exhaustive()
    }
}

/// Default `DRAIN_GRACE_SECS`: fly.toml's `kill_timeout` (Fly's maximum, 300 s).
pub const DEFAULT_DRAIN_GRACE_SECS: u64 = 300;
/// Default `HEARTBEAT_SECS`.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 5;
/// Default `NODE_CAPACITY`: the 2-core target of issue 4's benchmark.
pub const DEFAULT_CAPACITY: u32 = 2000;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let listen_addr_text = get("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen_addr: SocketAddr =
            listen_addr_text.parse().map_err(|_| ConfigError::Invalid {
                name: "LISTEN_ADDR",
                value: listen_addr_text.clone(),
                why: "expected HOST:PORT, e.g. 0.0.0.0:8080",
            })?;
        let public_base_url = get("PUBLIC_BASE_URL")
            .unwrap_or_else(|| format!("http://{listen_addr}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_base_url.starts_with("http://") || public_base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_BASE_URL",
                value: public_base_url,
                why: "expected an http:// or https:// URL",
            });
        }
        let edge_shared_secret = get("EDGE_SHARED_SECRET")
            .ok_or(ConfigError::Missing {
                name: "EDGE_SHARED_SECRET",
                why: "the HMAC key shared with the edge (stream tokens, forwarded events, snapshot \
                      pulls); set the same value on the edge worker",
            })?
            .into_bytes();
        let region = get("NODE_REGION").unwrap_or_else(|| "local".into());
        let lat = parse_opt::<f64>(&get, "NODE_LAT", "expected degrees, e.g. 39.0")?;
        let lon = parse_opt::<f64>(&get, "NODE_LON", "expected degrees, e.g. -77.5")?;
        let position = match (lat, lon) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some((lat, lon))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "NODE_LAT",
                    value: format!("{lat:?},{lon:?}"),
                    why: "latitude must be within ±90 and NODE_LON within ±180",
                });
            }
            (None, None) => shared::routing::region_point(&region).map(|p| (p.lat, p.lon)),
            _ => {
                return Err(ConfigError::Invalid {
                    name: "NODE_LAT",
                    value: format!("{lat:?},{lon:?}"),
                    why: "set both NODE_LAT and NODE_LON, or neither",
                });
            }
        };
        let capacity = parse_opt::<u32>(&get, "NODE_CAPACITY", "expected a positive integer")?
            .unwrap_or(DEFAULT_CAPACITY);
        if capacity == 0 {
            return Err(ConfigError::Invalid {
                name: "NODE_CAPACITY",
                value: "0".into(),
                why: "expected a positive integer",
            });
        }
        let public_webhook_base_url =
            get("PUBLIC_WEBHOOK_BASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_webhook_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_WEBHOOK_BASE_URL",
                value: url.clone(),
                why: "expected the edge's public http:// or https:// URL",
            });
        }
        let drain_grace = parse_opt::<u64>(&get, "DRAIN_GRACE_SECS", "expected seconds")?
            .unwrap_or(DEFAULT_DRAIN_GRACE_SECS);
        let heartbeat = parse_opt::<u64>(&get, "HEARTBEAT_SECS", "expected seconds")?
            .unwrap_or(DEFAULT_HEARTBEAT_SECS)
            .max(1);
        Ok(Config {
            database_url: get("DATABASE_URL"),
            data_dir: PathBuf::from(
                get("CALLGATE_DATA_DIR").unwrap_or_else(|| "./.callgate".into()),
            ),
            listen_addr,
            public_base_url,
            node_id: get("NODE_ID").unwrap_or_else(default_node_id),
            region,
            position,
            capacity,
            twilio_auth_token: get("TWILIO_AUTH_TOKEN").unwrap_or_default(),
            twilio_account_sid: get("TWILIO_ACCOUNT_SID"),
            twilio_api_base: get("TWILIO_API_BASE")
                .unwrap_or_else(|| "https://api.twilio.com".into())
                .trim_end_matches('/')
                .to_owned(),
            edge_shared_secret,
            drain_grace: Duration::from_secs(drain_grace),
            heartbeat_interval: Duration::from_secs(heartbeat),
            twilio_api_key_sid: get("TWILIO_API_KEY_SID"),
            twilio_api_key_secret: get("TWILIO_API_KEY_SECRET"),
            twiml_app_sid: get("TWIML_APP_SID"),
            seal_key_hex: get("CALLGATE_SEAL_KEY"),
            dashboard_dir: get("DASHBOARD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(crate::api::dashboard::default_dir),
            job_workers: parse_opt::<usize>(&get, "JOB_WORKERS", "expected a count")?.unwrap_or(2),
            smtp_url: get("SMTP_URL"),
            smtp_from: get("SMTP_FROM").unwrap_or_else(|| "callgate <callgate@localhost>".into()),
            public_webhook_base_url,
        })
    }

    /// The URL Twilio signed for a WebSocket path: `PUBLIC_BASE_URL` with `https`→`wss` (and
    /// `http`→`ws` for local nodes) followed by `path` (twilio.md §1.5).
    pub fn signed_ws_url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            shared::signature::websocket_base(&self.public_base_url)
        )
    }
}

fn parse_opt<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    why: &'static str,
) -> Result<Option<T>, ConfigError> {
    get(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
                name,
                value: v.clone(),
                why,
            })
        })
        .transpose()
}

/// The machine's hostname (Fly sets it to the machine id), else `voice-node`.
fn default_node_id() -> String {
    std::env::var("FLY_MACHINE_ID")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "voice-node".into())
}

/// A phone number for logs: country code and area digits, then `***`, then the last four
/// (`+14155550100` → `+1415***0100`). Short or non-phone values keep only their first 4 chars.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() >= 10 && number.starts_with('+') {
        let head: String = chars[..5].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}***{tail}")
    } else {
        let head: String = chars.iter().take(4).collect();
        format!("{head}***")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn missing_edge_secret_is_named() {
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.contains("EDGE_SHARED_SECRET"), "{err}");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&[("EDGE_SHARED_SECRET", "k")]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_base_url, "http://127.0.0.1:8080");
        assert_eq!(c.region, "local");
        assert_eq!(c.drain_grace, Duration::from_secs(300));
        assert_eq!(c.capacity, DEFAULT_CAPACITY);
        assert!(c.database_url.is_none());
        assert_eq!(c.signed_ws_url("/media"), "ws://127.0.0.1:8080/media");
    }

    #[test]
    fn signed_url_uses_wss_for_https_and_known_regions_get_a_position() {
        let c = config(&[
            ("EDGE_SHARED_SECRET", "k"),
            ("PUBLIC_BASE_URL", "https://voice.example.com/"),
            ("NODE_REGION", "iad"),
        ])
        .unwrap();
        assert_eq!(
            c.signed_ws_url("/media/n1"),
            "wss://voice.example.com/media/n1"
        );
        assert!(c.position.is_some());
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("LISTEN_ADDR", "nope"),
            ("NODE_CAPACITY", "-1"),
            ("NODE_LAT", "91"),
            ("DRAIN_GRACE_SECS", "soon"),
            ("PUBLIC_WEBHOOK_BASE_URL", "edge.example.com"),
        ] {
            let mut pairs = vec![("EDGE_SHARED_SECRET", "k"), (name, value)];
            if name == "NODE_LAT" {
                pairs.push(("NODE_LON", "0"));
            }
            let err = config(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(mask_phone("+14155550100"), "+1415***0100");
        assert_eq!(mask_phone("client:alice"), "clie***");
        assert_eq!(mask_phone("+1"), "+1***");
    }
}
