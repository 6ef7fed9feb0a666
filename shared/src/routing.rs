//! The routing snapshot and the choice of voice node for a call.
//!
//! The edge never talks to Postgres. Voice nodes publish a [`RoutingSnapshot`] (numbers → tenant
//! and mode, caller block/allow lists, nodes → place, load, health) that the edge pulls over an
//! HMAC-signed request (see [`crate::stream_token::signed_body`]), caches, and keeps serving when
//! nodes are unreachable. From it the edge answers two questions per call, both pure functions
//! here so they are tested natively and run unchanged in the Worker:
//!
//! - whose number is this, and may this caller through? ([`RoutingSnapshot::lookup_number`],
//!   [`RoutingSnapshot::caller_policy`]);
//! - which node takes the media? ([`rank_nodes`], [`nearest_node`]), measured from where Twilio's
//!   media server runs: the `X-Home-Region` header ([`home_region_point`]) or the request's
//!   `cf` coordinates.
//!
//! The snapshot is JSON with `snake_case` keys. Optional fields default when absent, and unknown
//! fields are ignored, so nodes and edges of adjacent versions can read each other's snapshots.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::domain::CallMode;

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// Not JSON, or not shaped like a snapshot. Carries serde's description with the position.
    #[error("malformed routing snapshot: {0}")]
    MalformedSnapshot(String),
}

/// Everything the edge needs to route calls without a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingSnapshot {
    /// When the publishing node built it (unix seconds): lets the edge prefer the newest copy and
    /// report how stale its cache is.
    pub generated_at: u64,
    /// Every number callgate answers, with what to do with its calls.
    #[serde(default)]
    pub numbers: Vec<NumberRoute>,
    /// Caller block/allow lists, per tenant (shared by all of a tenant's numbers).
    #[serde(default)]
    pub tenants: Vec<TenantPolicy>,
    /// Every voice node that has heartbeated recently, healthy or not (the edge filters).
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
}

/// One Twilio number and how its calls are handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRoute {
    /// The number in E.164 (`+14155550100`), as Twilio sends it in `To`.
    pub e164: String,
    /// The owning tenant (UUID text): carried into the stream token and every forwarded event.
    pub tenant_id: String,
    /// Screening, receptionist or forward: decides the TwiML the edge returns.
    pub mode: CallMode,
    /// Where forward mode and transfers ring (E.164); `None` when the tenant set no phone.
    #[serde(default)]
    pub owner_phone: Option<String>,
    /// Fly region this tenant prefers for media (data residency or latency); `None` lets the
    /// edge choose by distance.
    #[serde(default)]
    pub region: Option<String>,
    /// `false` turns the AI off for this number: the edge forwards or takes voicemail only.
    #[serde(default = "default_true")]
    pub ai_enabled: bool,
    /// Forward mode: text the caller back when the owner does not answer.
    #[serde(default)]
    pub text_back: bool,
    /// Offer voicemail when nobody (human or AI) can take the call.
    #[serde(default)]
    pub voicemail: bool,
}

fn default_true() -> bool {
    true
}

/// Caller lists for one tenant, applied at the edge so a blocked caller is rejected before any
/// node or AI time is spent on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The tenant these lists belong to.
    pub tenant_id: String,
    /// Callers answered with `<Reject/>` at the edge.
    #[serde(default)]
    pub blocked_callers: Vec<String>,
    /// Callers who skip screening and go straight to the owner.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
}

/// What the tenant's lists say about a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerPolicy {
    /// On the blocklist: reject at the edge. Wins over the allowlist if a number is on both,
    /// because a block is the more deliberate act.
    Blocked,
    /// On the allowlist: skip screening.
    Allowed,
    /// On neither list (or the caller ID is withheld): handle by the number's mode.
    Unlisted,
}

/// A voice node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Fly machine ID (or hostname locally): goes in the stream URL path and `fly-replay`.
    pub id: String,
    /// Fly region code (`iad`, `lhr`, …), for logs and region preference.
    pub region: String,
    /// Latitude in degrees, for distance to the call's media location.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Base URL Twilio can reach (`https://voice.example.com`); the stream URL is built from it.
    pub public_url: String,
    /// Calls in progress at the last heartbeat.
    #[serde(default)]
    pub active_calls: u32,
    /// Calls the node accepts before it counts as full; 0 means it takes none.
    #[serde(default)]
    pub capacity: u32,
    /// Shutting down: finishing its calls but taking no new ones.
    #[serde(default)]
    pub draining: bool,
    /// Unix seconds of the last heartbeat; a node silent for too long is presumed dead.
    pub last_heartbeat: u64,
}

