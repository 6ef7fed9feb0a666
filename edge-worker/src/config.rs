//! The edge's configuration, read the same way from process environment variables (native) and
//! from Worker bindings (`[vars]` and secrets in wrangler.toml), through one lookup function.

use shared::routing::{NodeInfo, NumberRoute};

/// How long a pulled routing snapshot counts as fresh. Short, because node load and draining
/// flags change by the second; a stale copy is still served while a new one is fetched.
pub const DEFAULT_SNAPSHOT_TTL_MS: u64 = 15_000;

/// Edge configuration. Secrets are kept out of `Debug` output.
#[derive(Clone)]
pub struct Config {
    /// Twilio's primary auth token: the HMAC key of `X-Twilio-Signature`.
    pub twilio_auth_token: String,
    /// The key edge and nodes share: stream tokens, forwarded events, snapshot pulls.
    pub edge_shared_secret: Vec<u8>,
    /// The public URL Twilio calls (no trailing slash). Signatures are checked over it plus the
    /// path and raw query, never over the URL the runtime saw (a proxy, `wrangler dev` or
    /// workerd on loopback all see another one). Callback URLs in TwiML are built from it.
    pub public_base_url: String,
    /// A node base URL serving `/internal/routing-snapshot` (no trailing slash).
    pub control_url: String,
    /// Nodes to route to while no snapshot has ever been pulled (a cold isolate with the
    /// control plane down).
    pub fallback_nodes: Vec<NodeInfo>,
    /// Numbers to answer while no snapshot has ever been pulled; empty by default, in which
    /// case every call gets the not-in-service answer until a snapshot arrives. For local dev.
    pub fallback_numbers: Vec<NumberRoute>,
    /// See [`DEFAULT_SNAPSHOT_TTL_MS`].
    pub snapshot_ttl_ms: u64,
    /// A node whose last heartbeat is older than this (relative to the snapshot's own
    /// `generated_at`) is presumed dead.
    pub node_stale_after_s: u64,
    /// Lifetime of a stream token: Twilio opens the socket within seconds of the TwiML.
    pub stream_token_ttl_s: u64,
    /// Timeout of one request to a node (snapshot pull, event forward). Twilio gives the whole
    /// webhook 15 s; the edge makes up to [`Config::forward_attempts`] tries within that.
    pub node_timeout_ms: u64,
    /// How many tries one forwarded event gets (over the live nodes in turn, the same node again
    /// when there are fewer) before the edge answers 503.
    pub forward_attempts: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("twilio_auth_token", &"<redacted>")
            .field("edge_shared_secret", &"<redacted>")
            .field("public_base_url", &self.public_base_url)
            .field("control_url", &self.control_url)
            .field("fallback_nodes", &self.fallback_nodes.len())
            .field("fallback_numbers", &self.fallback_numbers.len())
            .field("snapshot_ttl_ms", &self.snapshot_ttl_ms)
            .finish_non_exhaustive()
    }
}

/// Why the configuration is unusable. Each names the variable so the operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set (required; see README, \"Edge worker\")")]
    Missing(&'static str),
    /// A variable is set but cannot be used.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A node in `FALLBACK_NODES`. Like [`NodeInfo`], but hand-written JSON may leave out the
/// runtime fields: no heartbeat means "never stale", no capacity means "plenty".
#[derive(serde::Deserialize)]
struct FallbackNode {
    id: String,
    region: String,
    lat: f64,
    lon: f64,
    public_url: String,
    #[serde(default)]
    active_calls: u32,
    #[serde(default = "FallbackNode::default_capacity")]
    capacity: u32,
    #[serde(default)]
    draining: bool,
    #[serde(default = "FallbackNode::never_stale")]
    last_heartbeat: u64,
}

impl FallbackNode {
    fn default_capacity() -> u32 {
        1_000
    }

    /// `rank_nodes` measures staleness as `now - last_heartbeat` (saturating), so the far
    /// future is always fresh.
    fn never_stale() -> u64 {
        u64::MAX
    }

    fn into_node(self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            region: self.region,
            lat: self.lat,
            lon: self.lon,
            public_url: self.public_url.trim_end_matches('/').to_owned(),
            active_calls: self.active_calls,
            capacity: self.capacity,
            draining: self.draining,
            last_heartbeat: self.last_heartbeat,
        }
    }
}

