//! SMS threads: what an incoming text to a tenant number does.
//!
//! One open thread per (tenant number, caller). Two kinds of sender:
//!
//! - **A caller** (anyone but the number's `owner_phone`): the text joins their thread and is
//!   forwarded to the owner's phone as `[+14155550123] text`. While the thread is
//!   `awaiting_owner`, an `sms_takeover` job is scheduled 60 s after the message
//!   ([`TAKEOVER_AFTER`]): if no human replied by then, the AI answers. In `ai_active` the AI
//!   answers at once; in `owner_replied` it stays out. `STOP` (and Twilio's other opt-out words)
//!   stops everything sent to that caller from this number; `START` resumes.
//! - **The owner**: the text is relayed to the caller of the most recently active open thread, or
//!   to the one whose number ends with the digits after a leading `@` (`@0123 See you at 3`).
//!   Relaying marks the thread `owner_replied`: the AI stops for it. Commands (the whole text, or
//!   after the `@` prefix):
//!   - `#stop`: closes the thread (no more relays, no more AI);
//!   - `#ai off`: the AI stays out of the thread; `#ai on`: the AI answers the caller's texts
//!     right away;
//!   - `#help`: lists these.
//!
//!   The owner gets a short confirmation (or the help) by SMS.
//!
//! Everything here runs inside the transaction that applies the forwarded Twilio event
//! ([`crate::store::callbacks`]); sends are queued as jobs in that transaction, so an event is
//! applied, and each SMS queued, exactly once.

pub mod responder;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::jobs::sms_send::{self, Author, OutboundSms};
use crate::jobs::{NewJob, queue};
pub use responder::{KeywordResponder, SmsResponder};

/// How long the owner has to answer a caller's text before the AI does.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(60);

/// What the owner is told by `#help` (and for an unknown command).
pub const OWNER_HELP: &str = "Reply to relay your text to the caller of the latest conversation, or start with @ and the last digits of their number (@0123 text). #stop closes the conversation, #ai on / #ai off lets the AI answer or not, #help shows this.";

/// An incoming SMS to a tenant number, after the number was looked up.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    /// The number's tenant.
    pub tenant_id: Uuid,
    /// The number's row.
    pub number_id: Uuid,
    /// The number, E.164.
    pub number: &'a str,
    /// The number's owner (forward target); their texts are relays and commands.
    pub owner_phone: Option<&'a str>,
    /// The sender, E.164.
    pub from: &'a str,
    /// The text.
    pub body: &'a str,
    /// Twilio's `SM…`.
    pub message_sid: &'a str,
    /// The forwarded event's idempotency key.
    pub idempotency_key: &'a str,
    /// When the node received it.
    pub at: DateTime<Utc>,
}

/// Applies `sms`; `false` when it had been applied before (the caller rolls back).
pub async fn on_inbound(
    tx: &mut Transaction<'_, Postgres>,
    sms: &Inbound<'_>,
) -> Result<bool, sqlx::Error> {
    if sms.owner_phone == Some(sms.from) {
        owner_message(tx, sms).await
    } else {
        caller_message(tx, sms).await
    }
}

/// Twilio's opt-out and opt-in keywords (Twilio itself also blocks sends after these).
fn opt_out(body: &str) -> Option<bool> {
    match body.trim().to_ascii_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => Some(true),
        "START" | "UNSTOP" | "YES" => Some(false),
        _ => None,
    }
}

async fn caller_message(
    tx: &mut Transaction<'_, Postgres>,
    sms: &Inbound<'_>,
) -> Result<bool, sqlx::Error> {
    let thread = sqlx::query(
        "INSERT INTO sms_threads (tenant_id, number_id, caller_number, last_message_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (number_id, caller_number) WHERE state <> 'closed'
         DO UPDATE SET last_message_at = GREATEST(sms_threads.last_message_at, EXCLUDED.last_message_at)
         RETURNING id, state, stopped",
    )
    .bind(sms.tenant_id)
    .bind(sms.number_id)
    .bind(sms.from)
    .bind(sms.at)
    .fetch_one(&mut **tx)
    .await?;
    let thread_id: Uuid = thread.get("id");
    let state: String = thread.get("state");
    let mut stopped: bool = thread.get("stopped");
    let inserted = sqlx::query(
        "INSERT INTO sms_messages (tenant_id, thread_id, message_sid, direction, author, body,
                                   status, idempotency_key, created_at)
         VALUES ($1, $2, $3, 'inbound', 'caller', $4, 'received', $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(sms.tenant_id)
    .bind(thread_id)
    .bind(sms.message_sid)
    .bind(sms.body)
    .bind(sms.idempotency_key)
    .bind(sms.at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    if let Some(stop) = opt_out(sms.body) {
        sqlx::query("UPDATE sms_threads SET stopped = $2 WHERE id = $1")
            .bind(thread_id)
            .bind(stop)
            .execute(&mut **tx)
            .await?;
        stopped = stop;
        if stop {
            return Ok(true);
        }
    }
    if stopped {
        return Ok(true);
    }
    if let Some(owner) = sms.owner_phone {
        let forward = OutboundSms {
            tenant_id: sms.tenant_id,
            thread_id: None,
            to: owner.to_owned(),
            from: sms.number.to_owned(),
            body: format!("[{}] {}", sms.from, sms.body),
            author: Author::System,
            idempotency_key: format!("to_owner:{}", sms.message_sid),
        };
        sms_send::enqueue(&mut **tx, &forward, Some(sms.at)).await?;
    }
    let run_at = match state.as_str() {
        "awaiting_owner" => {
            let at = sms.at + chrono::Duration::from_std(TAKEOVER_AFTER).unwrap_or_default();
            sqlx::query("UPDATE sms_threads SET ai_takeover_at = $2 WHERE id = $1")
                .bind(thread_id)
                .bind(at)
                .execute(&mut **tx)
                .await?;
            at
        }
        "ai_active" => sms.at,
        _ => return Ok(true),
    };
    let job = NewJob::new(
        crate::jobs::sms_takeover::KIND,
        json!({
            "thread_id": thread_id,
            "message_sid": sms.message_sid,
            "received_at": sms.at,
        }),
    )
    .tenant(sms.tenant_id)
    .key(format!("sms_takeover:{}", sms.message_sid))
    .run_at(run_at);
    queue::enqueue(&mut **tx, &job).await?;
    Ok(true)
}

/// What the owner asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerCommand {
    /// Relay this text.
    Relay(String),
    /// `#stop`.
    Stop,
    /// `#ai on` (`true`) or `#ai off`.
    Ai(bool),
    /// `#help` or an unknown `#…`.
    Help,
}

/// Splits an owner's text into the optional `@digits` address and the command.
pub fn parse_owner_text(body: &str) -> (Option<String>, OwnerCommand) {
    let mut text = body.trim();
    let mut address = None;
    if let Some(rest) = text.strip_prefix('@') {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            text = rest[digits.len()..].trim_start();
            address = Some(digits);
        }
    }
    let command = if text.starts_with('#') {
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        match words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["#stop", ..] => OwnerCommand::Stop,
            ["#ai", "on", ..] => OwnerCommand::Ai(true),
            ["#ai", "off", ..] => OwnerCommand::Ai(false),
            _ => OwnerCommand::Help,
        }
    } else if text.is_empty() {
        OwnerCommand::Help
    } else {
        OwnerCommand::Relay(text.to_owned())
    };
    (address, command)
}

