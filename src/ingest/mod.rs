//! Telephony ingest: call events from Twilio status callbacks (`http::webhooks`) and from the
//! `recordCallEvents` mutation, dispositions from `setDisposition`.
//!
//! * [`lifecycle`] — the interaction as a pure function of its call's events (idempotent and
//!   order-independent by construction), and the routing-state changes a call causes;
//! * [`twilio`] — callback parameters → events, and Twilio's request signature;
//! * [`store`] — one batch of valid events into the database, in one transaction: events,
//!   interactions, agents' state, rollups (through `kpi::writer`);
//! * [`routing_log`] — agents' routing intervals re-derived from their stored transitions,
//!   only in the stretches a batch changed;
//! * [`batcher`] — webhook deliveries grouped into shared transactions;
//! * [`history`] — the bulk import of completed calls (CSV, NDJSON) through the bulk writer;
//! * this module — validation, the audited mutations, and publishing after commit.

pub mod batcher;
pub mod history;
pub mod lifecycle;
pub mod routing_log;
pub mod store;
pub mod twilio;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::calls::{self, TelephonySettingsView};
use crate::db::contact_centre as cc;
use crate::db::interactions::InteractionRow;
use crate::db::tenancy::TenantPool;
use crate::db::{self, orgs};
use crate::domain::{AnsweredBy, Direction};
use crate::domain::{CallEvent, EndReason, EventType, Source};
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::{AgentStateChange, Bus, BusEvent};
use crate::state::AppState;
use crate::telemetry::metrics::{self as telemetry, IngestOutcome, IngestSource};
use store::Changes;

/// Most events one `recordCallEvents` call may carry.
pub const MAX_BATCH_EVENTS: usize = 1_000;
/// How far in the future an event time may be (clock skew between systems).
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(10);
/// Longest notes of a disposition.
pub const MAX_NOTES_CHARS: usize = 4_000;
/// Attempts of a transaction that lost a deadlock or serialization race.
const TRANSACTION_ATTEMPTS: u32 = 4;

/// An event as a client sent it, before validation.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub external_id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub sequence: Option<i64>,
    pub direction: Option<Direction>,
    pub campaign_id: Option<String>,
    pub agent_id: Option<String>,
    pub customer_number: Option<String>,
    pub answered_by: Option<AnsweredBy>,
    pub disposition_code: Option<String>,
    pub end_reason: Option<EndReason>,
}