impl RoutingSnapshot {
    /// Parses a snapshot as published by a node.
    pub fn from_json(text: &str) -> Result<Self, RoutingError> {
        serde_json::from_str(text).map_err(|e| RoutingError::MalformedSnapshot(e.to_string()))
    }

    /// Serializes for publishing.
    pub fn to_json(&self) -> String {
        // serde_json cannot fail on these types (it writes non-finite floats as `null`); the
        // fallback only keeps the no-panic promise without an `unwrap`.
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"generated_at":0}"#))
    }

    /// The route for a called number, accepting the obvious spellings of it (see
    /// [`normalize_e164`]). `None` for unknown numbers and for input that is not a phone number.
    pub fn lookup_number(&self, number: &str) -> Option<&NumberRoute> {
        lookup_number(self, number)
    }

    /// The caller lists of a tenant, if it has any.
    pub fn tenant_policy(&self, tenant_id: &str) -> Option<&TenantPolicy> {
        self.tenants.iter().find(|t| t.tenant_id == tenant_id)
    }

    /// Whether `caller` (Twilio's `From`) is blocked, allowed or neither for `tenant_id`.
    /// Withheld or non-phone callers (`anonymous`, `client:alice`) are [`CallerPolicy::Unlisted`].
    pub fn caller_policy(&self, tenant_id: &str, caller: &str) -> CallerPolicy {
        let (Some(policy), Some(caller)) = (self.tenant_policy(tenant_id), E164::parse(caller))
        else {
            return CallerPolicy::Unlisted;
        };
        let listed = |list: &[String]| list.iter().any(|n| E164::parse(n) == Some(caller));
        if listed(&policy.blocked_callers) {
            CallerPolicy::Blocked
        } else if listed(&policy.allowed_callers) {
            CallerPolicy::Allowed
        } else {
            CallerPolicy::Unlisted
        }
    }
}

/// Finds the route for a called number; see [`RoutingSnapshot::lookup_number`].
pub fn lookup_number<'s>(snapshot: &'s RoutingSnapshot, number: &str) -> Option<&'s NumberRoute> {
    let wanted = E164::parse(number)?;
    // Snapshot entries are normalized too, so a hand-edited `[vars]` fallback with
    // "+1 415-555-0100" still matches. Normalizing is allocation-free, so this stays cheap.
    snapshot
        .numbers
        .iter()
        .find(|route| E164::parse(&route.e164) == Some(wanted))
}

/// Normalizes the obvious ways of writing an international number to E.164 (`+` and 7–15
/// digits): spaces, dashes, dots, parentheses and a `tel:` prefix are dropped; a leading `00`
/// becomes `+`; bare digits are read as already including the country code.
///
/// National formats (`(415) 555-0100`, `020 7946 0000`) need a country to guess and are
/// refused, as are Twilio's non-phone callers (`client:…`, `sip:…`, `anonymous`).
///
/// ```
/// use shared::routing::normalize_e164;
/// assert_eq!(normalize_e164("tel:+1 (415) 555-0100").as_deref(), Some("+14155550100"));
/// assert_eq!(normalize_e164("0044 20 7946 0000").as_deref(), Some("+442079460000"));
/// assert_eq!(normalize_e164("client:alice"), None);
/// ```
pub fn normalize_e164(number: &str) -> Option<String> {
    E164::parse(number).map(|n| n.as_str().to_owned())
}

/// Whether a transfer target is a SIP URI (`sip:` or `sips:`), dialed with `<Sip>`, rather
/// than a phone number, dialed with `<Number>`. The one rule for departments and owners alike.
///
/// ```
/// use shared::routing::is_sip_uri;
/// assert!(is_sip_uri("sips:desk@pbx.example"));
/// assert!(!is_sip_uri("+14155550100"));
/// ```
pub fn is_sip_uri(target: &str) -> bool {
    target.starts_with("sip:") || target.starts_with("sips:")
}

