//! Forwarded Twilio callbacks (`POST /internal/events`), applied once each.
//!
//! Each event is applied in one transaction together with its proof of application: a
//! `call_events` row (or, for SMS, an `sms_messages` row; for the owner's texts, the queued
//! `sms_send` job keyed on the MessageSid: see [`crate::sms`]) carrying the event's idempotency key.
//! When that insert finds the key already there, the transaction is rolled back and the event
//! reported as a duplicate, so a callback retried by Twilio, or offered by the edge to two nodes,
//! has exactly one effect.
//!
//! Status callbacks may arrive before the media stream (or for calls that never stream:
//! forward mode), so they and dial results create the call row from the called number's route
//! when it does not exist yet.

use chrono::{DateTime, Utc};
use serde_json::json;
use shared::forwarded::{EventKind, ForwardedEvent};
use shared::routing::normalize_e164;
use shared::webhook::{
    CallParams, CallStatus, CallStatusCallback, DialActionRequest, DialCallStatus, FromForm,
    IncomingSms, RecordingStatus, RecordingStatusCallback, SmsStatusCallback, StreamStatusCallback,
};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Its effect is now in the database.
    Applied,
    /// It had been applied before; nothing changed.
    Duplicate,
    /// Nothing to apply it to (unknown number or call); acknowledged so nobody retries.
    Ignored(&'static str),
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The fields do not make the callback its kind says (400: retrying will not help).
    #[error("malformed {kind} callback: {detail}")]
    Malformed {
        /// The event kind.
        kind: EventKind,
        /// What was wrong.
        detail: String,
    },
    /// The database failed (503: the edge or Twilio retries).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn parse<T: FromForm>(event: &ForwardedEvent) -> Result<T, CallbackError> {
    T::from_form(&event.form()).map_err(|e| CallbackError::Malformed {
        kind: event.kind,
        detail: e.to_string(),
    })
}

fn received_at(event: &ForwardedEvent) -> DateTime<Utc> {
    i64::try_from(event.received_at)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(Utc::now)
}

/// The fields as a JSON object for `call_events.payload` (repeated keys keep the last value).
fn fields_json(event: &ForwardedEvent) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = event
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map)
}

/// Applies `event` once; see the module docs.
pub async fn apply(pool: &PgPool, event: &ForwardedEvent) -> Result<Applied, CallbackError> {
    // Parse before touching the database: a malformed event is a 400 even when the DB is down.
    enum Parsed {
        Status(CallStatusCallback),
        Stream(StreamStatusCallback),
        Recording(RecordingStatusCallback),
        Sms(IncomingSms),
        Dial(DialActionRequest),
        SmsStatus(SmsStatusCallback),
    }
    let parsed = match event.kind {
        EventKind::CallStatus => Parsed::Status(parse(event)?),
        EventKind::StreamStatus => Parsed::Stream(parse(event)?),
        EventKind::Recording => Parsed::Recording(parse(event)?),
        EventKind::Sms => Parsed::Sms(parse(event)?),
        EventKind::DialResult => Parsed::Dial(parse(event)?),
        EventKind::SmsStatus => Parsed::SmsStatus(parse(event)?),
    };
    let mut tx = pool.begin().await?;
    let applied = match &parsed {
        Parsed::Status(cb) => call_status(&mut tx, event, cb).await?,
        Parsed::Stream(cb) => stream_status(&mut tx, event, cb).await?,
        Parsed::Recording(cb) => recording(&mut tx, event, cb).await?,
        Parsed::Sms(sms) => incoming_sms(&mut tx, event, sms).await?,
        Parsed::Dial(dial) => dial_result(&mut tx, event, dial).await?,
        Parsed::SmsStatus(cb) => sms_status(&mut tx, cb).await?,
    };
    if applied == Applied::Applied {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(applied)
}

/// A call row, found or created.
struct CallRef {
    id: Uuid,
    tenant_id: Uuid,
}

async fn find_call(
    tx: &mut Transaction<'_, Postgres>,
    call_sid: &str,
) -> Result<Option<CallRef>, sqlx::Error> {
    let row = sqlx::query("SELECT id, tenant_id FROM calls WHERE call_sid = $1")
        .bind(call_sid)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| CallRef {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
    }))
}