impl EventInput {
    /// An event carrying only its call, type and time; set the rest with struct update syntax.
    pub fn bare(external_id: impl Into<String>, event_type: EventType, occurred_at: DateTime<Utc>) -> Self {
        Self {
            external_id: external_id.into(),
            event_type,
            occurred_at,
            sequence: None,
            direction: None,
            campaign_id: None,
            agent_id: None,
            customer_number: None,
            answered_by: None,
            disposition_code: None,
            end_reason: None,
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStatus {
    /// Stored; the call was brought up to date.
    Accepted,
    /// The same event was already stored: nothing changed.
    Duplicate,
    /// Not stored, for the reason given.
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct EventResult {
    pub index: usize,
    pub external_id: String,
    pub status: EventStatus,
    pub interaction_id: Option<Uuid>,
}

/// A call id: 1–128 printable characters without spaces.
pub fn check_external_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// An event time must lie between the organization's history horizon (business settings; by
/// default its creation) and a little after now.
pub fn check_time(occurred_at: DateTime<Utc>, horizon: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if occurred_at > now + MAX_CLOCK_SKEW {
        return Err(format!(
            "is in the future (more than {} minutes ahead)",
            MAX_CLOCK_SKEW.num_minutes()
        ));
    }
    if occurred_at < horizon {
        return Err(format!(
            "is before the organization's history horizon ({}; by default the organization's creation)",
            horizon.to_rfc3339()
        ));
    }
    Ok(())
}

pub(crate) fn check_customer_number(number: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&number.chars().count())
        && number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-(). ".contains(c));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 32 characters: digits, letters, + * # - ( ) . or space".into())
    }
}

/// Validates a batch; every problem of an event is reported with its field. Ids are checked
/// against the tenant (another tenant's id is unknown).
pub async fn validate(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    horizon: DateTime<Utc>,
    inputs: &[EventInput],
) -> AppResult<Vec<Result<CallEvent, String>>> {
    let parse = |raw: &Option<String>| raw.as_deref().map(|s| Uuid::parse_str(s).map_err(|_| ()));
    let campaign_ids: Vec<Uuid> = inputs.iter().filter_map(|i| parse(&i.campaign_id)?.ok()).collect();
    let agent_ids: Vec<Uuid> = inputs.iter().filter_map(|i| parse(&i.agent_id)?.ok()).collect();
    let codes: Vec<String> = inputs
        .iter()
        .filter_map(|i| i.disposition_code.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known_campaigns: BTreeSet<Uuid> = if campaign_ids.is_empty() {
        BTreeSet::new()
    } else {
        cc::existing_campaigns(conn, tenant, &campaign_ids)
            .await?
            .into_iter()
            .collect()
    };
    let known_agents: BTreeSet<Uuid> = if agent_ids.is_empty() {
        BTreeSet::new()
    } else {
        cc::existing_agents(conn, tenant, &agent_ids)
            .await?
            .into_iter()
            .collect()
    };
    let dispositions = if codes.is_empty() {
        HashMap::new()
    } else {
        calls::active_dispositions_by_code(conn, tenant, &codes).await?
    };
    let now = Utc::now();
    Ok(inputs
        .iter()
        .map(|input| {
            let mut errors: Vec<String> = Vec::new();
            let mut fail = |field: &str, why: String| errors.push(format!("{field} {why}"));
            if let Err(why) = check_external_id(&input.external_id) {
                fail("externalId", why);
            }
            if let Err(why) = check_time(input.occurred_at, horizon, now) {
                fail("occurredAt", why);
            }
            if input.sequence.is_some_and(|s| s < 0) {
                fail("sequenceNumber", "must not be negative".into());
            }
            let lookup = |raw: &Option<String>, known: &BTreeSet<Uuid>| -> Result<Option<Uuid>, String> {
                match raw.as_deref().map(Uuid::parse_str) {
                    None => Ok(None),
                    Some(Err(_)) => Err("is not a valid id".into()),
                    Some(Ok(id)) if known.contains(&id) => Ok(Some(id)),
                    Some(Ok(_)) => Err("is unknown".into()),
                }
            };
            let campaign_id = lookup(&input.campaign_id, &known_campaigns).unwrap_or_else(|why| {
                fail("campaignId", why);
                None
            });
            let agent_id = lookup(&input.agent_id, &known_agents).unwrap_or_else(|why| {
                fail("agentId", why);
                None
            });
            if let Some(number) = &input.customer_number {
                if let Err(why) = check_customer_number(number) {
                    fail("customerNumber", why);
                }
            }
            let mut disposition_id = None;
            if let Some(code) = &input.disposition_code {
                if input.event_type != EventType::WrapUpEnded {
                    fail("dispositionCode", "is only allowed on WRAP_UP_ENDED".into());
                } else {
                    match dispositions.get(code) {
                        Some(id) => disposition_id = Some(*id),
                        None => fail("dispositionCode", format!("`{code}` is not an active disposition")),
                    }
                }
            }
            if input.end_reason.is_some() && input.event_type != EventType::Ended {
                fail("endReason", "is only allowed on ENDED".into());
            }
            if input.event_type == EventType::DispositionSet {
                fail("type", "DISPOSITION_SET is set through setDisposition".into());
            }
            if !errors.is_empty() {
                return Err(errors.join("; "));
            }
            let mut event = CallEvent::new(input.event_type, input.occurred_at, Source::Api);
            event.sequence = input.sequence;
            event.direction = input.direction;
            event.campaign_id = campaign_id;
            event.agent_id = agent_id;
            event.customer_number = input.customer_number.clone();
            event.answered_by = input.answered_by;
            event.end_reason = input.end_reason;
            event.disposition_id = disposition_id;
            Ok(event)
        })
        .collect())
}

fn retryable(error: &AppError) -> bool {
    match error {
        AppError::Internal(detail) => detail.contains("deadlock detected"),
        AppError::Conflict(_) => true,
        _ => false,
    }
}

/// Runs `attempt` (one transaction) again when it lost a deadlock or serialization race.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(error) if tries < TRANSACTION_ATTEMPTS && retryable(&error) => {
                tracing::debug!("ingest transaction lost a lock race; retrying");
                tokio::time::sleep(Duration::from_millis(u64::from(tries) * 5 + rand::random::<u64>() % 10)).await;
            }
            other => return other,
        }
    }
}

