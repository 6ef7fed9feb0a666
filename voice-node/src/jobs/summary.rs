//! The `call_summary` job: after a call, an offline extractive summary of its transcript into
//! `calls.summary`, then an e-mail with the summary, the transcript and any lead to each of the
//! tenant's admins ([`super::email`], once per call and admin).
//!
//! Extractive: the caller's sentences are scored by how frequent their content words are across
//! the whole conversation (per word, so long sentences do not win by length), and the best three
//! are kept in the order they were said. An LLM summary can replace [`extractive_summary`] later.

use std::collections::HashMap;
use std::fmt::Write as _;

use sqlx::Row;
use uuid::Uuid;

use super::email::{EmailDelivery, OutboundEmail, deliver_email};
use super::{Job, JobContext, JobError, NewJob, field};

/// The job kind.
pub const KIND: &str = "call_summary";

/// The job for `call_id`, keyed so a call gets one; due at `run_at` (after the transcript's last
/// writes had time to land).
pub fn job(tenant_id: Uuid, call_id: Uuid, run_at: chrono::DateTime<chrono::Utc>) -> NewJob {
    NewJob::new(KIND, serde_json::json!({ "call_id": call_id }))
        .tenant(tenant_id)
        .key(format!("summary:{call_id}"))
        .run_at(run_at)
}

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "are", "was", "were", "that", "this", "with", "have",
    "has", "just", "about", "what", "when", "can", "could", "would", "will", "there", "from",
    "they", "them", "then", "than", "but", "not", "yes", "yeah", "okay", "hello", "thanks",
    "thank", "please", "its", "it's", "i'm", "i'd", "i'll", "our", "out", "get", "got", "like",
    "know", "want",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(str::to_lowercase)
        .filter(|w| w.len() >= 3 && !STOPWORDS.contains(&w.as_str()))
}

/// The best `max` caller sentences of `turns` (`(speaker, text)` in order), in spoken order.
pub fn extractive_summary(turns: &[(String, String)], max: usize) -> String {
    let mut frequency: HashMap<String, f64> = HashMap::new();
    for (_, text) in turns {
        for w in words(text) {
            *frequency.entry(w).or_default() += 1.0;
        }
    }
    let sentences: Vec<&str> = turns
        .iter()
        .filter(|(speaker, _)| speaker == "caller")
        .flat_map(|(_, text)| text.split_inclusive(['.', '?', '!']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut scored: Vec<(usize, f64)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ws: Vec<String> = words(s).collect();
            let total: f64 = ws.iter().map(|w| frequency[w]).sum();
            #[allow(clippy::cast_precision_loss)]
            let score = if ws.is_empty() {
                0.0
            } else {
                total / (ws.len() as f64).sqrt()
            };
            (i, score)
        })
        .filter(|(_, score)| *score > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(max);
    scored.sort_by_key(|(i, _)| *i);
    scored
        .iter()
        .map(|(i, _)| sentences[*i])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the job; see the module docs.
pub async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let call_id: Uuid = field(job, "call_id")?;
    let Some(call) = sqlx::query(
        "SELECT c.tenant_id, c.from_number, c.to_number, c.mode, c.started_at, c.duration_s,
                c.outcome, t.name
         FROM calls c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = $1",
    )
    .bind(call_id)
    .fetch_optional(&ctx.pool)
    .await?
    else {
        return Ok(()); // deleted meanwhile
    };
    let tenant_id: Uuid = call.get("tenant_id");
    let turns: Vec<(String, String)> = sqlx::query_as(
        "SELECT speaker, text FROM transcript_turns WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call_id)
    .fetch_all(&ctx.pool)
    .await?;
    let summary = extractive_summary(&turns, 3);
    let summary = if summary.is_empty() {
        "No caller speech was transcribed.".to_owned()
    } else {
        format!("Caller: {summary}")
    };
    sqlx::query("UPDATE calls SET summary = $2 WHERE id = $1")
        .bind(call_id)
        .bind(&summary)
        .execute(&ctx.pool)
        .await?;

    let lead = sqlx::query(
        "SELECT name, callback_number, reason, urgency FROM leads WHERE call_id = $1
         ORDER BY created_at LIMIT 1",
    )
    .bind(call_id)
    .fetch_optional(&ctx.pool)
    .await?;
    let from: String = call.get("from_number");
    let started: chrono::DateTime<chrono::Utc> = call.get("started_at");
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Call from {from} to {} ({} mode) at {} UTC, {} s, outcome: {}.\n",
        call.get::<String, _>("to_number"),
        call.get::<String, _>("mode"),
        started.format("%Y-%m-%d %H:%M"),
        call.get::<Option<i32>, _>("duration_s").unwrap_or(0),
        call.get::<Option<String>, _>("outcome")
            .unwrap_or_else(|| "unknown".into()),
    );
    let _ = writeln!(body, "Summary: {summary}\n");
    if let Some(lead) = &lead {
        let _ = writeln!(
            body,
            "Lead: {} — call back {} — {} (urgency {})\n",
            lead.get::<Option<String>, _>("name")
                .unwrap_or_else(|| "(no name)".into()),
            lead.get::<Option<String>, _>("callback_number")
                .unwrap_or_else(|| from.clone()),
            lead.get::<String, _>("reason"),
            lead.get::<String, _>("urgency"),
        );
    }
    let _ = writeln!(body, "Transcript:");
    for (speaker, text) in &turns {
        let _ = writeln!(body, "  {speaker}: {text}");
    }
    let admins: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, email FROM users
         WHERE tenant_id = $1 AND role = 'admin' AND disabled_at IS NULL ORDER BY created_at",
    )
    .bind(tenant_id)
    .fetch_all(&ctx.pool)
    .await?;
    let subject = format!(
        "{}: call from {}",
        call.get::<String, _>("name"),
        crate::config::mask_phone(&from)
    );
    for (user_id, email) in admins {
        let mail = OutboundEmail {
            tenant_id,
            to: email,
            subject: subject.clone(),
            body: body.clone(),
            idempotency_key: format!("summary_email:{call_id}:{user_id}"),
        };
        if deliver_email(ctx, &mail, Some(job.id)).await? == EmailDelivery::Undeliverable {
            tracing::info!(call = %call_id, "SMTP_URL not set: summary e-mail recorded as undeliverable");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_callers_most_central_sentences_in_order() {
        let turns: Vec<(String, String)> = [
            ("agent", "Hello, how can I help?"),
            (
                "caller",
                "Hi. My crown broke this morning. It hurts when I chew.",
            ),
            (
                "agent",
                "I am sorry about your crown. When can you come in?",
            ),
            (
                "caller",
                "Tomorrow morning works. The crown is on a back tooth. Thanks!",
            ),
        ]
        .iter()
        .map(|(s, t)| ((*s).to_owned(), (*t).to_owned()))
        .collect();
        let summary = extractive_summary(&turns, 2);
        assert_eq!(
            summary,
            "My crown broke this morning. The crown is on a back tooth."
        );
        assert_eq!(extractive_summary(&[], 3), "");
    }
}