/// Finds the call, or creates it from the called number's route (tenant, number, mode).
/// `None` when the call is unknown and so is the number.
async fn ensure_call(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    call: &CallParams,
    started_at: DateTime<Utc>,
) -> Result<Option<CallRef>, sqlx::Error> {
    if let Some(found) = find_call(tx, &call.call_sid).await? {
        // Fill what the media session could not know.
        sqlx::query(
            "UPDATE calls SET
                 from_number = CASE WHEN from_number = '' THEN $2 ELSE from_number END,
                 to_number = CASE WHEN to_number = '' THEN $3 ELSE to_number END,
                 number_id = COALESCE(number_id,
                     (SELECT id FROM phone_numbers WHERE e164 = $3 AND tenant_id = calls.tenant_id)),
                 stir_verstat = COALESCE(stir_verstat, $4),
                 caller_name = COALESCE(caller_name, $5),
                 forwarded_from = COALESCE(forwarded_from, $6)
             WHERE id = $1",
        )
        .bind(found.id)
        .bind(&call.from)
        .bind(&call.to)
        .bind(call.stir_verstat.as_ref().map(|s| s.as_str().to_owned()))
        .bind(&call.caller_name)
        .bind(&call.forwarded_from)
        .execute(&mut **tx)
        .await?;
        return Ok(Some(found));
    }
    let to = normalize_e164(&call.to).unwrap_or_else(|| call.to.clone());
    let route = sqlx::query("SELECT id, tenant_id, mode FROM phone_numbers WHERE e164 = $1")
        .bind(&to)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(route) = route else {
        return Ok(None);
    };
    let tenant_id: Uuid = route.get("tenant_id");
    if let Some(claimed) = &event.tenant_id
        && claimed.parse::<Uuid>().ok() != Some(tenant_id)
    {
        tracing::warn!(call_sid = %call.call_sid, "forwarded event's tenant differs from the number's owner; using the number's");
    }
    let direction = match call.direction.as_ref().map(|d| d.as_str()) {
        Some(d) if d.starts_with("outbound") => "outbound",
        _ => "inbound",
    };
    let row = sqlx::query(
        "INSERT INTO calls (call_sid, tenant_id, number_id, from_number, to_number, direction, mode,
                            status, stir_verstat, caller_name, forwarded_from, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'ringing', $8, $9, $10, $11)
         ON CONFLICT (call_sid) DO UPDATE SET updated_at = now()
         RETURNING id, tenant_id",
    )
    .bind(&call.call_sid)
    .bind(tenant_id)
    .bind(route.get::<Uuid, _>("id"))
    .bind(&call.from)
    .bind(&to)
    .bind(direction)
    .bind(route.get::<String, _>("mode"))
    .bind(call.stir_verstat.as_ref().map(|s| s.as_str().to_owned()))
    .bind(&call.caller_name)
    .bind(&call.forwarded_from)
    .bind(started_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(CallRef {
        id: row.get("id"),
        tenant_id: row.get("tenant_id"),
    }))
}

