//! Campaigns and disposition codes (ADMIN): create, change, archive or deactivate.
//!
//! Two of their fields decide how calls are counted in the rollups: a campaign's service-level
//! threshold override (which of its calls are answered or abandoned within the service level)
//! and a disposition's `contact` and `success` flags (right-party contacts and successes of
//! outbound calls). A change of one re-states the counters it decides, in the rollup cells of
//! the hours in which the calls of that campaign or disposition were offered, in the
//! transaction of the change ([`crate::kpi::writer::restate_scoped`]), so KPIs always equal a
//! recomputation from the raw calls with the settings in force. The transaction first locks the
//! organization's business settings row, as a change of the organization's thresholds does:
//! every rollup writer share-locks that row before it reads the counting rules, so no call is
//! added to the rollups with the rules of before while history is re-stated with the new ones.
//!
//! The other fields are read when a KPI is computed (the target and the abandon limit, the
//! other flags, labels and names) and re-state nothing. A campaign's direction is fixed at
//! creation (its calls and its compliance history are read by it); an ARCHIVED campaign is
//! final: it keeps its history and is refused any change (CONFLICT). A disposition's code is
//! fixed too (agents and imports name dispositions by it); `active: false` retires a code.

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::catalog::{self as rows, CampaignFields, CampaignRow, DispositionFields, DispositionRow};
use crate::db::orgs;
use crate::domain::{CampaignStatus, DialMode, Direction};
use crate::error::{AppError, AppResult, FieldError};
use crate::kpi::writer::{restate_scoped, CallsOf};
use crate::realtime::BusEvent;
use crate::state::AppState;

/// The counters a campaign's service-level threshold decides (the short-abandon threshold is
/// the organization's alone).
const CAMPAIGN_THRESHOLD_COUNTERS: [&str; 3] =
    ["answered_within_sl", "abandoned_within_sl", "short_abandoned_within_sl"];
/// The counters a disposition's flags decide.
const DISPOSITION_FLAG_COUNTERS: [&str; 2] = ["contacts", "successes"];
/// Re-stated hours older than this are not announced on the bus: the live views that listen
/// look at most 30 days back (the US abandon rule), and one message stays small.
const ANNOUNCED_DAYS: i64 = 31;

pub struct NewCampaignInput {
    pub name: String,
    pub direction: Direction,
    pub dial_mode: Option<DialMode>,
    pub status: Option<CampaignStatus>,
    pub service_level_threshold_seconds: Option<i32>,
    pub service_level_target_percent: Option<f64>,
    pub max_abandon_rate_percent: Option<f64>,
}

/// A partial change: `None` leaves a field as it is; for the overrides `Some(None)` clears the
/// override (the organization's setting applies again).
#[derive(Default)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub dial_mode: Option<Option<DialMode>>,
    pub status: Option<CampaignStatus>,
    pub service_level_threshold_seconds: Option<Option<i32>>,
    pub service_level_target_percent: Option<Option<f64>>,
    pub max_abandon_rate_percent: Option<Option<f64>>,
}

pub struct NewDispositionInput {
    pub code: String,
    pub label: String,
    pub flags: DispositionFlags,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispositionFlags {
    pub human_answered: bool,
    pub contact: bool,
    pub success: bool,
    pub callback: bool,
    pub do_not_call: bool,
    pub answering_machine: bool,
}

/// A partial change of a disposition: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DispositionPatch {
    pub label: Option<String>,
    pub human_answered: Option<bool>,
    pub contact: Option<bool>,
    pub success: Option<bool>,
    pub callback: Option<bool>,
    pub do_not_call: Option<bool>,
    pub answering_machine: Option<bool>,
    pub active: Option<bool>,
}

fn check_name(errors: &mut Vec<FieldError>, field: &str, name: &str) {
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new(field, "must be 1 to 200 characters"));
    }
}

fn check_percent(errors: &mut Vec<FieldError>, field: &str, value: Option<f64>) {
    if value.is_some_and(|v| !v.is_finite() || !(0.0..=100.0).contains(&v)) {
        errors.push(FieldError::new(field, "must be a percentage between 0 and 100"));
    }
}

/// Every problem of a campaign's fields as they would be stored.
fn validate_campaign(fields: &CampaignFields) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_name(&mut errors, "input.name", &fields.name);
    if fields.direction == Direction::Inbound.as_str() && fields.dial_mode.is_some() {
        errors.push(FieldError::new("input.dialMode", "only OUTBOUND campaigns dial"));
    }
    if fields
        .service_level_threshold_seconds
        .is_some_and(|t| !(1..=3_600).contains(&t))
    {
        errors.push(FieldError::new(
            "input.serviceLevelThresholdSeconds",
            "must be between 1 and 3600",
        ));
    }
    check_percent(
        &mut errors,
        "input.serviceLevelTargetPercent",
        fields.service_level_target_percent,
    );
    check_percent(
        &mut errors,
        "input.maxAbandonRatePercent",
        fields.max_abandon_rate_percent,
    );
    errors
}