/// Publishes what a committed batch changed: one event for its calls, one per agent whose
/// routing state moved, one for the KPI hours it touched.
pub fn publish(bus: &Bus, tenant: &Tenant, changes: &Changes) {
    let org = tenant.org_id();
    if !changes.interactions.is_empty() {
        bus.publish(
            org,
            BusEvent::Interactions {
                calls: changes.interactions.clone(),
            },
        );
    }
    for (agent_id, state, since) in &changes.agents {
        bus.publish(
            org,
            BusEvent::AgentState {
                agent_id: *agent_id,
                change: AgentStateChange::Routing {
                    state: *state,
                    since: *since,
                },
            },
        );
    }
    if !changes.hours.is_empty() {
        bus.publish(
            org,
            BusEvent::KpiInvalidation {
                hours: changes.hours.clone(),
            },
        );
    }
}

/// Runs valid events of one tenant through [`store::apply`] in one transaction (retried on a
/// lost lock race), with an optional audit record in the same transaction.
async fn apply_in_transaction(
    pool: &TenantPool,
    tenant: &Tenant,
    items: &[(String, CallEvent)],
    audit_event: Option<&(dyn Fn(&store::Applied) -> AuditEvent + Sync)>,
) -> AppResult<store::Applied> {
    with_retries(|| async {
        let mut conn = pool.get(tenant).await?;
        conn.transaction(async |conn| -> AppResult<store::Applied> {
            let applied = store::apply(conn, tenant, items).await?;
            if let Some(make) = audit_event {
                audit::record(conn, make(&applied)).await?;
            }
            Ok(applied)
        })
        .await
    })
    .await
}

/// `recordCallEvents`: validates each event (an invalid one is reported, the others go on),
/// stores the valid ones and updates their calls in one transaction with one audit record,
/// then publishes. Results are in input order.
pub async fn record_events(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    inputs: Vec<EventInput>,
    request_id: Option<String>,
) -> AppResult<Vec<EventResult>> {
    if inputs.len() > MAX_BATCH_EVENTS {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "events",
            format!("at most {MAX_BATCH_EVENTS} events per call ({} sent)", inputs.len()),
        )]));
    }
    let validated = {
        let mut conn = state.db.get(tenant).await?;
        let horizon = orgs::history_horizon(&mut conn, tenant).await?;
        validate(&mut conn, tenant, horizon, &inputs).await?
    };
    let mut items = Vec::new();
    let mut item_of_input = vec![None; inputs.len()];
    for (index, (input, result)) in inputs.iter().zip(&validated).enumerate() {
        if let Ok(event) = result {
            item_of_input[index] = Some(items.len());
            items.push((input.external_id.clone(), event.clone()));
        }
    }
    let rejected = validated.iter().filter(|r| r.is_err()).count();
    let actor = Actor::of(principal);
    let make_audit = |applied: &store::Applied| {
        let accepted = applied.stored.iter().filter(|s| **s).count();
        AuditEvent::new(Some(tenant.org_id()), Some(actor), "ingest.call_events")
            .details(json!({
                "events": inputs.len(),
                "accepted": accepted,
                "duplicates": applied.stored.len() - accepted,
                "rejected": rejected,
                "calls": applied.interaction_ids.len(),
            }))
            .request_id(request_id.clone())
    };
    let applied = apply_in_transaction(&state.db, tenant, &items, Some(&make_audit)).await?;
    publish(&state.bus, tenant, &applied.changes);
    let accepted = applied.stored.iter().filter(|s| **s).count();
    count_events(IngestOutcome::Accepted, accepted);
    count_events(IngestOutcome::Duplicate, items.len() - accepted);
    count_events(IngestOutcome::Rejected, rejected);
    Ok(inputs
        .into_iter()
        .zip(validated)
        .enumerate()
        .map(|(index, (input, result))| {
            let status = match (result, item_of_input[index]) {
                (Err(reason), _) => EventStatus::Rejected(reason),
                (Ok(_), Some(item)) if applied.stored.get(item).copied().unwrap_or(false) => EventStatus::Accepted,
                (Ok(_), _) => EventStatus::Duplicate,
            };
            let interaction_id = match status {
                EventStatus::Rejected(_) => None,
                _ => applied.interaction_ids.get(&input.external_id).copied(),
            };
            EventResult {
                index,
                external_id: input.external_id,
                status,
                interaction_id,
            }
        })
        .collect())
}

