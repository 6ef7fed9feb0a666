//! `POST /telephony/outbound`: the TwiML App voice URL of the browser dialer.
//!
//! The Voice SDK call arrives with `From=client:<identity>` and the parameters the dashboard
//! passed to `device.connect({params})` (all covered by Twilio's signature):
//! - `To`: the number to call (E.164);
//! - `tenant`: the caller's tenant id (the node puts it in the access token's outgoing params);
//! - `callerId` (optional): which of the tenant's numbers to show; default: the tenant's first
//!   number in the snapshot.
//!
//! The caller ID must be a number of that tenant in the routing snapshot, so a browser cannot
//! present someone else's number.

use axum::extract::State;
use shared::routing::{NumberRoute, RoutingSnapshot, normalize_e164};
use shared::webhook::ClientOutgoingCall;

use crate::answers::{CANNOT_DIAL, Twiml, dialer_call, goodbye};
use crate::error::EdgeError;
use crate::platform::Background;
use crate::snapshot::SnapshotCache;
use crate::verify::TwilioWebhook;
use crate::{AppState, nodes, redact};

/// `<Start><Stream>` (live transcript) + `<Dial callerId record>` to the requested number.
pub async fn outbound(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<Twiml, EdgeError> {
    let call: ClientOutgoingCall = webhook.parse()?;
    let callee = Some(call.call.to.as_str())
        .filter(|to| !to.is_empty())
        .or_else(|| call.param("To"))
        .and_then(normalize_e164);
    let view = SnapshotCache::current(&state, &background).await;
    let tenant = call.param("tenant");
    let caller_id = caller_number(&view.snapshot, tenant, call.param("callerId"));
    let (Some(callee), Some(number)) = (callee, caller_id) else {
        tracing::warn!(
            call_sid = %call.call.call_sid,
            identity = %call.identity,
            to = %redact::phone(&call.call.to),
            tenant = tenant.unwrap_or("-"),
            "browser call refused: no valid callee or no caller ID for the tenant"
        );
        return Ok(goodbye(CANNOT_DIAL).into());
    };
    let node = nodes::for_call(
        &view.snapshot,
        Some(number),
        &webhook,
        state.config.node_stale_after_s,
        &[],
    )
    .first()
    .copied();
    if node.is_none() {
        tracing::warn!(call_sid = %call.call.call_sid, "no voice node for the live transcript; dialing without it");
    }
    tracing::info!(
        call_sid = %call.call.call_sid,
        tenant = %number.tenant_id,
        to = %redact::phone(&callee),
        node = node.map(|n| n.id.as_str()).unwrap_or("-"),
        "browser call"
    );
    Ok(dialer_call(
        &state.config,
        state.clock.now_s(),
        &number.e164,
        &callee,
        node.map(|n| (n, call.call.call_sid.as_str(), number.tenant_id.as_str())),
    )
    .into())
}

/// The tenant number to call from: `callerId` if it is the tenant's, else the tenant's first.
fn caller_number<'s>(
    snapshot: &'s RoutingSnapshot,
    tenant: Option<&str>,
    caller_id: Option<&str>,
) -> Option<&'s NumberRoute> {
    let tenant = tenant?;
    match caller_id {
        Some(wanted) => snapshot
            .lookup_number(wanted)
            .filter(|route| route.tenant_id == tenant),
        None => snapshot
            .numbers
            .iter()
            .find(|route| route.tenant_id == tenant),
    }
}
