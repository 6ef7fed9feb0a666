//! Routing snapshot, number lookup, caller lists and node choice, over the snapshot in
//! `tests/data/routing/snapshot.json` and the rankings in `tests/data/routing/node_choice.json`.

use std::fs;
use std::path::Path;

use serde_json::Value;
use shared::domain::CallMode;
use shared::routing::{
    CallerPolicy, GeoPoint, NodeInfo, RoutingError, RoutingSnapshot, home_region_point,
    lookup_number, media_origin, nearest_node, rank_nodes, region_point,
};

const TENANT_A: &str = "6f1c2a4e-8b7d-4c1e-9a3f-2d5e7b9c1a01";
const NOW: u64 = 1_800_000_000;
const STALE_AFTER_S: u64 = 30;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/routing")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn snapshot() -> RoutingSnapshot {
    RoutingSnapshot::from_json(&data("snapshot.json")).expect("fixture snapshot parses")
}

fn ids(nodes: &[&NodeInfo]) -> Vec<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

fn node(id: &str, region: &str, active: u32, capacity: u32) -> NodeInfo {
    let p = region_point(region).unwrap();
    NodeInfo {
        id: id.into(),
        region: region.into(),
        lat: p.lat,
        lon: p.lon,
        public_url: format!("https://{id}.example.com"),
        active_calls: active,
        capacity,
        draining: false,
        last_heartbeat: NOW,
    }
}

#[test]
fn ranks_nodes_as_recorded_for_each_media_location() {
    let snapshot = snapshot();
    let file: Value = serde_json::from_str(&data("node_choice.json")).unwrap();
    let now = file["now"].as_u64().unwrap();
    let stale = file["stale_after_s"].as_u64().unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let from = match &case["from"] {
            Value::Null => None,
            Value::String(region) => {
                Some(home_region_point(region).unwrap_or_else(|| panic!("{name}: region")))
            }
            point => Some(serde_json::from_value::<GeoPoint>(point.clone()).unwrap()),
        };
        let expect: Vec<String> = serde_json::from_value(case["expect"].clone()).unwrap();
        let ranked = rank_nodes(&snapshot.nodes, from, now, stale);
        assert_eq!(ids(&ranked), expect, "{name}");
        let nearest = nearest_node(&snapshot.nodes, from, now, stale).map(|n| n.id.as_str());
        assert_eq!(
            nearest,
            expect.first().map(String::as_str),
            "{name}: nearest_node"
        );
    }
}

#[test]
fn never_picks_draining_or_stale_nodes() {
    let snapshot = snapshot();
    for from in [None, home_region_point("us1"), home_region_point("ie1")] {
        let ranked = ids(&rank_nodes(&snapshot.nodes, from, NOW, STALE_AFTER_S));
        assert!(
            !ranked.contains(&"iad-3".to_owned()),
            "draining node ranked"
        );
        assert!(!ranked.contains(&"lhr-2".to_owned()), "stale node ranked");
    }
    // lhr-2 comes back once its heartbeat is within the window.
    let ranked = ids(&rank_nodes(&snapshot.nodes, None, NOW, 100));
    assert!(ranked.contains(&"lhr-2".to_owned()));
}

#[test]
fn full_nearby_node_spills_over_to_a_farther_one_with_room() {
    let nodes = vec![node("iad-a", "iad", 30, 30), node("ord-a", "ord", 29, 30)];
    let best = nearest_node(&nodes, home_region_point("us1"), NOW, STALE_AFTER_S).unwrap();
    assert_eq!(best.id, "ord-a");
}

#[test]
fn when_every_node_is_full_the_nearest_full_one_is_still_offered() {
    let nodes = vec![node("lhr-a", "lhr", 30, 30), node("iad-a", "iad", 31, 30)];
    let ranked = rank_nodes(&nodes, home_region_point("us1"), NOW, STALE_AFTER_S);
    assert_eq!(ids(&ranked), ["iad-a", "lhr-a"]);
}

#[test]
fn within_one_metro_the_less_loaded_node_wins() {
    // Same region, coordinates a few km apart: load decides, not the few km.
    let near = node("iad-near", "iad", 40, 50);
    let mut far = node("iad-far", "iad", 10, 50);
    far.lat += 0.05;
    let nodes = vec![near, far];
    let best = nearest_node(&nodes, home_region_point("us1"), NOW, STALE_AFTER_S).unwrap();
    assert_eq!(best.id, "iad-far");
}

#[test]
fn ties_break_by_id_whatever_the_snapshot_order() {
    let a = node("node-a", "fra", 5, 10);
    let b = node("node-b", "fra", 10, 20); // same distance, same load ratio
    let forward = vec![a.clone(), b.clone()];
    let backward = vec![b, a];
    for from in [None, home_region_point("fra"), home_region_point("us1")] {
        assert_eq!(
            ids(&rank_nodes(&forward, from, NOW, 30)),
            ["node-a", "node-b"]
        );
        assert_eq!(
            ids(&rank_nodes(&backward, from, NOW, 30)),
            ["node-a", "node-b"]
        );
        assert_eq!(nearest_node(&backward, from, NOW, 30).unwrap().id, "node-a");
    }
}

#[test]
fn no_available_node_gives_none() {
    assert!(nearest_node(&[], home_region_point("us1"), NOW, 30).is_none());
    assert!(rank_nodes(&[], None, NOW, 30).is_empty());
    let mut draining = node("iad-a", "iad", 0, 10);
    draining.draining = true;
    let mut stale = node("ord-a", "ord", 0, 10);
    stale.last_heartbeat = NOW - 31;
    assert!(nearest_node(&[draining, stale], None, NOW, 30).is_none());
}