/// Counts `n` events of the `recordCallEvents` mutation on `/metrics`.
fn count_events(outcome: IngestOutcome, n: usize) {
    telemetry::ingest_events(IngestSource::Api, outcome, n as u64);
}

/// Which calls a caller may see: every call of the tenant (SUPERVISOR+), or only those of
/// their own agent profile (an AGENT; `None` inside when they have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallScope {
    All,
    OwnAgent(Option<Uuid>),
}

impl CallScope {
    pub async fn of(conn: &mut AsyncPgConnection, principal: &Principal, tenant: &Tenant) -> AppResult<Self> {
        if principal.role >= Role::Supervisor {
            return Ok(CallScope::All);
        }
        Ok(CallScope::OwnAgent(
            cc::agent_of_user(conn, tenant, principal.user_id).await?,
        ))
    }

    pub fn sees(&self, row: &InteractionRow) -> bool {
        match self {
            CallScope::All => true,
            CallScope::OwnAgent(agent) => agent.is_some() && row.agent_id == *agent,
        }
    }

    /// Customer numbers are shown in full from SUPERVISOR up.
    pub fn unmasked(&self) -> bool {
        *self == CallScope::All
    }
}

/// `+447700900123` → `+44******0123`: at least half of a number is always hidden — ten
/// characters or more keep the first three and the last four, eight or nine the last four,
/// shorter ones the last two.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let (front, back) = match chars.len() {
        n if n >= 10 => (3, 4),
        8 | 9 => (0, 4),
        n if n >= 4 => (0, 2),
        _ => (0, 0),
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < front || i >= chars.len() - back { *c } else { '*' })
        .collect()
}

/// A call the caller may see, or NOT_FOUND (a call of another agent is as unknown as a call
/// of another organization).
pub async fn visible_interaction(
    conn: &mut AsyncPgConnection,
    scope: CallScope,
    tenant: &Tenant,
    id: Uuid,
) -> AppResult<InteractionRow> {
    db::interactions::interaction_by_id(conn, tenant, id)
        .await?
        .filter(|row| scope.sees(row))
        .ok_or_else(|| AppError::NotFound("interaction not found".into()))
}

/// `setDisposition`: records a DISPOSITION_SET event (so the disposition survives every later
/// recomputation of the call), updates the call and its KPIs, audits, publishes. AGENT: own
/// calls only; SUPERVISOR+: any call.
pub async fn set_disposition(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    interaction_id: Uuid,
    disposition_code: &str,
    notes: Option<String>,
    request_id: Option<String>,
) -> AppResult<InteractionRow> {
    if notes.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "notes",
            format!("at most {MAX_NOTES_CHARS} characters"),
        )]));
    }
    let (row, disposition_id) = {
        let mut conn = state.db.get(tenant).await?;
        let scope = CallScope::of(&mut conn, principal, tenant).await?;
        let row = visible_interaction(&mut conn, scope, tenant, interaction_id).await?;
        let found = calls::active_dispositions_by_code(&mut conn, tenant, &[disposition_code.to_owned()]).await?;
        let Some(disposition_id) = found.get(disposition_code).copied() else {
            return Err(AppError::invalid_fields(vec![FieldError::new(
                "dispositionCode",
                format!("`{disposition_code}` is not an active disposition"),
            )]));
        };
        (row, disposition_id)
    };
    let mut event = CallEvent::new(EventType::DispositionSet, Utc::now(), Source::User);
    event.disposition_id = Some(disposition_id);
    event.notes = notes.clone();
    let items = [(row.external_id.clone(), event)];
    let actor = Actor::of(principal);
    let make_audit = |_: &store::Applied| {
        AuditEvent::new(Some(tenant.org_id()), Some(actor), "interaction.set_disposition")
            .target("interaction", row.id)
            .details(json!({
                "externalId": row.external_id,
                "dispositionCode": disposition_code,
                "previousDispositionId": row.disposition_id,
                "notesSet": notes.is_some(),
            }))
            .request_id(request_id.clone())
    };
    let applied = apply_in_transaction(&state.db, tenant, &items, Some(&make_audit)).await?;
    publish(&state.bus, tenant, &applied.changes);
    let mut conn = state.db.get(tenant).await?;
    db::interactions::interaction_by_id(&mut conn, tenant, row.id)
        .await?
        .ok_or_else(|| AppError::NotFound("interaction not found".into()))
}

