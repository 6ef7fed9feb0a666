//! Calls: the inbox list (filters, keyset pagination), the detail, and the caller actions
//! (block, mark known, delete). Every query carries the tenant scope in SQL, so another tenant's
//! id reads as "no such call" (404).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::IdPath;
use super::error::{ApiError, ApiResult};
use super::session::{Role, Session, audit};
use crate::server::AppState;

/// The columns of a `CallSummary`, over `calls c LEFT JOIN screening_results s`.
const SUMMARY_COLUMNS: &str = "c.id, c.call_sid, c.tenant_id, c.direction, c.from_number, \
     c.to_number, c.caller_name, c.started_at, c.ended_at, c.duration_s, c.mode, c.status, \
     c.outcome, s.label, s.intent, s.confidence, \
     EXISTS (SELECT 1 FROM recordings r WHERE r.call_id = c.id AND r.deleted_at IS NULL) AS has_recording, \
     EXISTS (SELECT 1 FROM leads l WHERE l.call_id = c.id) AS has_lead";

/// `CallSummary` of API.md.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallSummary {
    id: Uuid,
    call_sid: String,
    tenant_id: Uuid,
    direction: String,
    #[serde(rename = "from")]
    from_number: String,
    #[serde(rename = "to")]
    to_number: String,
    caller_name: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_s: Option<i32>,
    mode: String,
    status: String,
    outcome: Option<String>,
    label: Option<String>,
    intent: Option<String>,
    confidence: Option<f32>,
    #[sqlx(skip)]
    live: bool,
    has_recording: bool,
    has_lead: bool,
}

impl CallSummary {
    /// Whether the call has not ended yet.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The tenant owning the call.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// Twilio's `CA…` SID.
    pub fn call_sid(&self) -> &str {
        &self.call_sid
    }

    fn finish(mut self) -> Self {
        self.live = self.ended_at.is_none();
        if self.live {
            // API.md: duration and outcome are null while the call is live.
            self.duration_s = None;
        }
        self
    }
}

/// One call's summary within `scope` (None: every tenant).
pub async fn summary(
    pool: &PgPool,
    scope: Option<Uuid>,
    id: Uuid,
) -> Result<Option<CallSummary>, sqlx::Error> {
    let row: Option<CallSummary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls c LEFT JOIN screening_results s ON s.call_id = c.id
          WHERE c.id = $1 AND ($2::uuid IS NULL OR c.tenant_id = $2)"
    )))
    .bind(id)
    .bind(scope)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(CallSummary::finish))
}

/// Query of `GET /api/calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    label: Option<String>,
    mode: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    q: Option<String>,
    live: Option<bool>,
    cursor: Option<String>,
    limit: Option<i64>,
    #[allow(dead_code)] // read by the session extractor
    tenant_id: Option<String>,
}

const LABELS: &[&str] = &["legit", "marketing", "spam", "unknown"];
const MODES: &[&str] = &["screening", "receptionist", "forward"];
const OUTCOMES: &[&str] = &[
    "completed",
    "transferred",
    "message_taken",
    "rejected",
    "voicemail",
    "missed",
    "failed",
    "abandoned",
];

fn check_enum(name: &str, value: &str, allowed: &[&str]) -> ApiResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unknown {name} {value:?}; expected one of {}",
            allowed.join(", ")
        )))
    }
}

/// The opaque cursor: base64url of `started_at,id`.
fn encode_cursor(started_at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{},{id}",
        started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ))
}

fn decode_cursor(cursor: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once(',').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id))
}