/// Records the event on the call; `false` when its key was already there.
async fn record_event(
    tx: &mut Transaction<'_, Postgres>,
    call: &CallRef,
    kind: &str,
    payload: serde_json::Value,
    event: &ForwardedEvent,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO call_events (tenant_id, call_id, kind, payload, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(call.tenant_id)
    .bind(call.id)
    .bind(kind)
    .bind(payload)
    .bind(&event.idempotency_key)
    .bind(received_at(event))
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Twilio's call status in the schema's spelling; `None` for statuses we do not store.
fn status_column(status: &CallStatus) -> Option<&'static str> {
    Some(match status {
        CallStatus::Queued | CallStatus::Initiated => "queued",
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "in_progress",
        CallStatus::Completed => "completed",
        CallStatus::Busy => "busy",
        CallStatus::Failed => "failed",
        CallStatus::NoAnswer => "no_answer",
        CallStatus::Canceled => "canceled",
        CallStatus::Other(_) => return None,
    })
}

async fn call_status(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    cb: &CallStatusCallback,
) -> Result<Applied, sqlx::Error> {
    let at = received_at(event);
    let started_at = at - chrono::Duration::seconds(i64::from(cb.call_duration.unwrap_or(0)));
    let Some(call) = ensure_call(tx, event, &cb.call, started_at).await? else {
        return Ok(Applied::Ignored("unknown call and number"));
    };
    if !record_event(tx, &call, "call_status", fields_json(event), event).await? {
        return Ok(Applied::Duplicate);
    }
    let Some(status) = status_column(&cb.call.call_status) else {
        return Ok(Applied::Applied);
    };
    let terminal = matches!(
        status,
        "completed" | "busy" | "failed" | "no_answer" | "canceled"
    );
    // Callbacks may arrive out of order: a final status is never replaced by an earlier one.
    sqlx::query(
        "UPDATE calls SET
             status = CASE WHEN status IN ('completed', 'busy', 'failed', 'no_answer', 'canceled')
                           THEN status ELSE $2 END,
             answered_at = CASE WHEN $2 = 'in_progress'
                                THEN COALESCE(answered_at, GREATEST($3, started_at)) ELSE answered_at END,
             ended_at = CASE WHEN $4 THEN COALESCE(ended_at, GREATEST($3, started_at)) ELSE ended_at END,
             duration_s = CASE WHEN $4 THEN COALESCE($5, duration_s) ELSE duration_s END,
             outcome = CASE WHEN NOT $4 OR outcome IS NOT NULL THEN outcome
                            WHEN $2 IN ('busy', 'no_answer', 'canceled') THEN 'missed'
                            WHEN $2 = 'failed' THEN 'failed'
                            ELSE 'completed' END
         WHERE id = $1",
    )
    .bind(call.id)
    .bind(status)
    .bind(at)
    .bind(terminal)
    .bind(cb.call_duration.map(|d| i32::try_from(d).unwrap_or(i32::MAX)))
    .execute(&mut **tx)
    .await?;
    if status == "completed" {
        // Receptionist calls get a post-call summary and e-mail (`crate::jobs::summary`), once the
        // transcript's last writes (the node's write queue) have had time to land.
        let mode: String = sqlx::query_scalar("SELECT mode FROM calls WHERE id = $1")
            .bind(call.id)
            .fetch_one(&mut **tx)
            .await?;
        if mode == "receptionist" {
            let run_at = at + chrono::Duration::seconds(30);
            crate::jobs::queue::enqueue(
                &mut **tx,
                &crate::jobs::summary::job(call.tenant_id, call.id, run_at),
            )
            .await?;
        }
    }
    Ok(Applied::Applied)
}

async fn stream_status(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    cb: &StreamStatusCallback,
) -> Result<Applied, sqlx::Error> {
    // The stream's call row is written by the session at `start`; a status for a call we have
    // never heard of has nothing to attach to (its mode is unknown, so no row can be made).
    let Some(call) = find_call(tx, &cb.call_sid).await? else {
        return Ok(Applied::Ignored("unknown call"));
    };
    let payload = json!({
        "stream_sid": cb.stream_sid,
        "event": cb.stream_event.as_str(),
        "error": cb.stream_error,
    });
    if record_event(tx, &call, "stream_status", payload, event).await? {
        Ok(Applied::Applied)
    } else {
        Ok(Applied::Duplicate)
    }
}

/// Twilio's recording status in the schema's spelling.
fn recording_status(status: &RecordingStatus) -> Option<&'static str> {
    Some(match status {
        RecordingStatus::InProgress => "in_progress",
        RecordingStatus::Completed => "completed",
        RecordingStatus::Absent => "absent",
        RecordingStatus::Failed => "failed",
        RecordingStatus::Other(other) => match other.as_str() {
            "paused" => "paused",
            "stopped" => "stopped",
            "processing" => "processing",
            _ => return None,
        },
    })
}

