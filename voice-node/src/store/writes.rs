//! The rows a call writes, and their SQL. Every statement is idempotent: the write queue may
//! apply one twice (a connection lost after the commit, before the answer) and a re-flush after
//! an outage replays whatever was not confirmed.
//!
//! Children find their call by `call_sid` (`SELECT … FROM calls WHERE call_sid = $1`), never by
//! an id the node made up: the row may have been created first by a status callback on another
//! node, with its own id.

use chrono::{DateTime, Utc};
use shared::domain::{CallMode, CallOutcome};
use sqlx::PgConnection;

use crate::agent::{ScreeningAction, Speaker, TurnTimings};

/// One write a call asks for.
#[derive(Debug, Clone)]
pub enum Write {
    /// The stream started: create (or complete) the call row.
    CallStarted(CallStartedRow),
    /// Something worth keeping about the call (stream refused, barge-in, errors).
    Event(CallEventRow),
    /// A transcript turn, written when it is heard.
    Turn(TurnRow),
    /// An agent turn finished (played through or cut short by the caller).
    AgentTurnEnded {
        /// The call.
        call_sid: String,
        /// The turn.
        seq: u32,
        /// When playback ended.
        ended_at: DateTime<Utc>,
        /// The caller barged in.
        interrupted: bool,
    },
    /// The call's media ended.
    CallEnded(CallEndedRow),
    /// The screening verdict (one per call; a later one replaces it).
    Screening(ScreeningRow),
}

impl Write {
    /// Critical writes (the call, its turns, its end) are never shed when the queue is long;
    /// events may be.
    pub fn is_critical(&self) -> bool {
        !matches!(self, Write::Event(_))
    }
}

/// The call row as the media session knows it.
#[derive(Debug, Clone)]
pub struct CallStartedRow {
    /// Twilio's `CallSid`.
    pub call_sid: String,
    /// The tenant from the stream token (UUID text).
    pub tenant_id: String,
    /// The flow.
    pub mode: CallMode,
    /// Caller number if the edge passed it (`from` parameter), else empty: a status callback
    /// fills it in.
    pub from_number: String,
    /// Called number, likewise.
    pub to_number: String,
    /// This node.
    pub node_id: String,
    /// This node's region.
    pub region: String,
    /// When the stream started.
    pub at: DateTime<Utc>,
}