/// Escapes `LIKE` wildcards in a user's prefix.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// `GET /api/calls`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let scope = session.scope()?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1–200"));
    }
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls c LEFT JOIN screening_results s ON s.call_id = c.id WHERE true"
    ));
    if let Some(tenant) = scope {
        sql.push(" AND c.tenant_id = ").push_bind(tenant);
    }
    if let Some(label) = &query.label {
        if label == "none" {
            sql.push(" AND s.id IS NULL");
        } else {
            check_enum("label", label, LABELS)?;
            sql.push(" AND s.label = ").push_bind(label.clone());
        }
    }
    if let Some(mode) = &query.mode {
        check_enum("mode", mode, MODES)?;
        sql.push(" AND c.mode = ").push_bind(mode.clone());
    }
    if let Some(outcome) = &query.outcome {
        check_enum("outcome", outcome, OUTCOMES)?;
        sql.push(" AND c.outcome = ").push_bind(outcome.clone());
    }
    if let Some(from) = query.from.as_deref().filter(|f| !f.is_empty()) {
        if let Some(prefix) = from.strip_suffix('*') {
            sql.push(" AND c.from_number LIKE ")
                .push_bind(like_prefix(prefix));
        } else {
            sql.push(" AND c.from_number = ").push_bind(from.to_owned());
        }
    }
    if let Some(since) = query.since {
        sql.push(" AND c.started_at >= ").push_bind(since);
    }
    if let Some(until) = query.until {
        sql.push(" AND c.started_at < ").push_bind(until);
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        sql.push(
            " AND (EXISTS (SELECT 1 FROM transcript_turns t WHERE t.call_id = c.id \
               AND t.text_search @@ websearch_to_tsquery('english', ",
        )
        .push_bind(q.to_owned())
        .push(")) OR s.intent ILIKE ")
        .push_bind(format!("%{}", like_prefix(q)))
        .push(" OR c.caller_name ILIKE ")
        .push_bind(format!("%{}", like_prefix(q)))
        .push(")");
    }
    match query.live {
        Some(true) => {
            sql.push(" AND c.ended_at IS NULL");
        }
        Some(false) => {
            sql.push(" AND c.ended_at IS NOT NULL");
        }
        None => {}
    }
    if let Some(cursor) = &query.cursor {
        let (at, id) = decode_cursor(cursor)?;
        sql.push(" AND (c.started_at, c.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    sql.push(" ORDER BY c.started_at DESC, c.id DESC LIMIT ")
        .push_bind(limit + 1);
    let mut items: Vec<CallSummary> = sql
        .build_query_as()
        .fetch_all(&state.pool)
        .await?
        .into_iter()
        .map(CallSummary::finish)
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|c| encode_cursor(c.started_at, c.id))
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `Turn` of API.md.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    seq: i32,
    speaker: String,
    text: String,
    at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    interrupted: bool,
    timings: Timings,
}

/// Per-turn timings (ms since the media stream started).
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    speech_end_ms: Option<i32>,
    stt_final_ms: Option<i32>,
    first_token_ms: Option<i32>,
    first_tts_byte_ms: Option<i32>,
    first_audio_frame_ms: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct TurnRow {
    seq: i32,
    speaker: String,
    text: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    interrupted: bool,
    speech_end_ms: Option<i32>,
    stt_final_ms: Option<i32>,
    first_token_ms: Option<i32>,
    first_tts_byte_ms: Option<i32>,
    first_audio_frame_ms: Option<i32>,
}

impl From<TurnRow> for Turn {
    fn from(r: TurnRow) -> Self {
        Turn {
            seq: r.seq,
            speaker: r.speaker,
            text: r.text,
            at: r.started_at,
            ended_at: r.ended_at,
            interrupted: r.interrupted,
            timings: Timings {
                speech_end_ms: r.speech_end_ms,
                stt_final_ms: r.stt_final_ms,
                first_token_ms: r.first_token_ms,
                first_tts_byte_ms: r.first_tts_byte_ms,
                first_audio_frame_ms: r.first_audio_frame_ms,
            },
        }
    }
}

const TURN_COLUMNS: &str = "seq, speaker, text, started_at, ended_at, interrupted, speech_end_ms, \
     stt_final_ms, first_token_ms, first_tts_byte_ms, first_audio_frame_ms";