fn refuse_archived_status(status: Option<CampaignStatus>) -> AppResult<()> {
    if status == Some(CampaignStatus::Archived) {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "input.status",
            "ACTIVE or PAUSED; archiveCampaign archives",
        )]));
    }
    Ok(())
}

/// The code as stored: trimmed, upper case.
pub fn normalize_code(code: &str) -> String {
    code.trim().to_uppercase()
}

fn valid_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Every problem of a disposition's fields as they would be stored: the code's form, the label,
/// and the flags' implications (the table's CHECKs, named by field).
fn validate_disposition(fields: &DispositionFields) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !valid_code(&fields.code) {
        errors.push(FieldError::new("input.code", "1 to 64 characters of A-Z, 0-9 and _"));
    }
    check_name(&mut errors, "input.label", &fields.label);
    if fields.contact && !fields.human_answered {
        errors.push(FieldError::new(
            "input.contact",
            "a right-party contact is a human answer: set humanAnswered too",
        ));
    }
    if fields.success && !fields.contact {
        errors.push(FieldError::new(
            "input.success",
            "a success is a contact: set contact too",
        ));
    }
    if fields.answering_machine && fields.human_answered {
        errors.push(FieldError::new(
            "input.answeringMachine",
            "a machine is not a human answer: clear humanAnswered",
        ));
    }
    errors
}

/// Takes the organization's business settings row for the rest of the transaction (see the
/// module's header): before any row this module changes, as a settings change does.
async fn hold_counting_rules(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<()> {
    orgs::settings_for_update(conn, tenant).await.map(|_| ())
}

fn announce(state: &AppState, tenant: &Tenant, hours: Vec<DateTime<Utc>>) {
    let since = Utc::now() - TimeDelta::days(ANNOUNCED_DAYS);
    let hours: std::collections::BTreeSet<DateTime<Utc>> = hours.into_iter().filter(|h| *h >= since).collect();
    if !hours.is_empty() {
        state.bus.publish(tenant.org_id(), BusEvent::KpiInvalidation { hours });
    }
}

pub async fn create_campaign(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewCampaignInput,
    request_id: Option<String>,
) -> AppResult<CampaignRow> {
    refuse_archived_status(input.status)?;
    let fields = CampaignFields {
        name: input.name.trim().to_owned(),
        direction: input.direction.as_str().to_owned(),
        dial_mode: input.dial_mode.map(|m| m.as_str().to_owned()),
        status: input.status.unwrap_or(CampaignStatus::Active).as_str().to_owned(),
        service_level_threshold_seconds: input.service_level_threshold_seconds,
        service_level_target_percent: input.service_level_target_percent,
        max_abandon_rate_percent: input.max_abandon_rate_percent,
    };
    let errors = validate_campaign(&fields);
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let row = rows::insert_campaign(conn, tenant, &fields).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "campaign.create")
            .target("campaign", row.id)
            .details(serde_json::json!({ "after": fields }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(row)
    })
    .await
}

