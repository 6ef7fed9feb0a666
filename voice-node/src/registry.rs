//! The node registry: this node's heartbeat row in `voice_nodes`, and the routing snapshot the
//! edge pulls (`GET /internal/routing-snapshot`).
//!
//! Every node publishes itself every `HEARTBEAT_SECS`; any node can build the snapshot from the
//! shared database (numbers + tenants' caller lists + nodes heard from within
//! [`STALE_HEARTBEATS`] intervals). The snapshot is cached for [`SNAPSHOT_TTL`], so edge isolates
//! pulling it from every Cloudflare PoP cost one query burst per second at most.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use shared::domain::CallMode;
use shared::routing::{NodeInfo, NumberRoute, RoutingSnapshot, TenantPolicy};
use sqlx::{PgPool, Row};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Config;
use crate::drain::Drain;
use crate::metrics::Metrics;

/// A node silent for this many heartbeat intervals is left out of the snapshot.
pub const STALE_HEARTBEATS: u32 = 3;

/// How long a built snapshot is served before it is rebuilt.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// This node's row as the heartbeat writes it.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// `NODE_ID`.
    pub id: String,
    /// `NODE_REGION`.
    pub region: String,
    /// `NODE_LAT`/`NODE_LON`.
    pub position: Option<(f64, f64)>,
    /// `PUBLIC_BASE_URL`.
    pub public_url: String,
    /// Live calls now.
    pub active_calls: u32,
    /// `NODE_CAPACITY`.
    pub capacity: u32,
    /// Draining (SIGTERM received).
    pub draining: bool,
    /// When this process started.
    pub started_at: DateTime<Utc>,
}

/// Upserts the node's row with `last_heartbeat_at = now()`.
pub async fn heartbeat(pool: &PgPool, node: &NodeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO voice_nodes (id, region, lat, lon, public_url, active_calls, capacity, draining,
                                  version, last_heartbeat_at, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10)
         ON CONFLICT (id) DO UPDATE SET
             region = EXCLUDED.region, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
             public_url = EXCLUDED.public_url, active_calls = EXCLUDED.active_calls,
             capacity = EXCLUDED.capacity, draining = EXCLUDED.draining,
             version = EXCLUDED.version, last_heartbeat_at = now(),
             started_at = EXCLUDED.started_at",
    )
    .bind(&node.id)
    .bind(&node.region)
    .bind(node.position.map(|p| p.0))
    .bind(node.position.map(|p| p.1))
    .bind(&node.public_url)
    .bind(i32::try_from(node.active_calls).unwrap_or(i32::MAX))
    .bind(i32::try_from(node.capacity).unwrap_or(i32::MAX))
    .bind(node.draining)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(node.started_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Builds this node's current row.
pub fn node_row(
    config: &Config,
    metrics: &Metrics,
    drain: &Drain,
    started_at: DateTime<Utc>,
) -> NodeRow {
    NodeRow {
        id: config.node_id.clone(),
        region: config.region.clone(),
        position: config.position,
        public_url: config.public_base_url.clone(),
        active_calls: u32::try_from(metrics.active_calls.get()).unwrap_or(0),
        capacity: config.capacity,
        draining: drain.is_draining(),
        started_at,
    }
}

/// Heartbeats every `interval` (and at once when the drain starts) until the task is aborted.
pub fn spawn_heartbeat(
    pool: PgPool,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    drain: Drain,
    started_at: DateTime<Utc>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(config.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_rx = drain.subscribe();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = drain_rx.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
            let row = node_row(&config, &metrics, &drain, started_at);
            match heartbeat(&pool, &row).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(node = %row.id, "heartbeat written again");
                    }
                    failing = false;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(node = %row.id, error = %err, "heartbeat failed; will retry");
                    }
                    failing = true;
                }
            }
        }
    })
}