/// A normalized number held inline, so lookups compare numbers without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct E164 {
    /// `+` then up to 15 digits.
    bytes: [u8; 16],
    len: usize,
}

impl E164 {
    const MIN_DIGITS: usize = 7;
    const MAX_DIGITS: usize = 15;

    fn parse(input: &str) -> Option<E164> {
        let s = input.trim();
        let s = s.strip_prefix("tel:").unwrap_or(s);
        let (international, rest) = match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        // Room for a `00` prefix; one digit more than that is too long.
        let mut scratch = [0u8; Self::MAX_DIGITS + 2];
        let mut n = 0;
        for b in rest.bytes() {
            match b {
                b'0'..=b'9' => {
                    *scratch.get_mut(n)? = b;
                    n += 1;
                }
                b' ' | b'-' | b'.' | b'(' | b')' => {}
                _ => return None,
            }
        }
        let mut digits = &scratch[..n];
        if !international && let Some(after) = digits.strip_prefix(b"00") {
            digits = after;
        }
        // Country codes never start with 0, so a leading 0 is a national format.
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) || digits[0] == b'0' {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[0] = b'+';
        bytes[1..=digits.len()].copy_from_slice(digits);
        Some(E164 {
            bytes,
            len: digits.len() + 1,
        })
    }

    fn as_str(&self) -> &str {
        // Only ASCII `+` and digits were stored.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

// ---------------------------------------------------------------------------------------------
// Places
// ---------------------------------------------------------------------------------------------

/// A point on Earth in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude, −90 (south) to 90 (north).
    pub lat: f64,
    /// Longitude, −180 (west) to 180 (east).
    pub lon: f64,
}

/// Mean Earth radius (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

impl GeoPoint {
    /// A point from degrees.
    pub const fn new(lat: f64, lon: f64) -> Self {
        GeoPoint { lat, lon }
    }

    /// Great-circle distance in km (haversine). Accurate to ~0.5 % (the Earth is not a sphere),
    /// far finer than routing needs.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        // Clamp: rounding can push `a` a hair past 1 for antipodal points, making sqrt(1 - a) NaN.
        let a = a.clamp(0.0, 1.0);
        2.0 * EARTH_RADIUS_KM * a.sqrt().atan2((1.0 - a).sqrt())
    }
}

/// Fly.io region codes and the coordinates of the airport each is named after. The first 18
/// are Fly's current regions; the rest are retired ones that older deployments may still name.
pub const FLY_REGIONS: &[(&str, GeoPoint)] = &[
    ("ams", GeoPoint::new(52.31, 4.76)),    // Amsterdam
    ("arn", GeoPoint::new(59.65, 17.92)),   // Stockholm
    ("bom", GeoPoint::new(19.09, 72.87)),   // Mumbai
    ("cdg", GeoPoint::new(49.01, 2.55)),    // Paris
    ("dfw", GeoPoint::new(32.90, -97.04)),  // Dallas
    ("ewr", GeoPoint::new(40.69, -74.17)),  // Secaucus / New York
    ("fra", GeoPoint::new(50.03, 8.57)),    // Frankfurt
    ("gru", GeoPoint::new(-23.43, -46.47)), // São Paulo
    ("iad", GeoPoint::new(38.94, -77.45)),  // Ashburn, Virginia
    ("jnb", GeoPoint::new(-26.14, 28.25)),  // Johannesburg
    ("lax", GeoPoint::new(33.94, -118.41)), // Los Angeles
    ("lhr", GeoPoint::new(51.47, -0.45)),   // London
    ("nrt", GeoPoint::new(35.77, 140.39)),  // Tokyo
    ("ord", GeoPoint::new(41.98, -87.90)),  // Chicago
    ("sin", GeoPoint::new(1.36, 103.99)),   // Singapore
    ("sjc", GeoPoint::new(37.36, -121.93)), // San Jose
    ("syd", GeoPoint::new(-33.95, 151.18)), // Sydney
    ("yyz", GeoPoint::new(43.68, -79.63)),  // Toronto
    ("atl", GeoPoint::new(33.64, -84.43)),  // Atlanta (retired)
    ("bog", GeoPoint::new(4.70, -74.15)),   // Bogotá (retired)
    ("bos", GeoPoint::new(42.36, -71.01)),  // Boston (retired)
    ("den", GeoPoint::new(39.86, -104.67)), // Denver (retired)
    ("eze", GeoPoint::new(-34.82, -58.54)), // Buenos Aires (retired)
    ("gdl", GeoPoint::new(20.52, -103.31)), // Guadalajara (retired)
    ("hkg", GeoPoint::new(22.31, 113.91)),  // Hong Kong (retired)
    ("mad", GeoPoint::new(40.49, -3.57)),   // Madrid (retired)
    ("mia", GeoPoint::new(25.79, -80.29)),  // Miami (retired)
    ("otp", GeoPoint::new(44.57, 26.10)),   // Bucharest (retired)
    ("phx", GeoPoint::new(33.43, -112.01)), // Phoenix (retired)
    ("qro", GeoPoint::new(20.62, -100.19)), // Querétaro (retired)
    ("scl", GeoPoint::new(-33.39, -70.79)), // Santiago (retired)
    ("sea", GeoPoint::new(47.45, -122.31)), // Seattle (retired)
    ("waw", GeoPoint::new(52.17, 20.97)),   // Warsaw (retired)
    ("yul", GeoPoint::new(45.47, -73.74)),  // Montréal (retired)
];

