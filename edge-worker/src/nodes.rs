//! Which voice nodes a request may go to, best first: `shared::routing`'s ranking, fed with
//! what the edge knows about the request.

use shared::routing::{NodeInfo, NumberRoute, RoutingSnapshot, media_origin, rank_nodes};

use crate::verify::TwilioWebhook;

/// Nodes for a call's media stream, best first, leaving out `exclude` (nodes a previous
/// attempt of this call already failed on).
///
/// Distance is measured from the number's pinned region, else `X-Home-Region`, else the
/// request's `cf` location ([`media_origin`]). Staleness is judged against the snapshot's
/// `generated_at` rather than the edge's clock: when the control plane is down, the last good
/// copy keeps routing to the nodes that were alive when it was made.
pub fn for_call<'s>(
    snapshot: &'s RoutingSnapshot,
    route: Option<&NumberRoute>,
    webhook: &TwilioWebhook,
    stale_after_s: u64,
    exclude: &[String],
) -> Vec<&'s NodeInfo> {
    let origin = media_origin(route, webhook.home_region.as_deref(), webhook.location);
    rank_nodes(
        &snapshot.nodes,
        origin,
        snapshot.generated_at,
        stale_after_s,
    )
    .into_iter()
    .filter(|n| !exclude.contains(&n.id))
    .collect()
}

/// Nodes to offer a forwarded event to, at most `limit`: the node named in the callback URL
/// first (the one that holds the call, when the edge put `node=` in the URL), then the ranking.
pub fn for_event<'s>(
    snapshot: &'s RoutingSnapshot,
    route: Option<&NumberRoute>,
    webhook: &TwilioWebhook,
    stale_after_s: u64,
    limit: usize,
) -> Vec<&'s NodeInfo> {
    let ranked = for_call(snapshot, route, webhook, stale_after_s, &[]);
    let preferred = webhook.query_param("node");
    let mut out: Vec<&NodeInfo> = Vec::with_capacity(limit);
    if let Some(id) = preferred.as_deref()
        && let Some(node) = ranked.iter().find(|n| n.id == id)
    {
        out.push(node);
    }
    for node in ranked {
        if out.len() >= limit {
            break;
        }
        if !out.iter().any(|n| n.id == node.id) {
            out.push(node);
        }
    }
    out
}