/// Builds the snapshot from the database. Nodes heard from within `stale_after` are included
/// (draining ones too: the edge filters them, and sees that they exist).
pub async fn build_snapshot(
    pool: &PgPool,
    stale_after: Duration,
) -> Result<RoutingSnapshot, sqlx::Error> {
    let numbers = sqlx::query(
        "SELECT p.e164, p.tenant_id::text AS tenant_id, p.mode, p.owner_phone, p.region, t.ai_enabled
         FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id
         WHERE t.disabled_at IS NULL
         ORDER BY p.e164",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .filter_map(|r| {
        let mode: CallMode = r.get::<String, _>("mode").parse().ok()?;
        Some(NumberRoute {
            e164: r.get("e164"),
            tenant_id: r.get("tenant_id"),
            mode,
            owner_phone: r.get("owner_phone"),
            region: r.get("region"),
            ai_enabled: r.get("ai_enabled"),
            // No per-number switch yet: forward mode texts missed callers back.
            text_back: mode == CallMode::Forward,
            voicemail: false,
        })
    })
    .collect();

    let mut tenants: BTreeMap<String, TenantPolicy> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT c.tenant_id::text AS tenant_id, c.kind, c.number
         FROM contacts c JOIN tenants t ON t.id = c.tenant_id
         WHERE t.disabled_at IS NULL
         ORDER BY c.tenant_id, c.number",
    )
    .fetch_all(pool)
    .await?
    {
        let tenant_id: String = r.get("tenant_id");
        let policy = tenants
            .entry(tenant_id.clone())
            .or_insert_with(|| TenantPolicy {
                tenant_id,
                blocked_callers: Vec::new(),
                allowed_callers: Vec::new(),
            });
        let number: String = r.get("number");
        match r.get::<String, _>("kind").as_str() {
            "block" => policy.blocked_callers.push(number),
            _ => policy.allowed_callers.push(number),
        }
    }

    let nodes = sqlx::query(
        "SELECT id, region, lat, lon, public_url, active_calls, capacity, draining,
                extract(epoch FROM last_heartbeat_at)::bigint AS heartbeat
         FROM voice_nodes
         WHERE last_heartbeat_at > now() - make_interval(secs => $1)
         ORDER BY id",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        let region: String = r.get("region");
        // A node without coordinates is placed at its region's airport when the region is a
        // known Fly region; otherwise (0, 0), which ranks it far from everyone.
        let (lat, lon) = match (
            r.get::<Option<f64>, _>("lat"),
            r.get::<Option<f64>, _>("lon"),
        ) {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => shared::routing::region_point(&region)
                .map(|p| (p.lat, p.lon))
                .unwrap_or((0.0, 0.0)),
        };
        NodeInfo {
            id: r.get("id"),
            region,
            lat,
            lon,
            public_url: r.get("public_url"),
            active_calls: u32::try_from(r.get::<i32, _>("active_calls")).unwrap_or(0),
            capacity: u32::try_from(r.get::<i32, _>("capacity")).unwrap_or(0),
            draining: r.get("draining"),
            last_heartbeat: u64::try_from(r.get::<i64, _>("heartbeat")).unwrap_or(0),
        }
    })
    .collect();

    Ok(RoutingSnapshot {
        generated_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        numbers,
        tenants: tenants.into_values().collect(),
        nodes,
    })
}

/// The snapshot JSON, rebuilt at most once per [`SNAPSHOT_TTL`].
#[derive(Debug)]
pub struct SnapshotCache {
    /// Where it is built from.
    pool: PgPool,
    /// Nodes silent for longer are left out.
    stale_after: Duration,
    /// The last JSON and when it was built. An async mutex: concurrent pulls while it is being
    /// rebuilt wait for that one build instead of each querying.
    cached: Mutex<Option<(Instant, Arc<str>)>>,
}

impl SnapshotCache {
    /// A cache over `pool`.
    pub fn new(pool: PgPool, heartbeat_interval: Duration) -> Self {
        SnapshotCache {
            pool,
            stale_after: heartbeat_interval * STALE_HEARTBEATS,
            cached: Mutex::new(None),
        }
    }

    /// The current snapshot as JSON.
    pub async fn json(&self) -> Result<Arc<str>, sqlx::Error> {
        let mut cached = self.cached.lock().await;
        if let Some((built, json)) = cached.as_ref()
            && built.elapsed() < SNAPSHOT_TTL
        {
            return Ok(Arc::clone(json));
        }
        let snapshot = build_snapshot(&self.pool, self.stale_after).await?;
        let json: Arc<str> = Arc::from(snapshot.to_json());
        *cached = Some((Instant::now(), Arc::clone(&json)));
        Ok(json)
    }
}
