//! `POST /telephony/dial-result` (the `<Dial action>` after the owner's phone rang) and
//! `POST /telephony/voicemail-done` (the `<Record action>` after a voicemail).

use axum::extract::State;
use shared::domain::CallMode;
use shared::forwarded::{EventKind, ForwardedEvent, idempotency_key};
use shared::routing::NodeInfo;
use shared::webhook::{DialActionRequest, DialCallStatus};

use super::inbound::{NextStream, ai_or_fallback};
use crate::answers::{self, Twiml, UNAVAILABLE, VOICEMAIL_THANKS, goodbye};
use crate::error::EdgeError;
use crate::platform::Background;
use crate::snapshot::SnapshotCache;
use crate::verify::TwilioWebhook;
use crate::{AppState, forward, nodes};

/// The owner answered → hang up when they are done. Otherwise (no-answer, busy, failed,
/// canceled) → the AI receptionist takes the call, or voicemail when the number has AI off. A
/// missed *transfer* (`?transfer=1`, a node's `<Dial>`) resumes the receptionist at lead capture.
///
/// Every outcome is also forwarded to a node as a `dial_result` event (the node starts the
/// text-back on a missed call, and records answered ones). That delivery runs in the background
/// after the TwiML is sent: the caller is waiting on the line, and a slow node must not make
/// them wait longer. A failed delivery is logged with the call SID.
pub async fn dial_result(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<Twiml, EdgeError> {
    let dial: DialActionRequest = webhook.parse()?;
    let view = SnapshotCache::current(&state, &background).await;
    let snapshot = &view.snapshot;
    let route = super::called_number(snapshot, &webhook.form);

    let event = ForwardedEvent::new(
        EventKind::DialResult,
        idempotency_key(
            EventKind::DialResult,
            webhook.idempotency_token.as_deref(),
            &webhook.raw_body,
        ),
        state.clock.now_s(),
        &webhook.form,
    )
    .with_tenant(route.map(|r| r.tenant_id.clone()));
    let targets: Vec<NodeInfo> = nodes::for_event(
        snapshot,
        route,
        &webhook,
        state.config.node_stale_after_s,
        state.config.forward_attempts,
    )
    .into_iter()
    .cloned()
    .collect();
    let call_sid = dial.call.call_sid.clone();
    let bg_state = state.clone();
    background.spawn(async move {
        let targets: Vec<&NodeInfo> = targets.iter().collect();
        if let Err(err) = forward::deliver(&bg_state, &targets, &event).await {
            tracing::error!(call_sid = %call_sid, error = %err, "dial_result event not delivered: no text-back for this call");
        }
    });

    tracing::info!(
        call_sid = %dial.call.call_sid,
        dial_status = %dial.dial_call_status,
        "dial result"
    );
    let answered = matches!(
        dial.dial_call_status,
        DialCallStatus::Completed | DialCallStatus::Answered
    );
    if answered {
        return Ok(answers::hangup().into());
    }
    let Some(route) = route else {
        return Ok(goodbye(UNAVAILABLE).into());
    };
    let last_resort = webhook.query_param("last_resort").as_deref() == Some("1");
    // `?transfer=1`: the dial was a node's transfer (screening or receptionist), so the caller
    // goes back to the AI at lead capture ("Sorry, nobody could take your call…").
    let after_failed_transfer = webhook.query_param("transfer").as_deref() == Some("1");
    let answer = if route.ai_enabled && !last_resort {
        ai_or_fallback(
            &state,
            snapshot,
            route,
            &webhook,
            &dial.call,
            NextStream {
                mode: CallMode::Receptionist,
                attempt: 1,
                tried: Vec::new(),
                owner_tried: true,
                after_failed_transfer,
            },
        )
    } else {
        answers::voicemail_or_goodbye(&state.config, route)
    };
    Ok(answer.into())
}

/// After `<Record>`: thank the caller and hang up (the recording itself arrives through the
/// recording status callback, which is forwarded to a node).
pub async fn voicemail_done(_webhook: TwilioWebhook) -> Twiml {
    goodbye(VOICEMAIL_THANKS).into()
}