/// A `call_events` row recorded by the node.
#[derive(Debug, Clone)]
pub struct CallEventRow {
    /// The call.
    pub call_sid: String,
    /// `snake_case` kind.
    pub kind: &'static str,
    /// Details.
    pub payload: serde_json::Value,
    /// Unique per event (`node:CALLSID:N`), so a replay does not duplicate it.
    pub idempotency_key: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A `transcript_turns` row.
#[derive(Debug, Clone)]
pub struct TurnRow {
    /// The call.
    pub call_sid: String,
    /// Order within the call, assigned by the session.
    pub seq: u32,
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said.
    pub text: String,
    /// Start of the speech.
    pub started_at: DateTime<Utc>,
    /// End of the speech, when known.
    pub ended_at: Option<DateTime<Utc>>,
    /// Cut short by the caller.
    pub interrupted: bool,
    /// Pipeline timings, call-clock ms.
    pub timings: TurnTimings,
}

/// The end of the call's media.
#[derive(Debug, Clone)]
pub struct CallEndedRow {
    /// The call.
    pub call_sid: String,
    /// What came of it (the agent's verdict); `None` keeps what is there.
    pub outcome: Option<CallOutcome>,
    /// When the media ended.
    pub ended_at: DateTime<Utc>,
    /// Media duration in whole seconds.
    pub duration_s: u32,
    /// Whether the call itself is over (agent hung up, Twilio sent `stop`), so a status still
    /// `in_progress` becomes `completed` without waiting for Twilio's status callback.
    pub call_over: bool,
}

/// A `screening_results` row.
#[derive(Debug, Clone)]
pub struct ScreeningRow {
    /// The call.
    pub call_sid: String,
    /// The verdict.
    pub verdict: crate::agent::ScreeningVerdict,
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn opt_i32(v: Option<u32>) -> Option<i32> {
    v.map(to_i32)
}

/// Applies one write. Returns the rows affected (0 for a duplicate, or a child whose call row
/// does not exist).
pub async fn apply(conn: &mut PgConnection, write: &Write) -> Result<u64, sqlx::Error> {
    let result = match write {
        Write::CallStarted(row) => {
            sqlx::query(
                "INSERT INTO calls (call_sid, tenant_id, number_id, from_number, to_number, mode, \
                                    status, node_id, region, started_at, answered_at)
                 VALUES ($1, $2::uuid,
                         (SELECT id FROM phone_numbers WHERE e164 = $4 AND tenant_id = $2::uuid),
                         $3, $4, $5, 'in_progress', $6, $7, $8, $8)
                 ON CONFLICT (call_sid) DO UPDATE SET
                     node_id = EXCLUDED.node_id,
                     region = EXCLUDED.region,
                     from_number = CASE WHEN calls.from_number = '' THEN EXCLUDED.from_number
                                        ELSE calls.from_number END,
                     to_number = CASE WHEN calls.to_number = '' THEN EXCLUDED.to_number
                                      ELSE calls.to_number END,
                     answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at),
                     status = CASE WHEN calls.status IN ('queued', 'ringing') THEN 'in_progress'
                                   ELSE calls.status END",
            )
            .bind(&row.call_sid)
            .bind(&row.tenant_id)
            .bind(&row.from_number)
            .bind(&row.to_number)
            .bind(row.mode.as_str())
            .bind(&row.node_id)
            .bind(&row.region)
            .bind(row.at)
            .execute(&mut *conn)
            .await?
        }
        Write::Event(row) => {
            sqlx::query(
                "INSERT INTO call_events (tenant_id, call_id, kind, payload, idempotency_key, created_at)
                 SELECT c.tenant_id, c.id, $2, $3, $4, $5 FROM calls c WHERE c.call_sid = $1
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&row.call_sid)
            .bind(row.kind)
            .bind(&row.payload)
            .bind(&row.idempotency_key)
            .bind(row.at)
            .execute(&mut *conn)
            .await?
        }
        Write::Turn(row) => {
            sqlx::query(
                "INSERT INTO transcript_turns (tenant_id, call_id, seq, speaker, text, started_at,
                     ended_at, interrupted, speech_end_ms, stt_final_ms, first_token_ms,
                     first_tts_byte_ms, first_audio_frame_ms)
                 SELECT c.tenant_id, c.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
                 FROM calls c WHERE c.call_sid = $1
                 ON CONFLICT (call_id, seq) DO NOTHING",
            )
            .bind(&row.call_sid)
            .bind(to_i32(row.seq))
            .bind(row.speaker.as_str())
            .bind(&row.text)
            .bind(row.started_at)
            .bind(row.ended_at)
            .bind(row.interrupted)
            .bind(opt_i32(row.timings.speech_end_ms))
            .bind(opt_i32(row.timings.stt_final_ms))
            .bind(opt_i32(row.timings.first_token_ms))
            .bind(opt_i32(row.timings.first_tts_byte_ms))
            .bind(opt_i32(row.timings.first_audio_frame_ms))
            .execute(&mut *conn)
            .await?
        }
        Write::AgentTurnEnded {
            call_sid,
            seq,
            ended_at,
            interrupted,
        } => {
            sqlx::query(
                "UPDATE transcript_turns t
                 SET ended_at = GREATEST($3, t.started_at), interrupted = $4
                 FROM calls c
                 WHERE c.call_sid = $1 AND t.call_id = c.id AND t.seq = $2",
            )
            .bind(call_sid)
            .bind(to_i32(*seq))
            .bind(ended_at)
            .bind(interrupted)
            .execute(&mut *conn)
            .await?
        }
        Write::CallEnded(row) => {
            sqlx::query(
                "UPDATE calls SET
                     outcome = COALESCE($2, outcome),
                     ended_at = COALESCE(ended_at, GREATEST($3, started_at)),
                     duration_s = COALESCE(duration_s, $4),
                     status = CASE WHEN $5 AND status IN ('queued', 'ringing', 'in_progress')
                                   THEN 'completed' ELSE status END
                 WHERE call_sid = $1",
            )
            .bind(&row.call_sid)
            .bind(row.outcome.map(CallOutcome::as_str))
            .bind(row.ended_at)
            .bind(to_i32(row.duration_s))
            .bind(row.call_over)
            .execute(&mut *conn)
            .await?
        }
        Write::Screening(row) => {
            let v = &row.verdict;
            sqlx::query(
                "INSERT INTO screening_results (tenant_id, call_id, label, intent, confidence,
                                                rationale, action)
                 SELECT c.tenant_id, c.id, $2, $3, $4, $5, $6 FROM calls c WHERE c.call_sid = $1
                 ON CONFLICT (call_id) DO UPDATE SET
                     label = EXCLUDED.label, intent = EXCLUDED.intent,
                     confidence = EXCLUDED.confidence, rationale = EXCLUDED.rationale,
                     action = EXCLUDED.action",
            )
            .bind(&row.call_sid)
            .bind(v.label.as_str())
            .bind(&v.intent)
            .bind(v.confidence.clamp(0.0, 1.0))
            .bind(&v.rationale)
            .bind(v.action.map(ScreeningAction::as_str))
            .execute(&mut *conn)
            .await?
        }
    };
    Ok(result.rows_affected())
}