pub async fn update_campaign(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    patch: CampaignPatch,
    request_id: Option<String>,
) -> AppResult<CampaignRow> {
    refuse_archived_status(patch.status)?;
    let mut conn = state.db.get(tenant).await?;
    let (row, hours) = conn
        .transaction(async |conn| -> AppResult<(CampaignRow, Vec<DateTime<Utc>>)> {
            hold_counting_rules(conn, tenant).await?;
            let before = rows::campaign_for_update(conn, tenant, id).await?;
            if before.status == CampaignStatus::Archived.as_str() {
                return Err(AppError::Conflict("the campaign is archived; it cannot change".into()));
            }
            let mut after = before.fields();
            if let Some(name) = &patch.name {
                after.name = name.trim().to_owned();
            }
            if let Some(mode) = patch.dial_mode {
                after.dial_mode = mode.map(|m| m.as_str().to_owned());
            }
            if let Some(status) = patch.status {
                after.status = status.as_str().to_owned();
            }
            if let Some(v) = patch.service_level_threshold_seconds {
                after.service_level_threshold_seconds = v;
            }
            if let Some(v) = patch.service_level_target_percent {
                after.service_level_target_percent = v;
            }
            if let Some(v) = patch.max_abandon_rate_percent {
                after.max_abandon_rate_percent = v;
            }
            let errors = validate_campaign(&after);
            if !errors.is_empty() {
                return Err(AppError::invalid_fields(errors));
            }
            if after == before.fields() {
                return Ok((before, Vec::new()));
            }
            let row = rows::update_campaign(conn, tenant, id, &after).await?;
            let restated = before.service_level_threshold_seconds != row.service_level_threshold_seconds;
            let hours = if restated {
                restate_scoped(conn, tenant, CallsOf::Campaign(id), &CAMPAIGN_THRESHOLD_COUNTERS).await?
            } else {
                Vec::new()
            };
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "campaign.update")
                .target("campaign", id)
                .details(serde_json::json!({
                    "before": before.fields(),
                    "after": after,
                    "restatedHours": hours.len(),
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((row, hours))
        })
        .await?;
    announce(state, tenant, hours);
    Ok(row)
}

/// Archives a campaign: it keeps its calls and KPIs and leaves the default listing. Archiving
/// an archived campaign answers it unchanged.
pub async fn archive_campaign(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<CampaignRow> {
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let before = rows::campaign_for_update(conn, tenant, id).await?;
        if before.status == CampaignStatus::Archived.as_str() {
            return Ok(before);
        }
        let mut after = before.fields();
        after.status = CampaignStatus::Archived.as_str().to_owned();
        let row = rows::update_campaign(conn, tenant, id, &after).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "campaign.archive")
            .target("campaign", id)
            .details(serde_json::json!({ "before": before.status }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(row)
    })
    .await
}

pub async fn create_disposition(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewDispositionInput,
    request_id: Option<String>,
) -> AppResult<DispositionRow> {
    let f = input.flags;
    let fields = DispositionFields {
        code: normalize_code(&input.code),
        label: input.label.trim().to_owned(),
        human_answered: f.human_answered,
        contact: f.contact,
        success: f.success,
        callback: f.callback,
        do_not_call: f.do_not_call,
        answering_machine: f.answering_machine,
        active: true,
    };
    let errors = validate_disposition(&fields);
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let row = rows::insert_disposition(conn, tenant, &fields).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "disposition.create")
            .target("disposition", row.id)
            .details(serde_json::json!({ "after": fields }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(row)
    })
    .await
}

pub async fn update_disposition(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    patch: DispositionPatch,
    request_id: Option<String>,
) -> AppResult<DispositionRow> {
    let mut conn = state.db.get(tenant).await?;
    let (row, hours) = conn
        .transaction(async |conn| -> AppResult<(DispositionRow, Vec<DateTime<Utc>>)> {
            hold_counting_rules(conn, tenant).await?;
            let before = rows::disposition_for_update(conn, tenant, id).await?;
            let mut after = before.fields();
            if let Some(label) = &patch.label {
                after.label = label.trim().to_owned();
            }
            let set = |field: &mut bool, value: Option<bool>| {
                if let Some(v) = value {
                    *field = v;
                }
            };
            set(&mut after.human_answered, patch.human_answered);
            set(&mut after.contact, patch.contact);
            set(&mut after.success, patch.success);
            set(&mut after.callback, patch.callback);
            set(&mut after.do_not_call, patch.do_not_call);
            set(&mut after.answering_machine, patch.answering_machine);
            set(&mut after.active, patch.active);
            let errors = validate_disposition(&after);
            if !errors.is_empty() {
                return Err(AppError::invalid_fields(errors));
            }
            if after == before.fields() {
                return Ok((before, Vec::new()));
            }
            let row = rows::update_disposition(conn, tenant, id, &after).await?;
            let restated = (before.contact, before.success) != (row.contact, row.success);
            let hours = if restated {
                restate_scoped(conn, tenant, CallsOf::Disposition(id), &DISPOSITION_FLAG_COUNTERS).await?
            } else {
                Vec::new()
            };
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "disposition.update")
                .target("disposition", id)
                .details(serde_json::json!({
                    "before": before.fields(),
                    "after": after,
                    "restatedHours": hours.len(),
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((row, hours))
        })
        .await?;
    announce(state, tenant, hours);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(code: &str) -> DispositionFields {
        DispositionFields {
            code: code.into(),
            label: "Label".into(),
            human_answered: false,
            contact: false,
            success: false,
            callback: false,
            do_not_call: false,
            answering_machine: false,
            active: true,
        }
    }

    #[test]
    fn disposition_flags_follow_the_table_rules_by_field() {
        assert!(validate_disposition(&disposition("SALE_1")).is_empty());
        let fields =
            |d: &DispositionFields| -> Vec<String> { validate_disposition(d).into_iter().map(|e| e.field).collect() };
        let mut d = disposition("bad code");
        d.success = true;
        d.answering_machine = true;
        d.human_answered = true;
        assert_eq!(fields(&d), ["input.code", "input.success", "input.answeringMachine"]);
        let mut d = disposition("X");
        d.contact = true;
        assert_eq!(fields(&d), ["input.contact"]);
        assert_eq!(normalize_code("  sale "), "SALE");
    }

    #[test]
    fn campaign_fields_are_checked_by_field() {
        let fields = CampaignFields {
            name: String::new(),
            direction: "INBOUND".into(),
            dial_mode: Some("PREDICTIVE".into()),
            status: "ACTIVE".into(),
            service_level_threshold_seconds: Some(0),
            service_level_target_percent: Some(f64::NAN),
            max_abandon_rate_percent: Some(101.0),
        };
        let named: Vec<String> = validate_campaign(&fields).into_iter().map(|e| e.field).collect();
        assert_eq!(
            named,
            [
                "input.name",
                "input.dialMode",
                "input.serviceLevelThresholdSeconds",
                "input.serviceLevelTargetPercent",
                "input.maxAbandonRatePercent"
            ]
        );
    }
}