async fn recording(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    cb: &RecordingStatusCallback,
) -> Result<Applied, sqlx::Error> {
    let call = find_call(tx, &cb.call_sid).await?;
    let tenant_id = match (
        &call,
        event
            .tenant_id
            .as_deref()
            .and_then(|t| t.parse::<Uuid>().ok()),
    ) {
        (Some(call), _) => call.tenant_id,
        (None, Some(tenant)) => tenant,
        (None, None) => return Ok(Applied::Ignored("unknown call and tenant")),
    };
    if let Some(call) = &call {
        let payload = json!({
            "recording_sid": cb.recording_sid,
            "status": cb.recording_status.as_str(),
            "duration_s": cb.recording_duration,
        });
        if !record_event(tx, call, "recording", payload, event).await? {
            return Ok(Applied::Duplicate);
        }
    }
    let Some(status) = recording_status(&cb.recording_status) else {
        return Ok(Applied::Ignored("unknown recording status"));
    };
    // Keyed on the RecordingSid: a replay writes the same values again (one effect).
    sqlx::query(
        "INSERT INTO recordings (recording_sid, tenant_id, call_id, url, duration_s, status)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (recording_sid) DO UPDATE SET
             status = EXCLUDED.status,
             url = COALESCE(EXCLUDED.url, recordings.url),
             duration_s = COALESCE(EXCLUDED.duration_s, recordings.duration_s),
             call_id = COALESCE(recordings.call_id, EXCLUDED.call_id)",
    )
    .bind(&cb.recording_sid)
    .bind(tenant_id)
    .bind(call.as_ref().map(|c| c.id))
    .bind(&cb.recording_url)
    .bind(
        cb.recording_duration
            .map(|d| i32::try_from(d).unwrap_or(i32::MAX)),
    )
    .bind(status)
    .execute(&mut **tx)
    .await?;
    Ok(Applied::Applied)
}

async fn incoming_sms(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    sms: &IncomingSms,
) -> Result<Applied, sqlx::Error> {
    let to = normalize_e164(&sms.to).unwrap_or_else(|| sms.to.clone());
    let Some(number) =
        sqlx::query("SELECT id, tenant_id, owner_phone FROM phone_numbers WHERE e164 = $1")
            .bind(&to)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(Applied::Ignored("unknown number"));
    };
    let Some(from) = normalize_e164(&sms.from) else {
        return Ok(Applied::Ignored("sender is not a phone number"));
    };
    let owner_phone: Option<String> = number.get("owner_phone");
    // Thread, message, relay to the owner and the AI's takeover timer: `crate::sms`.
    let inbound = crate::sms::Inbound {
        tenant_id: number.get("tenant_id"),
        number_id: number.get("id"),
        number: &to,
        owner_phone: owner_phone.as_deref(),
        from: &from,
        body: &sms.body,
        message_sid: &sms.message_sid,
        idempotency_key: &event.idempotency_key,
        at: received_at(event),
    };
    if crate::sms::on_inbound(tx, &inbound).await? {
        Ok(Applied::Applied)
    } else {
        Ok(Applied::Duplicate)
    }
}