#[test]
fn heartbeat_from_the_future_counts_as_fresh() {
    let mut ahead = node("iad-a", "iad", 0, 10);
    ahead.last_heartbeat = NOW + 5; // node clock slightly ahead of the edge
    assert_eq!(nearest_node(&[ahead], None, NOW, 30).unwrap().id, "iad-a");
}

#[test]
fn looks_up_numbers_in_any_obvious_format() {
    let snapshot = snapshot();
    for (input, tenant_mode) in [
        ("+14155550100", Some(CallMode::Screening)),
        ("+1 (415) 555-0100", Some(CallMode::Screening)),
        ("14155550100", Some(CallMode::Screening)),
        ("tel:+44 20 7946 0000", Some(CallMode::Receptionist)),
        ("0044 20 7946 0000", Some(CallMode::Receptionist)),
        // The snapshot entry itself is written loosely; it still matches.
        ("+61298765432", Some(CallMode::Forward)),
        ("+14155550101", None),
        ("client:alice", None),
        ("", None),
    ] {
        let found = lookup_number(&snapshot, input).map(|r| r.mode);
        assert_eq!(found, tenant_mode, "{input:?}");
        assert_eq!(snapshot.lookup_number(input).map(|r| r.mode), tenant_mode);
    }
    let route = snapshot.lookup_number("+14155550100").unwrap();
    assert_eq!(route.tenant_id, TENANT_A);
    assert_eq!(route.owner_phone.as_deref(), Some("+14155550199"));
    assert!(route.ai_enabled && route.voicemail && !route.text_back);
}

#[test]
fn blocklist_rejects_and_allowlist_skips_screening() {
    let snapshot = snapshot();
    assert_eq!(
        snapshot.caller_policy(TENANT_A, "+18005550111"),
        CallerPolicy::Blocked
    );
    // The list entry is written loosely; the caller arrives in E.164.
    assert_eq!(
        snapshot.caller_policy(TENANT_A, "+18005550122"),
        CallerPolicy::Blocked
    );
    assert_eq!(
        snapshot.caller_policy(TENANT_A, "+14155550123"),
        CallerPolicy::Allowed
    );
    // On both lists: the block wins.
    assert_eq!(
        snapshot.caller_policy(TENANT_A, "+14155550177"),
        CallerPolicy::Blocked
    );
    assert_eq!(
        snapshot.caller_policy(TENANT_A, "+14155550999"),
        CallerPolicy::Unlisted
    );
    // Withheld caller ID and browser clients are never matched.
    for caller in ["anonymous", "client:alice", ""] {
        assert_eq!(
            snapshot.caller_policy(TENANT_A, caller),
            CallerPolicy::Unlisted,
            "{caller}"
        );
    }
    // Another tenant's lists do not apply.
    let other = "0b8e6d2c-3f4a-4b5c-8d9e-1f2a3b4c5d02";
    assert_eq!(
        snapshot.caller_policy(other, "+18005550111"),
        CallerPolicy::Unlisted
    );
}

#[test]
fn snapshot_round_trips_through_json() {
    let snapshot = snapshot();
    let again = RoutingSnapshot::from_json(&snapshot.to_json()).unwrap();
    assert_eq!(again, snapshot);
}

#[test]
fn minimal_snapshot_fills_defaults_and_ignores_unknown_fields() {
    let text = r#"{
        "generated_at": 5,
        "numbers": [{"e164": "+14155550100", "tenant_id": "t", "mode": "forward"}],
        "nodes": [{"id": "n", "region": "iad", "lat": 1, "lon": 2, "public_url": "https://n",
                   "last_heartbeat": 5, "gpu": "none"}],
        "added_in_a_later_version": {"x": 1}
    }"#;
    let snapshot = RoutingSnapshot::from_json(text).unwrap();
    let route = &snapshot.numbers[0];
    assert!(route.ai_enabled, "AI is on unless a node says otherwise");
    assert!(!route.text_back && !route.voicemail);
    assert_eq!(
        (route.owner_phone.as_deref(), route.region.as_deref()),
        (None, None)
    );
    assert!(snapshot.tenants.is_empty());
    let n = &snapshot.nodes[0];
    assert_eq!((n.active_calls, n.capacity, n.draining), (0, 0, false));
}

#[test]
fn malformed_snapshots_are_refused() {
    for text in [
        "",
        "null",
        "[]",
        r#"{"numbers": []}"#,
        r#"{"generated_at": -1}"#,
        r#"{"generated_at": 1, "numbers": [{"e164": "+1", "tenant_id": "t", "mode": "voicemail"}]}"#,
        r#"{"generated_at": 1, "nodes": [{"id": "n"}]}"#,
    ] {
        assert!(
            matches!(
                RoutingSnapshot::from_json(text),
                Err(RoutingError::MalformedSnapshot(_))
            ),
            "{text}"
        );
    }
}

#[test]
fn media_origin_prefers_pinned_region_then_home_region_then_cf() {
    let snapshot = snapshot();
    let pinned = snapshot.lookup_number("+14155550100").unwrap(); // region "iad"
    let unpinned = snapshot.lookup_number("+442079460000").unwrap(); // no region
    let cf = Some(GeoPoint::new(41.88, -87.63));
    assert_eq!(
        media_origin(Some(pinned), Some("ie1"), cf),
        region_point("iad")
    );
    assert_eq!(
        media_origin(Some(unpinned), Some("ie1"), cf),
        home_region_point("ie1")
    );
    assert_eq!(media_origin(Some(unpinned), Some("xx9"), cf), cf);
    assert_eq!(media_origin(None, None, cf), cf);
    assert_eq!(media_origin(None, None, None), None);
}