/// Twilio regions that run Media Streams, and where their media servers are. Twilio sends
/// the region in the (undocumented) `X-Home-Region` header of every webhook.
pub const TWILIO_REGIONS: &[(&str, GeoPoint)] = &[
    ("us1", GeoPoint::new(38.94, -77.45)),  // Ashburn, Virginia
    ("ie1", GeoPoint::new(53.35, -6.26)),   // Dublin (nearest Fly region: lhr)
    ("au1", GeoPoint::new(-33.87, 151.21)), // Sydney
];

/// Coordinates of a Fly region code (case-insensitive).
pub fn region_point(code: &str) -> Option<GeoPoint> {
    find_point(FLY_REGIONS, code)
}

/// Where the call's media will come from, given an `X-Home-Region` value: a Twilio region
/// (`us1`, `ie1`, `au1`), or a Fly region code for setups that pass one. `None` for anything
/// else; the caller then falls back to the request's `cf` coordinates.
pub fn home_region_point(header: &str) -> Option<GeoPoint> {
    let code = header.trim();
    find_point(TWILIO_REGIONS, code).or_else(|| region_point(code))
}

/// Where to measure node distance from for a call, in order of preference:
/// 1. the number's configured `region` (a tenant pinning its media, e.g. for data residency);
/// 2. the webhook's `X-Home-Region` header (where Twilio's media server for the call runs);
/// 3. the request's `cf` coordinates (Twilio's webhook egress, a rougher guess).
///
/// Unknown region codes fall through to the next source; `None` means load alone decides.
pub fn media_origin(
    route: Option<&NumberRoute>,
    home_region: Option<&str>,
    cf: Option<GeoPoint>,
) -> Option<GeoPoint> {
    route
        .and_then(|r| r.region.as_deref())
        .and_then(region_point)
        .or_else(|| home_region.and_then(home_region_point))
        .or(cf)
}

fn find_point(table: &[(&str, GeoPoint)], code: &str) -> Option<GeoPoint> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(code))
        .map(|&(_, point)| point)
}

// ---------------------------------------------------------------------------------------------
// Node choice
// ---------------------------------------------------------------------------------------------

/// Distances are compared in bands this wide, so nodes in one metro (whose reported
/// coordinates differ by a few km) compare by load rather than by reporting noise. 100 km is
/// about 1 ms of fibre round trip: nothing a caller hears.
pub const DISTANCE_BAND_KM: f64 = 100.0;

impl NodeInfo {
    /// The node's location.
    pub fn point(&self) -> GeoPoint {
        GeoPoint::new(self.lat, self.lon)
    }

