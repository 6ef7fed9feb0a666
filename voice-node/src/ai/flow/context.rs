//! What a call's flow needs from Postgres before its greeting: the tenant's departments, business
//! hours, screening policy and allow list, and the called number's owner phone.
//!
//! Loaded once per call at `start` (a few indexed reads). A read that fails leaves the flow with
//! its defaults and a warning: a caller should still be answered when the database is slow.

use shared::domain::ScreeningLabel;
use shared::routing::normalize_e164;
use sqlx::PgPool;
use uuid::Uuid;

use super::hours::{BusinessHours, Openness};
use super::receptionist::{Department, Entry, ReceptionistSetup};
use super::screening::{ScreeningPolicy, ScreeningSetup};
use crate::agent::{CallStarted, ScreeningAction};

/// The stream `<Parameter>` the edge sets when it sends a caller back after a transfer nobody
/// answered, and its value.
pub const AFTER_PARAMETER: &str = "after";
/// See [`AFTER_PARAMETER`].
pub const AFTER_FAILED_TRANSFER: &str = "failed_transfer";

/// How the call reached the receptionist, from its stream parameters.
pub fn entry_of(call: &CallStarted) -> Entry {
    match call
        .custom_parameters
        .get(AFTER_PARAMETER)
        .map(String::as_str)
    {
        Some(AFTER_FAILED_TRANSFER) => Entry::AfterFailedTransfer,
        _ => Entry::Fresh,
    }
}

/// The caller's number in E.164, when it is one (not "anonymous").
pub fn caller_id(call: &CallStarted) -> Option<String> {
    call.custom_parameters
        .get("from")
        .and_then(|f| normalize_e164(f))
}

/// The called number's owner phone.
async fn owner_phone(
    db: &PgPool,
    tenant: Uuid,
    call: &CallStarted,
) -> Result<Option<String>, sqlx::Error> {
    let Some(to) = call
        .custom_parameters
        .get("to")
        .and_then(|t| normalize_e164(t))
    else {
        return Ok(None);
    };
    let owner: Option<Option<String>> = sqlx::query_scalar(
        "SELECT owner_phone FROM phone_numbers WHERE e164 = $1 AND tenant_id = $2",
    )
    .bind(to)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    Ok(owner.flatten())
}

/// Whether the tenant opens at `now`; stored hours that do not parse count as always open (and
/// are logged: a caller is better put through than turned away by a typo).
async fn openness(
    db: &PgPool,
    tenant: Uuid,
    now: jiff::Timestamp,
) -> Result<Openness, sqlx::Error> {
    let row: Option<(serde_json::Value, String)> =
        sqlx::query_as("SELECT business_hours, timezone FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(db)
            .await?;
    let Some((hours, zone)) = row else {
        return Ok(Openness::Open);
    };
    Ok(match BusinessHours::parse(&hours, &zone) {
        Ok(hours) => hours.at(now),
        Err(err) => {
            tracing::warn!(tenant = %tenant, error = %err, "tenant business hours unreadable; treating as open");
            Openness::Open
        }
    })
}

/// The receptionist's setup for `call` at `now`.
pub async fn receptionist_setup(
    db: &PgPool,
    tenant: Uuid,
    call: &CallStarted,
    now: jiff::Timestamp,
) -> Result<ReceptionistSetup, sqlx::Error> {
    let departments: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT name, transfer_to, keywords FROM departments
         WHERE tenant_id = $1 AND enabled ORDER BY position, name",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    Ok(ReceptionistSetup {
        departments: departments
            .into_iter()
            .map(|(name, transfer_to, keywords)| Department {
                name,
                transfer_to,
                keywords,
            })
            .collect(),
        owner_phone: owner_phone(db, tenant, call).await?,
        openness: openness(db, tenant, now).await?,
        caller_id: caller_id(call),
        entry: entry_of(call),
    })
}

fn action_of(text: &str) -> Option<ScreeningAction> {
    match text {
        "transfer" => Some(ScreeningAction::Transfer),
        "take_message" => Some(ScreeningAction::TakeMessage),
        "end_call" => Some(ScreeningAction::EndCall),
        _ => None,
    }
}

/// The screening setup for `call`: the tenant's policy rows, the owner phone, and whether the
/// caller is on the allow list right now (read per call, so a contact added in the dashboard
/// counts from the next call even before the edge's routing snapshot has it).
pub async fn screening_setup(
    db: &PgPool,
    tenant: Uuid,
    call: &CallStarted,
) -> Result<ScreeningSetup, sqlx::Error> {
    let rows: Vec<(String, String, f32)> = sqlx::query_as(
        "SELECT label, action, min_confidence FROM screening_policies WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let rules = rows
        .into_iter()
        .filter_map(|(label, action, min)| {
            Some((
                label.parse::<ScreeningLabel>().ok()?,
                action_of(&action)?,
                min,
            ))
        })
        .collect();
    let allow_listed = match caller_id(call) {
        Some(caller) => {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM contacts
                            WHERE tenant_id = $1 AND number = $2 AND kind = 'allow')",
            )
            .bind(tenant)
            .bind(caller)
            .fetch_one(db)
            .await?
        }
        None => false,
    };
    Ok(ScreeningSetup {
        policy: ScreeningPolicy::new(rules),
        owner_phone: owner_phone(db, tenant, call).await?,
        allow_listed,
    })
}