/// A Twilio Account SID: `AC` and 32 hexadecimal digits.
pub fn check_account_sid(sid: &str) -> Result<(), String> {
    let ok = sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err("must be AC followed by 32 hexadecimal digits".into())
    }
}

fn check_auth_token(token: &str) -> Result<(), String> {
    if (1..=256).contains(&token.len()) && token.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must be 1 to 256 printable characters without spaces".into())
    }
}

/// `updateTelephonySettings`: ADMIN+, audited in the same transaction. The auth token is
/// write-only: the audit record says whether it changed, never what it is.
pub async fn update_telephony_settings(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    account_sid: Option<String>,
    auth_token: Option<String>,
    request_id: Option<String>,
) -> AppResult<TelephonySettingsView> {
    let mut errors = Vec::new();
    if let Some(Err(why)) = account_sid.as_deref().map(check_account_sid) {
        errors.push(FieldError::new("input.twilioAccountSid", why));
    }
    if let Some(Err(why)) = auth_token.as_deref().map(check_auth_token) {
        errors.push(FieldError::new("input.twilioAuthToken", why));
    }
    if account_sid.is_none() && auth_token.is_none() {
        errors.push(FieldError::new(
            "input",
            "name twilioAccountSid, twilioAuthToken or both",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| -> AppResult<TelephonySettingsView> {
        let before = calls::telephony_settings(conn, tenant).await?;
        let after = calls::upsert_telephony_settings(
            conn,
            tenant,
            account_sid.as_deref(),
            auth_token.as_deref(),
            principal.user_id,
        )
        .await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "telephony.update")
            .target("telephony_settings", tenant.org_id())
            .details(json!({
                "before": { "twilioAccountSid": before.twilio_account_sid, "authTokenSet": before.auth_token_set },
                "after": { "twilioAccountSid": after.twilio_account_sid, "authTokenSet": after.auth_token_set },
                "authTokenChanged": auth_token.is_some(),
            }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(after)
    })
    .await
}

pub async fn telephony_settings(state: &AppState, tenant: &Tenant) -> AppResult<TelephonySettingsView> {
    let mut conn = state.db.get(tenant).await?;
    calls::telephony_settings(&mut conn, tenant).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_keeping_country_code_and_last_four() {
        assert_eq!(mask_number("+447700900123"), "+44******0123");
        assert_eq!(mask_number("+4412341234"), "+44****1234");
        assert_eq!(mask_number("07700123"), "****0123");
        assert_eq!(mask_number("12345"), "***45");
        assert_eq!(mask_number("123"), "***");
        assert_eq!(mask_number(""), "");
    }

    #[test]
    fn times_must_be_plausible() {
        let created = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        assert!(check_time(now, created, now).is_ok());
        assert!(check_time(now + TimeDelta::minutes(9), created, now).is_ok());
        assert!(check_time(now + TimeDelta::minutes(11), created, now).is_err());
        assert!(check_time(created - TimeDelta::seconds(1), created, now).is_err());
    }

    #[test]
    fn ids_and_sids_are_checked() {
        assert!(check_external_id("CA0123").is_ok());
        assert!(check_external_id("").is_err());
        assert!(check_external_id("a b").is_err());
        assert!(check_external_id(&"x".repeat(129)).is_err());
        assert!(check_account_sid("AC0123456789abcdef0123456789abcdef").is_ok());
        assert!(check_account_sid("AC0123").is_err());
        assert!(check_account_sid("XX0123456789abcdef0123456789abcdef").is_err());
    }
}
