//! Snapshot JSON from a node is trusted less than our own code: parsing it and routing over
//! whatever parses must never panic, and the ranking must keep its promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::routing::{RoutingSnapshot, home_region_point, nearest_node, rank_nodes};

fuzz_target!(|text: &str| {
    let Ok(snapshot) = RoutingSnapshot::from_json(text) else {
        return;
    };
    let now = snapshot.generated_at;
    for from in [None, home_region_point("us1"), home_region_point("au1")] {
        let ranked = rank_nodes(&snapshot.nodes, from, now, 30);
        assert!(ranked.iter().all(|n| !n.draining));
        let nearest = nearest_node(&snapshot.nodes, from, now, 30);
        assert_eq!(nearest.map(|n| &n.id), ranked.first().map(|n| &n.id));
    }
    for route in &snapshot.numbers {
        let _ = snapshot.lookup_number(&route.e164);
        let _ = snapshot.caller_policy(&route.tenant_id, &route.e164);
    }
    let _ = snapshot.lookup_number(text);
    let _ = RoutingSnapshot::from_json(&snapshot.to_json());
});