async fn owner_message(
    tx: &mut Transaction<'_, Postgres>,
    sms: &Inbound<'_>,
) -> Result<bool, sqlx::Error> {
    let (address, command) = parse_owner_text(sms.body);
    let thread = sqlx::query(
        "SELECT id, caller_number FROM sms_threads
         WHERE number_id = $1 AND state <> 'closed'
           AND ($2::text IS NULL OR caller_number LIKE '%' || $2)
         ORDER BY last_message_at DESC
         LIMIT 1",
    )
    .bind(sms.number_id)
    .bind(&address)
    .fetch_optional(&mut **tx)
    .await?;
    let thread = thread.map(|r| (r.get::<Uuid, _>("id"), r.get::<String, _>("caller_number")));
    let notice = |body: String| OutboundSms {
        tenant_id: sms.tenant_id,
        thread_id: None,
        to: sms.from.to_owned(),
        from: sms.number.to_owned(),
        body,
        author: Author::System,
        idempotency_key: format!("owner:{}", sms.message_sid),
    };
    let outbound = match (command, thread) {
        (OwnerCommand::Help, _) => notice(OWNER_HELP.to_owned()),
        (_, None) => notice("No open conversation to send this to.".to_owned()),
        (OwnerCommand::Stop, Some((id, caller))) => {
            sqlx::query(
                "UPDATE sms_threads SET state = 'closed', ai_takeover_at = NULL WHERE id = $1",
            )
            .bind(id)
            .execute(&mut **tx)
            .await?;
            notice(format!("Closed the conversation with {caller}."))
        }
        (OwnerCommand::Ai(on), Some((id, caller))) => {
            sqlx::query(
                "UPDATE sms_threads SET state = $2, ai_takeover_at = CASE WHEN $3 THEN $4 ELSE NULL END
                 WHERE id = $1",
            )
            .bind(id)
            .bind(if on { "ai_active" } else { "owner_replied" })
            .bind(on)
            .bind(sms.at)
            .execute(&mut **tx)
            .await?;
            let what = if on { "will answer" } else { "will not answer" };
            notice(format!("The AI {what} {caller}."))
        }
        (OwnerCommand::Relay(text), Some((id, caller))) => {
            sqlx::query(
                "UPDATE sms_threads SET state = 'owner_replied', owner_replied_at = $2,
                        ai_takeover_at = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(sms.at)
            .execute(&mut **tx)
            .await?;
            OutboundSms {
                tenant_id: sms.tenant_id,
                thread_id: Some(id),
                to: caller,
                from: sms.number.to_owned(),
                body: text,
                author: Author::Owner,
                idempotency_key: format!("owner:{}", sms.message_sid),
            }
        }
    };
    // The job's key is this event's proof of application.
    Ok(sms_send::enqueue(&mut **tx, &outbound, Some(sms.at))
        .await?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_texts_parse_into_address_and_command() {
        assert_eq!(
            parse_owner_text("See you at 3"),
            (None, OwnerCommand::Relay("See you at 3".into()))
        );
        assert_eq!(
            parse_owner_text("@0123 See you"),
            (Some("0123".into()), OwnerCommand::Relay("See you".into()))
        );
        assert_eq!(parse_owner_text(" #STOP "), (None, OwnerCommand::Stop));
        assert_eq!(parse_owner_text("#ai off"), (None, OwnerCommand::Ai(false)));
        assert_eq!(
            parse_owner_text("@99 #ai on"),
            (Some("99".into()), OwnerCommand::Ai(true))
        );
        assert_eq!(parse_owner_text("#what"), (None, OwnerCommand::Help));
        assert_eq!(
            parse_owner_text("@ home soon"),
            (None, OwnerCommand::Relay("@ home soon".into()))
        );
    }

    #[test]
    fn opt_out_words_are_recognised() {
        assert_eq!(opt_out(" stop "), Some(true));
        assert_eq!(opt_out("START"), Some(false));
        assert_eq!(opt_out("stop by tomorrow"), None);
    }
}