    /// Whether it may receive new calls at `now`: not draining, and heard from within
    /// `stale_after_s` seconds. A heartbeat from the future (clock skew) counts as fresh.
    pub fn is_available(&self, now: u64, stale_after_s: u64) -> bool {
        !self.draining && now.saturating_sub(self.last_heartbeat) <= stale_after_s
    }

    /// Whether it has room for one more call.
    pub fn has_room(&self) -> bool {
        self.active_calls < self.capacity
    }

    /// Share of capacity in use; a node with no capacity counts as infinitely loaded.
    pub fn load_ratio(&self) -> f64 {
        if self.capacity == 0 {
            f64::INFINITY
        } else {
            f64::from(self.active_calls) / f64::from(self.capacity)
        }
    }
}

/// Orders two available nodes, best first: nodes with room before full ones (spill-over),
/// then nearer distance band, then lower load, then id so the order never depends on the
/// snapshot's order.
fn compare_nodes(a: &NodeInfo, b: &NodeInfo, from: Option<GeoPoint>) -> Ordering {
    let band = |n: &NodeInfo| match from {
        Some(p) => (p.distance_km(n.point()) / DISTANCE_BAND_KM).floor(),
        None => 0.0,
    };
    b.has_room()
        .cmp(&a.has_room())
        .then_with(|| band(a).total_cmp(&band(b)))
        .then_with(|| a.load_ratio().total_cmp(&b.load_ratio()))
        .then_with(|| a.id.cmp(&b.id))
}

/// Available nodes, best first for a call whose media comes from `from` (`None`: unknown, so
/// load decides). Draining nodes and nodes silent for more than `stale_after_s` are left out;
/// full nodes are kept, after every node with room, so the caller can still try them.
pub fn rank_nodes(
    nodes: &[NodeInfo],
    from: Option<GeoPoint>,
    now: u64,
    stale_after_s: u64,
) -> Vec<&NodeInfo> {
    let mut ranked: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.is_available(now, stale_after_s))
        .collect();
    ranked.sort_by(|a, b| compare_nodes(a, b, from));
    ranked
}

/// The first of [`rank_nodes`], without building the list.
pub fn nearest_node(
    nodes: &[NodeInfo],
    from: Option<GeoPoint>,
    now: u64,
    stale_after_s: u64,
) -> Option<&NodeInfo> {
    nodes
        .iter()
        .filter(|n| n.is_available(now, stale_after_s))
        .min_by(|a, b| compare_nodes(a, b, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_obvious_formats() {
        for (input, want) in [
            ("+14155550100", Some("+14155550100")),
            ("+1 (415) 555-0100", Some("+14155550100")),
            ("tel:+1-415-555-0100", Some("+14155550100")),
            ("14155550100", Some("+14155550100")),
            (" +44 20 7946 0000 ", Some("+442079460000")),
            ("0044 20 7946 0000", Some("+442079460000")),
            ("+44.20.7946.0000", Some("+442079460000")),
            ("+123456789012345", Some("+123456789012345")),
            ("001234567890123456", None), // 16 digits after 00
            ("+1234567890123456", None),  // 16 digits
            ("+123456", None),            // too short
            ("+0123456789", None),        // no country code starts with 0
            ("0207946000", None),         // national format
            ("client:alice", None),
            ("anonymous", None),
            ("", None),
            ("+", None),
            ("+1 415 555 0100 ext 2", None),
        ] {
            assert_eq!(normalize_e164(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn haversine_matches_known_distances() {
        let lhr = region_point("lhr").unwrap();
        let jfk_ish = region_point("ewr").unwrap();
        let d = lhr.distance_km(jfk_ish);
        assert!((5500.0..5600.0).contains(&d), "LHR–EWR {d}");
        assert_eq!(lhr.distance_km(lhr), 0.0);
        let antipode = GeoPoint::new(-51.47, 179.55);
        let half = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert!((lhr.distance_km(antipode) - half).abs() < 1.0);
    }

    #[test]
    fn region_tables_are_case_insensitive_and_map_twilio_regions() {
        assert_eq!(region_point("IAD"), region_point("iad"));
        assert_eq!(home_region_point("us1"), region_point("iad"));
        assert!(home_region_point("ie1").is_some());
        assert_eq!(home_region_point("fra"), region_point("fra"));
        assert_eq!(home_region_point("mars1"), None);
    }
}
