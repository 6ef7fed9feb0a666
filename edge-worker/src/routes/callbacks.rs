//! Callbacks that only inform: call status, stream status, recording status and incoming SMS.
//! Each is checked, parsed (so a malformed one is a 400 here, not a surprise at the node), and
//! forwarded to a node as a signed `shared::forwarded::ForwardedEvent`.
//!
//! The edge answers only after a node accepted the event, and 503 when none did: an
//! acknowledged-but-dropped callback would be lost silently, while a 503 is visible in Twilio's
//! debugger and retried when the callback URL asks for retries.

use axum::extract::State;
use axum::http::StatusCode;
use shared::form::Form;
use shared::forwarded::{EventKind, ForwardedEvent, idempotency_key};
use shared::routing::{NumberRoute, RoutingSnapshot};
use shared::twiml::MessagingResponse;
use shared::webhook::{
    CallStatusCallback, FromForm, IncomingSms, RecordingStatusCallback, SmsStatusCallback,
    StreamStatusCallback,
};

use crate::answers::Twiml;
use crate::error::EdgeError;
use crate::platform::Background;
use crate::snapshot::SnapshotCache;
use crate::verify::TwilioWebhook;
use crate::{AppState, forward, nodes};

/// `POST /telephony/status` → 204 once a node has it.
pub async fn call_status(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<StatusCode, EdgeError> {
    forward_callback::<CallStatusCallback>(&state, &background, &webhook, EventKind::CallStatus)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /telephony/stream-status` → 204 once a node has it.
pub async fn stream_status(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<StatusCode, EdgeError> {
    forward_callback::<StreamStatusCallback>(
        &state,
        &background,
        &webhook,
        EventKind::StreamStatus,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /telephony/recording` → 204 once a node has it.
pub async fn recording(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<StatusCode, EdgeError> {
    forward_callback::<RecordingStatusCallback>(
        &state,
        &background,
        &webhook,
        EventKind::Recording,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sms/inbound` → an empty messaging `<Response/>` once a node has it (the node replies,
/// if at all, over the REST API: relaying the owner's answer can take minutes).
pub async fn sms_inbound(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<Twiml, EdgeError> {
    forward_callback::<IncomingSms>(&state, &background, &webhook, EventKind::Sms).await?;
    Ok(Twiml(MessagingResponse::new().to_xml()))
}

/// `POST /sms/status` → 204 once a node has recorded the outbound message's delivery status.
pub async fn sms_status(
    State(state): State<AppState>,
    background: Background,
    webhook: TwilioWebhook,
) -> Result<StatusCode, EdgeError> {
    forward_callback::<SmsStatusCallback>(&state, &background, &webhook, EventKind::SmsStatus)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parse (for the 400), wrap, deliver.
async fn forward_callback<T: FromForm>(
    state: &AppState,
    background: &Background,
    webhook: &TwilioWebhook,
    kind: EventKind,
) -> Result<String, EdgeError> {
    let _: T = webhook.parse()?;
    let view = SnapshotCache::current(state, background).await;
    let route = tenant_number(&view.snapshot, &webhook.form);
    let event = ForwardedEvent::new(
        kind,
        idempotency_key(
            kind,
            webhook.idempotency_token.as_deref(),
            &webhook.raw_body,
        ),
        state.clock.now_s(),
        &webhook.form,
    )
    .with_tenant(route.map(|r| r.tenant_id.clone()));
    let targets = nodes::for_event(
        &view.snapshot,
        route,
        webhook,
        state.config.node_stale_after_s,
        state.config.forward_attempts,
    );
    Ok(forward::deliver(state, &targets, &event).await?)
}

/// The tenant's number in a callback: the called number as for calls, else `From` (an SMS
/// or call leg placed from the tenant's number).
fn tenant_number<'s>(snapshot: &'s RoutingSnapshot, form: &Form) -> Option<&'s NumberRoute> {
    super::called_number(snapshot, form).or_else(|| {
        form.get("From")
            .and_then(|from| snapshot.lookup_number(from))
    })
}