async fn dial_result(
    tx: &mut Transaction<'_, Postgres>,
    event: &ForwardedEvent,
    dial: &DialActionRequest,
) -> Result<Applied, sqlx::Error> {
    let Some(call) = ensure_call(tx, event, &dial.call, received_at(event)).await? else {
        return Ok(Applied::Ignored("unknown call and number"));
    };
    let payload = json!({
        "dial_call_status": dial.dial_call_status.as_str(),
        "dial_call_sid": dial.dial_call_sid,
        "dial_call_duration": dial.dial_call_duration,
    });
    if !record_event(tx, &call, "dial_result", payload, event).await? {
        return Ok(Applied::Duplicate);
    }
    let missed = matches!(
        dial.dial_call_status,
        DialCallStatus::NoAnswer
            | DialCallStatus::Busy
            | DialCallStatus::Failed
            | DialCallStatus::Canceled
    );
    sqlx::query("UPDATE calls SET outcome = COALESCE(outcome, $2) WHERE id = $1")
        .bind(call.id)
        .bind(if missed { "missed" } else { "transferred" })
        .execute(&mut **tx)
        .await?;
    // A node's own transfer (screening or receptionist) that nobody answered sends the caller
    // back to the AI for their details: no "sorry we missed you" text on top of that.
    let node_transfer: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM call_events WHERE call_id = $1 AND kind = 'transfer_started')",
    )
    .bind(call.id)
    .fetch_one(&mut **tx)
    .await?;
    if missed
        && !node_transfer
        && let Some(caller) = normalize_e164(&dial.call.from)
    {
        // The text-back itself is the flows issue's job worker; the key makes it one job per call.
        sqlx::query(
            "INSERT INTO jobs (tenant_id, kind, payload, idempotency_key)
             VALUES ($1, 'text_back', $2, $3)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(call.tenant_id)
        .bind(json!({
            "call_id": call.id,
            "call_sid": dial.call.call_sid,
            "caller": caller,
            "number": normalize_e164(&dial.call.to).unwrap_or_else(|| dial.call.to.clone()),
            "dial_call_status": dial.dial_call_status.as_str(),
        }))
        .bind(format!("text_back:{}", dial.call.call_sid))
        .execute(&mut **tx)
        .await?;
    }
    Ok(Applied::Applied)
}

/// How far along its delivery a message status is: Twilio's reports may arrive out of order or
/// twice, and a status only ever replaces an earlier one (`sent` never undoes `delivered`).
/// `None` for statuses the schema does not know.
fn message_status_rank(status: &str) -> Option<(&'static str, i32)> {
    Some(match status {
        "accepted" => ("accepted", 1),
        "scheduled" => ("scheduled", 2),
        "queued" => ("queued", 3),
        "sending" => ("sending", 4),
        "sent" => ("sent", 5),
        "delivered" => ("delivered", 6),
        "undelivered" => ("undelivered", 6),
        "failed" => ("failed", 6),
        "canceled" => ("canceled", 6),
        "read" => ("read", 7),
        _ => return None,
    })
}

/// An outbound message's delivery status (its `StatusCallback`): moves `sms_messages.status`
/// forward, never back; a repeat or a late earlier status changes nothing.
async fn sms_status(
    tx: &mut Transaction<'_, Postgres>,
    cb: &SmsStatusCallback,
) -> Result<Applied, sqlx::Error> {
    let Some((status, rank)) = message_status_rank(&cb.message_status) else {
        return Ok(Applied::Ignored("unknown message status"));
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms_messages WHERE message_sid = $1)")
            .bind(&cb.message_sid)
            .fetch_one(&mut **tx)
            .await?;
    if !exists {
        return Ok(Applied::Ignored("unknown message"));
    }
    let updated = sqlx::query(
        "UPDATE sms_messages SET
             status = $2,
             sent_at = CASE WHEN $2 IN ('sent', 'delivered', 'read') THEN COALESCE(sent_at, now())
                            ELSE sent_at END
         WHERE message_sid = $1
           AND (CASE status
                    WHEN 'accepted' THEN 1 WHEN 'scheduled' THEN 2 WHEN 'queued' THEN 3
                    WHEN 'sending' THEN 4 WHEN 'sent' THEN 5 WHEN 'read' THEN 7
                    WHEN 'delivered' THEN 6 WHEN 'undelivered' THEN 6 WHEN 'failed' THEN 6
                    WHEN 'canceled' THEN 6 ELSE 0 END) < $3",
    )
    .bind(&cb.message_sid)
    .bind(status)
    .bind(rank)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(Applied::Duplicate);
    }
    if let Some(code) = cb.error_code {
        tracing::info!(message_sid = %cb.message_sid, status, error_code = code, "SMS not delivered");
    }
    Ok(Applied::Applied)
}