/// One turn of a call (the caller already checked the call is in scope).
pub async fn turn(pool: &PgPool, call_id: Uuid, seq: i32) -> Result<Option<Turn>, sqlx::Error> {
    let row: Option<TurnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TURN_COLUMNS} FROM transcript_turns WHERE call_id = $1 AND seq = $2"
    )))
    .bind(call_id)
    .bind(seq)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Turn::from))
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    number_id: Option<Uuid>,
    forwarded_from: Option<String>,
    stir_verstat: Option<String>,
    node_id: Option<String>,
    region: Option<String>,
    answered_at: Option<DateTime<Utc>>,
    summary: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ScreeningRow {
    label: String,
    intent: String,
    confidence: f32,
    rationale: String,
    action: Option<String>,
}

#[derive(sqlx::FromRow, Serialize)]
struct RecordingRow {
    duration_s: Option<i32>,
    status: String,
}

#[derive(sqlx::FromRow, Serialize)]
struct LeadRow {
    id: Uuid,
    name: Option<String>,
    callback_number: Option<String>,
    reason: String,
    urgency: String,
    handled_at: Option<DateTime<Utc>>,
}

/// `Contact` of API.md.
#[derive(Debug, sqlx::FromRow, Serialize)]
pub struct Contact {
    id: Uuid,
    number: String,
    kind: String,
    name: Option<String>,
    note: Option<String>,
    created_at: DateTime<Utc>,
}

/// `GET /api/calls/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<Json<serde_json::Value>> {
    let scope = session.scope()?;
    let pool = &state.pool;
    let call = summary(pool, scope, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let extra: DetailRow = sqlx::query_as(
        "SELECT number_id, forwarded_from, stir_verstat, node_id, region, answered_at, summary
           FROM calls WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let screening: Option<ScreeningRow> = sqlx::query_as(
        "SELECT label, intent, confidence, rationale, action FROM screening_results WHERE call_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let turns: Vec<TurnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TURN_COLUMNS} FROM transcript_turns WHERE call_id = $1 ORDER BY seq"
    )))
    .bind(id)
    .fetch_all(pool)
    .await?;
    let recording: Option<RecordingRow> = sqlx::query_as(
        "SELECT duration_s, status FROM recordings WHERE call_id = $1 AND deleted_at IS NULL
          ORDER BY created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let lead: Option<LeadRow> = sqlx::query_as(
        "SELECT id, name, callback_number, reason, urgency, handled_at FROM leads
          WHERE call_id = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let contact: Option<Contact> = sqlx::query_as(
        "SELECT id, number, kind, name, note, created_at FROM contacts
          WHERE tenant_id = $1 AND number = $2",
    )
    .bind(call.tenant_id)
    .bind(&call.from_number)
    .fetch_optional(pool)
    .await?;
    let show_rationale = session.role != Role::Member;
    let mut body = serde_json::to_value(&call).map_err(ApiError::internal)?;
    let screening = screening.map(|s| {
        json!({
            "label": s.label, "intent": s.intent, "confidence": s.confidence,
            "rationale": show_rationale.then_some(s.rationale),
            "action": s.action,
        })
    });
    let recording = recording.map(|r| {
        json!({ "url": format!("/api/calls/{id}/recording"), "duration_s": r.duration_s, "status": r.status })
    });
    let contact = contact.map(|c| json!({ "id": c.id, "kind": c.kind, "name": c.name }));
    let turns: Vec<Turn> = turns.into_iter().map(Turn::from).collect();
    let extra = json!({
        "number_id": extra.number_id,
        "forwarded_from": extra.forwarded_from,
        "stir_verstat": extra.stir_verstat,
        "node_id": extra.node_id,
        "region": extra.region,
        "answered_at": extra.answered_at,
        "summary": extra.summary,
        "screening": screening,
        "transcript": turns,
        "recording": recording,
        "lead": lead,
        "contact": contact,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    Ok(Json(body))
}

/// Body of `block-caller`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    note: Option<String>,
}

/// Body of `mark-known`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownBody {
    name: Option<String>,
}

/// An optional JSON body: empty means the default.
fn optional_body<T: Default>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(err) => Err(err.into()),
    }
}