impl Config {
    /// Reads the configuration through `get` (an environment or Worker binding lookup).
    ///
    /// Required: `TWILIO_AUTH_TOKEN`, `EDGE_SHARED_SECRET`, `PUBLIC_WEBHOOK_BASE_URL`,
    /// `CONTROL_URL`. Optional: `FALLBACK_NODES`, `FALLBACK_NUMBERS` (JSON lists),
    /// `SNAPSHOT_TTL_MS`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |var: &'static str| {
            get(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(var))
        };
        let twilio_auth_token = required("TWILIO_AUTH_TOKEN")?;
        let edge_shared_secret = required("EDGE_SHARED_SECRET")?.into_bytes();
        let public_base_url = base_url(
            "PUBLIC_WEBHOOK_BASE_URL",
            required("PUBLIC_WEBHOOK_BASE_URL")?,
        )?;
        let control_url = base_url("CONTROL_URL", required("CONTROL_URL")?)?;
        let optional = |var: &str| get(var).filter(|v| !v.trim().is_empty());

        let fallback_nodes = match optional("FALLBACK_NODES") {
            None => Vec::new(),
            Some(json) => serde_json::from_str::<Vec<FallbackNode>>(&json)
                .map_err(|e| ConfigError::Invalid {
                    var: "FALLBACK_NODES",
                    reason: format!("expected a JSON list of nodes ({e})"),
                })?
                .into_iter()
                .map(FallbackNode::into_node)
                .collect(),
        };
        let fallback_numbers = match optional("FALLBACK_NUMBERS") {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
                var: "FALLBACK_NUMBERS",
                reason: format!("expected a JSON list of number routes ({e})"),
            })?,
        };
        let snapshot_ttl_ms = match optional("SNAPSHOT_TTL_MS") {
            None => DEFAULT_SNAPSHOT_TTL_MS,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "SNAPSHOT_TTL_MS",
                reason: format!("{v:?} is not a whole number of milliseconds"),
            })?,
        };
        Ok(Config {
            twilio_auth_token,
            edge_shared_secret,
            public_base_url,
            control_url,
            fallback_nodes,
            fallback_numbers,
            snapshot_ttl_ms,
            node_stale_after_s: 60,
            stream_token_ttl_s: 120,
            node_timeout_ms: 3_000,
            forward_attempts: 3,
        })
    }

    /// The public URL of one of our routes, as Twilio will request (and sign) it.
    pub fn public_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_base_url)
    }
}

/// Checks an `http(s)://host[:port][/prefix]` base URL and drops a trailing slash, so
/// `base + "/telephony/inbound"` is exactly the URL configured at Twilio.
fn base_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::Invalid {
            var,
            reason: format!("{value:?} must start with http:// or https://"),
        })?;
    if rest.is_empty() || rest.starts_with('/') || value.contains(['?', '#', ' ']) {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{value:?} must be a base URL without query or fragment"),
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    const BASE: &[(&str, &str)] = &[
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("EDGE_SHARED_SECRET", "secret"),
        ("PUBLIC_WEBHOOK_BASE_URL", "https://edge.example.com/"),
        ("CONTROL_URL", "http://127.0.0.1:8080"),
    ];

    #[test]
    fn reads_required_and_defaults() {
        let config = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(config.public_base_url, "https://edge.example.com");
        assert_eq!(
            config.public_url("/telephony/inbound"),
            "https://edge.example.com/telephony/inbound"
        );
        assert_eq!(config.snapshot_ttl_ms, DEFAULT_SNAPSHOT_TTL_MS);
        assert!(config.fallback_nodes.is_empty());
        assert!(!format!("{config:?}").contains("tok\""));
    }

    #[test]
    fn names_each_missing_variable() {
        for skip in [
            "TWILIO_AUTH_TOKEN",
            "EDGE_SHARED_SECRET",
            "PUBLIC_WEBHOOK_BASE_URL",
            "CONTROL_URL",
        ] {
            let vars: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != skip).collect();
            let err = Config::from_lookup(env(&vars)).unwrap_err();
            assert_eq!(err, ConfigError::Missing(skip));
            assert!(err.to_string().contains(skip));
        }
    }

    #[test]
    fn rejects_bad_urls_and_json_naming_the_variable() {
        let mut vars = BASE.to_vec();
        vars[2] = ("PUBLIC_WEBHOOK_BASE_URL", "edge.example.com");
        assert!(matches!(
            Config::from_lookup(env(&vars)),
            Err(ConfigError::Invalid {
                var: "PUBLIC_WEBHOOK_BASE_URL",
                ..
            })
        ));
        let mut vars = BASE.to_vec();
        vars.push(("FALLBACK_NODES", "{not json"));
        assert!(matches!(
            Config::from_lookup(env(&vars)),
            Err(ConfigError::Invalid {
                var: "FALLBACK_NODES",
                ..
            })
        ));
    }

    #[test]
    fn fallback_nodes_default_runtime_fields() {
        let mut vars = BASE.to_vec();
        vars.push((
            "FALLBACK_NODES",
            r#"[{"id":"iad-1","region":"iad","lat":38.9,"lon":-77.4,"public_url":"https://voice.example.com/"}]"#,
        ));
        let config = Config::from_lookup(env(&vars)).unwrap();
        let node = &config.fallback_nodes[0];
        assert_eq!(node.public_url, "https://voice.example.com");
        assert!(node.has_room());
        assert!(node.is_available(1_800_000_000, 60));
    }
}
