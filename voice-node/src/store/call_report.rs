//! One call as `voice-node simulate` prints it: `GET /internal/calls/{call_sid}`.

use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// A transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportTurn {
    /// `caller`, `agent` or `owner`.
    pub speaker: String,
    /// What was said.
    pub text: String,
}

/// The screening verdict, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportScreening {
    /// `legit`, `marketing`, `spam` or `unknown`.
    pub label: String,
    /// One-line intent.
    pub intent: String,
    /// 0–1.
    pub confidence: f32,
}

/// The contract's simulator result shape (contract.md, `simulate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport {
    /// Twilio's `CallSid`.
    pub call_sid: String,
    /// The flow that ran.
    pub mode: String,
    /// What came of the call; `null` while live.
    pub outcome: Option<String>,
    /// Twilio's last status.
    pub status: String,
    /// Every turn, in order.
    pub transcript: Vec<ReportTurn>,
    /// The screening verdict, if any.
    pub screening: Option<ReportScreening>,
    /// Per agent reply: end of caller speech to first audio frame sent, ms.
    pub turn_latency_ms: Vec<u32>,
    /// Problems the node recorded for this call (`session_error` events).
    pub errors: Vec<String>,
}

/// Reads the report for `call_sid`; `None` when the call is unknown.
pub async fn load(pool: &PgPool, call_sid: &str) -> Result<Option<CallReport>, sqlx::Error> {
    let Some(call) =
        sqlx::query("SELECT id, call_sid, mode, outcome, status FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let call_id: Uuid = call.get("id");
    let turns = sqlx::query(
        "SELECT speaker, text, speech_end_ms, first_audio_frame_ms
         FROM transcript_turns WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call_id)
    .fetch_all(pool)
    .await?;
    let mut transcript = Vec::with_capacity(turns.len());
    let mut turn_latency_ms = Vec::new();
    for turn in &turns {
        let speaker: String = turn.get("speaker");
        if speaker == "agent"
            && let (Some(end), Some(first)) = (
                turn.get::<Option<i32>, _>("speech_end_ms"),
                turn.get::<Option<i32>, _>("first_audio_frame_ms"),
            )
        {
            turn_latency_ms.push(u32::try_from(first - end).unwrap_or(0));
        }
        transcript.push(ReportTurn {
            speaker,
            text: turn.get("text"),
        });
    }
    let screening =
        sqlx::query("SELECT label, intent, confidence FROM screening_results WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(pool)
            .await?
            .map(|r| ReportScreening {
                label: r.get("label"),
                intent: r.get("intent"),
                confidence: r.get("confidence"),
            });
    let errors = sqlx::query_scalar::<_, Option<String>>(
        "SELECT payload->>'message' FROM call_events
         WHERE call_id = $1 AND kind = 'session_error' ORDER BY created_at",
    )
    .bind(call_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .flatten()
    .collect();
    Ok(Some(CallReport {
        call_sid: call.get("call_sid"),
        mode: call.get("mode"),
        outcome: call.get("outcome"),
        status: call.get("status"),
        transcript,
        screening,
        turn_latency_ms,
        errors,
    }))
}