async fn upsert_contact(
    state: &AppState,
    session: &Session,
    id: Uuid,
    kind: &str,
    name: Option<String>,
    note: Option<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let call = summary(&state.pool, session.scope()?, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if shared::routing::normalize_e164(&call.from_number).as_deref() != Some(&call.from_number) {
        return Err(ApiError::invalid("from", "is not an E.164 number"));
    }
    let contact: Contact = sqlx::query_as(
        "INSERT INTO contacts (tenant_id, number, kind, name, note, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, number) DO UPDATE
            SET kind = EXCLUDED.kind,
                name = COALESCE(EXCLUDED.name, contacts.name),
                note = COALESCE(EXCLUDED.note, contacts.note)
         RETURNING id, number, kind, name, note, created_at",
    )
    .bind(call.tenant_id)
    .bind(&call.from_number)
    .bind(kind)
    .bind(name)
    .bind(note)
    .bind(session.user_id)
    .fetch_one(&state.pool)
    .await?;
    audit(
        &state.pool,
        session,
        Some(call.tenant_id),
        if kind == "block" {
            "call.block_caller"
        } else {
            "call.mark_known"
        },
        Some(format!("contact:{}", contact.id)),
        json!({ "call_id": id }),
    )
    .await;
    Ok(Json(json!({ "contact": contact })))
}

/// `POST /api/calls/{id}/block-caller`.
pub async fn block_caller(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<BlockBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let body = optional_body(body)?;
    upsert_contact(&state, &session, id, "block", None, body.note).await
}

/// `POST /api/calls/{id}/mark-known`.
pub async fn mark_known(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
    body: Result<Json<KnownBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let body = optional_body(body)?;
    upsert_contact(&state, &session, id, "allow", body.name, None).await
}

/// `DELETE /api/calls/{id}`: the call with its turns, events and screening (cascades). The
/// recording row loses its call (SET NULL) and the media is deleted at Twilio now, or by a
/// `recording.delete` job when Twilio cannot be reached.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    session.require_admin()?;
    let scope = session.scope()?;
    let mut tx = state.pool.begin().await?;
    let tenant: Option<Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM calls WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)",
    )
    .bind(id)
    .bind(scope)
    .fetch_optional(&mut *tx)
    .await?;
    let tenant = tenant.ok_or_else(ApiError::not_found)?;
    let recordings: Vec<String> = sqlx::query_scalar(
        "SELECT recording_sid FROM recordings WHERE call_id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM calls WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    for sid in &recordings {
        super::recording::delete_at_twilio(&state, tenant, sid).await;
    }
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "call.delete",
        Some(format!("call:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/contacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    kind: Option<String>,
    #[allow(dead_code)] // read by the session extractor
    tenant_id: Option<String>,
}

/// `GET /api/contacts`.
pub async fn contacts(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<ContactQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let tenant = session.tenant()?;
    if let Some(kind) = &query.kind {
        check_enum("kind", kind, &["allow", "block"])?;
    }
    let items: Vec<Contact> = sqlx::query_as(
        "SELECT id, number, kind, name, note, created_at FROM contacts
          WHERE tenant_id = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY created_at DESC",
    )
    .bind(tenant)
    .bind(query.kind)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /api/contacts/{id}`.
pub async fn delete_contact(
    State(state): State<AppState>,
    session: Session,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let tenant = session.admin_tenant()?;
    let done = sqlx::query("DELETE FROM contacts WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .execute(&state.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    audit(
        &state.pool,
        &session,
        Some(tenant),
        "contact.delete",
        Some(format!("contact:{id}")),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
