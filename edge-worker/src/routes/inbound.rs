//! `POST /telephony/inbound` (the voice webhook of every number) and
//! `POST /telephony/stream-fallback` (the `<Connect action>` when a stream ends abnormally).

use axum::extract::State;
use shared::domain::CallMode;
use shared::routing::{CallerPolicy, NumberRoute, RoutingSnapshot};
use shared::webhook::{CallParams, CallStatus, VoiceRequest};

use crate::answers::{
    self, MAX_STREAM_ATTEMPTS, NOT_IN_SERVICE, StreamTarget, Twiml, connect_stream, dial_owner,
    goodbye, without_ai,
};
use crate::call_state::{PreviousNode, previous_node};
use crate::error::EdgeError;
use crate::platform::Background;
use crate::snapshot::SnapshotCache;
use crate::verify::TwilioWebhook;
use crate::{AppState, nodes, redact};

/// Answers an incoming call by its number's mode.
///
/// - unknown number → a polite "not in service" and hang up (200, so Twilio does not play its
///   application-error message);
/// - blocked caller → `<Reject/>`;
/// - forward → ring the owner (`<Dial timeout=20 action=dial-result>`);
/// - screening / receptionist → `<Connect><Stream>` to the nearest node; an allow-listed caller
///   of a screening number rings the owner directly; with AI off, the owner or voicemail.
pub async fn inbound(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<Twiml, EdgeError> {
    let call: VoiceRequest = webhook.parse()?;
    let view = SnapshotCache::current(&state, &background).await;
    let snapshot = &view.snapshot;
    let Some(route) = super::called_number(snapshot, &webhook.form) else {
        tracing::warn!(
            call_sid = %call.call.call_sid,
            to = %redact::phone(&call.call.to),
            snapshot = ?view.source,
            "call to a number that is not in the routing snapshot"
        );
        return Ok(goodbye(NOT_IN_SERVICE).into());
    };
    let caller = call.call.from.as_str();
    let policy = snapshot.caller_policy(&route.tenant_id, caller);
    tracing::info!(
        call_sid = %call.call.call_sid,
        tenant = %route.tenant_id,
        mode = %route.mode,
        from = %redact::phone(caller),
        ?policy,
        "incoming call"
    );
    if policy == CallerPolicy::Blocked {
        return Ok(answers::reject().into());
    }
    let config = &state.config;
    let answer = match (route.mode, route.owner_phone.as_deref()) {
        (CallMode::Forward, Some(owner)) => dial_owner(config, owner, caller, false),
        // Forward mode without an owner phone: as if the owner did not answer.
        (CallMode::Forward, None) if route.ai_enabled => ai_or_fallback(
            &state,
            snapshot,
            route,
            &webhook,
            &call.call,
            NextStream {
                mode: CallMode::Receptionist,
                attempt: 1,
                tried: Vec::new(),
                owner_tried: true,
                after_failed_transfer: false,
            },
        ),
        (CallMode::Forward, None) => answers::voicemail_or_goodbye(config, route),
        (CallMode::Screening, Some(owner)) if policy == CallerPolicy::Allowed => {
            dial_owner(config, owner, caller, false)
        }
        (_, owner) if !route.ai_enabled => match owner {
            Some(owner) => dial_owner(config, owner, caller, false),
            None => answers::voicemail_or_goodbye(config, route),
        },
        (mode, _) => ai_or_fallback(
            &state,
            snapshot,
            route,
            &webhook,
            &call.call,
            NextStream {
                mode,
                attempt: 1,
                tried: Vec::new(),
                owner_tried: false,
                after_failed_transfer: false,
            },
        ),
    };
    Ok(answer.into())
}

/// The stream of a call ended while the caller is still on the line: try the next node (up to
/// [`MAX_STREAM_ATTEMPTS`] in all), then the owner's phone, then voicemail.
pub async fn stream_fallback(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<Twiml, EdgeError> {
    let call: VoiceRequest = webhook.parse()?;
    if matches!(
        call.call.call_status,
        CallStatus::Completed
            | CallStatus::Canceled
            | CallStatus::Failed
            | CallStatus::Busy
            | CallStatus::NoAnswer
    ) {
        // The caller hung up: nothing to rescue.
        return Ok(answers::hangup().into());
    }
    let view = SnapshotCache::current(&state, &background).await;
    let Some(route) = super::called_number(&view.snapshot, &webhook.form) else {
        return Ok(goodbye(NOT_IN_SERVICE).into());
    };
    let attempt: u32 = webhook
        .query_param("attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let mode = webhook
        .query_param("mode")
        .and_then(|m| m.parse().ok())
        .unwrap_or(route.mode);
    let tried: Vec<String> = webhook
        .query_param("tried")
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(previous) = tried
        .last()
        .and_then(|id| view.snapshot.nodes.iter().find(|n| &n.id == id))
        && let PreviousNode::Finished(outcome) =
            previous_node(&state, previous, &call.call.call_sid).await
    {
        tracing::info!(
            call_sid = %call.call.call_sid,
            node = %previous.id,
            outcome = %outcome,
            "the node ended the call on purpose; hanging up"
        );
        return Ok(answers::hangup().into());
    }
    tracing::warn!(
        call_sid = %call.call.call_sid,
        tenant = %route.tenant_id,
        attempt,
        tried = %tried.join(","),
        "media stream ended with the caller on the line; falling back"
    );
    // Forward numbers reach the AI only after the owner missed the call.
    let owner_tried = route.mode == CallMode::Forward;
    // A stream resumed after a failed transfer stays at lead capture on the next node.
    let after_failed_transfer = webhook
        .query_param(crate::answers::AFTER_PARAMETER.0)
        .as_deref()
        == Some(crate::answers::AFTER_PARAMETER.1);
    let answer = if attempt >= MAX_STREAM_ATTEMPTS {
        without_ai(&state.config, route, &call.call.from, owner_tried)
    } else {
        ai_or_fallback(
            &state,
            &view.snapshot,
            route,
            &webhook,
            &call.call,
            NextStream {
                mode,
                attempt: attempt + 1,
                tried,
                owner_tried,
                after_failed_transfer,
            },
        )
    };
    Ok(answer.into())
}

/// Which AI stream attempt a call is at.
#[derive(Debug, Clone)]
pub(crate) struct NextStream {
    /// The flow the node should run.
    pub mode: CallMode,
    /// 1 for the first node, 2 for the first fallback, …
    pub attempt: u32,
    /// Nodes this call's stream already failed on.
    pub tried: Vec<String>,
    /// The owner's phone already rang for this call (forward mode), so it is not a fallback.
    pub owner_tried: bool,
    /// Back from a node's transfer nobody answered: the node resumes at lead capture.
    pub after_failed_transfer: bool,
}

/// `<Connect><Stream>` to the best node not yet tried, or — with none left — the owner,
/// voicemail or goodbye.
pub(crate) fn ai_or_fallback(
    state: &AppState,
    snapshot: &RoutingSnapshot,
    route: &NumberRoute,
    webhook: &TwilioWebhook,
    call: &CallParams,
    next: NextStream,
) -> shared::twiml::VoiceResponse {
    let NextStream {
        mode,
        attempt,
        mut tried,
        owner_tried,
        after_failed_transfer,
    } = next;
    let config = &state.config;
    let candidates = nodes::for_call(
        snapshot,
        Some(route),
        webhook,
        config.node_stale_after_s,
        &tried,
    );
    match candidates.first() {
        Some(node) => {
            tracing::info!(call_sid = %call.call_sid, node = %node.id, region = %node.region, attempt, "stream routed");
            tried.push(node.id.clone());
            connect_stream(
                config,
                state.clock.now_s(),
                &StreamTarget {
                    node,
                    call_sid: &call.call_sid,
                    from: &call.from,
                    to: &call.to,
                    tenant_id: &route.tenant_id,
                    mode,
                    attempt,
                    tried,
                    after_failed_transfer,
                },
            )
        }
        None => {
            tracing::error!(call_sid = %call.call_sid, tenant = %route.tenant_id, "no voice node available for the call");
            without_ai(config, route, &call.from, owner_tried)
        }
    }
}
