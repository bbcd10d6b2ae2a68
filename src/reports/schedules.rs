//! Report schedules: create, read, update (optimistic), pause, resume, rotate the webhook
//! secret, delete — all audited in the change's transaction — and the fire times to come.
//!
//! A schedule sends one report, in one format, on a cron pattern in a named zone
//! ([`crate::reports::cron`] says which dialect and which daylight-saving rules), to e-mail
//! recipients and/or one webhook (at least one of them). Who may do what: SUPERVISOR and above
//! who see the report create schedules for it and read its schedules (a VIEWER reads reports
//! but schedules nothing; an AGENT neither); the schedule's owner or an ADMIN changes or
//! deletes it. Another organization's schedule, or one of a report the caller does not see, is
//! NOT_FOUND; a visible schedule the caller may not change is FORBIDDEN.
//!
//! Every problem of an input is BAD_USER_INPUT naming its field (`input.cron`,
//! `input.timezone`, `input.format`, `input.recipients[2]`, `input.webhookUrl`), all at once,
//! and nothing is stored.
//!
//! The webhook secret (32 random bytes, hex) is made with the schedule, shown once in the
//! answer to `createReportSchedule` (and `rotateReportScheduleSecret`), and signs every webhook
//! of the schedule (see [`crate::reports::delivery`]). It is per schedule, not per
//! organization, so one receiver's leak exposes one schedule and rotating it bothers no other.
//!
//! Pausing stops fires; resuming starts again from the next fire after now (the fires missed
//! while paused do not run). Changing the pattern or zone also counts from now.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rand::RngCore;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::report_deliveries::{self as deliveries, DeliveryRow};
use crate::db::report_schedules::{self as rows, ScheduleFields, ScheduleRow};
use crate::db::reports as report_rows;
use crate::error::{AppError, AppResult, FieldError};
use crate::reports::cron::{self, Pattern};
use crate::reports::formats::ExportFormat;
use crate::reports::{may_create, may_edit, sees};
use crate::state::AppState;

/// At most this many recipients per schedule.
pub const MAX_RECIPIENTS: usize = 50;
/// The longest webhook URL.
pub const MAX_URL_CHARS: usize = 2048;

/// A schedule as callers see it (never with its secret).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: Uuid,
    pub report_id: Uuid,
    pub owner_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub format: ExportFormat,
    pub recipients: Vec<String>,
    pub webhook_url: Option<String>,
    pub paused: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<Uuid>,
    pub missed_fires: i64,
    pub last_error: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The stored name of a format (`CSV`).
pub fn format_name(format: ExportFormat) -> String {
    format.extension().to_ascii_uppercase()
}

/// A format by its name, any case (`csv`, `XLSX`).
pub fn format_named(name: &str) -> Option<ExportFormat> {
    ExportFormat::from_extension(&name.trim().to_ascii_lowercase())
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = AppError;

    fn try_from(row: ScheduleRow) -> AppResult<Self> {
        let format = format_named(&row.format)
            .ok_or_else(|| AppError::internal(format!("schedule {}: unknown stored format {}", row.id, row.format)))?;
        Ok(Schedule {
            id: row.id,
            report_id: row.report_id,
            owner_id: row.owner_id,
            cron: row.cron,
            timezone: row.timezone,
            format,
            recipients: row.recipients,
            webhook_url: row.webhook_url,
            paused: row.paused,
            next_fire_at: row.next_fire_at,
            last_fire_at: row.last_fire_at,
            last_run_id: row.last_run_id,
            missed_fires: row.missed_fires,
            last_error: row.last_error,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl Schedule {
    /// The next `n` fires after `now` (none while paused).
    pub fn next_fire_times(&self, now: DateTime<Utc>, n: usize) -> AppResult<Vec<DateTime<Utc>>> {
        if self.paused {
            return Ok(Vec::new());
        }
        let (pattern, tz) = stored_pattern(&self.cron, &self.timezone)?;
        Ok(pattern.next_n(tz, now, n.min(cron::MAX_LISTED)))
    }
}

/// A stored pattern and zone, read back (they were checked when written).
pub fn stored_pattern(pattern: &str, timezone: &str) -> AppResult<(Pattern, Tz)> {
    let pattern = cron::parse(pattern).map_err(AppError::internal)?;
    let tz = cron::zone(timezone).map_err(AppError::internal)?;
    Ok((pattern, tz))
}

/// What a caller writes: the whole schedule (an update replaces it).
#[derive(Debug, Clone)]
pub struct ScheduleInput {
    pub cron: String,
    pub timezone: String,
    pub format: String,
    pub recipients: Vec<String>,
    pub webhook_url: Option<String>,
}

/// An input checked and normalized.
struct Checked {
    cron: String,
    timezone: String,
    format: ExportFormat,
    recipients: Vec<String>,
    webhook_url: Option<String>,
    next_fire_at: Option<DateTime<Utc>>,
}

/// A webhook URL: absolute http(s) with a host, no credentials, no fragment.
fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|_| "not an absolute URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("must be an http or https URL with a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (the signature authenticates the request)".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(())
}

/// Checks every field of an input, reporting all problems at once.
fn check(input: &ScheduleInput, now: DateTime<Utc>) -> AppResult<Checked> {
    let mut errors = Vec::new();
    let cron_text = input.cron.split_whitespace().collect::<Vec<_>>().join(" ");
    let pattern = cron::parse(&cron_text)
        .map_err(|e| errors.push(FieldError::new("input.cron", e)))
        .ok();
    let timezone = input.timezone.trim().to_owned();
    let tz = cron::zone(&timezone)
        .map_err(|e| errors.push(FieldError::new("input.timezone", e)))
        .ok();
    let format = format_named(&input.format);
    if format.is_none() {
        errors.push(FieldError::new(
            "input.format",
            format!("`{}` is not an export format (CSV, JSON, …)", input.format),
        ));
    }
    let mut recipients: Vec<String> = Vec::new();
    for (i, recipient) in input.recipients.iter().enumerate() {
        let address = recipient.trim();
        match address.parse::<lettre::Address>() {
            Ok(_) if !recipients.iter().any(|r| r.eq_ignore_ascii_case(address)) => {
                recipients.push(address.to_owned());
            }
            Ok(_) => {}
            Err(_) => errors.push(FieldError::new(
                format!("input.recipients[{i}]"),
                format!("`{address}` is not an e-mail address"),
            )),
        }
    }
    if input.recipients.len() > MAX_RECIPIENTS {
        errors.push(FieldError::new(
            "input.recipients",
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    let webhook_url = input
        .webhook_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(url) = &webhook_url {
        if let Err(e) = check_webhook_url(url) {
            errors.push(FieldError::new("input.webhookUrl", e));
        }
    }
    if input.recipients.is_empty() && webhook_url.is_none() {
        errors.push(FieldError::new(
            "input.recipients",
            "give at least one recipient, or a webhookUrl",
        ));
    }
    let next_fire_at = match (&pattern, tz) {
        (Some(pattern), Some(tz)) => {
            let next = pattern.next_after(tz, now);
            if next.is_none() {
                errors.push(FieldError::new("input.cron", "the pattern never fires"));
            }
            next
        }
        _ => None,
    };
    match format {
        Some(format) if errors.is_empty() => Ok(Checked {
            cron: cron_text,
            timezone,
            format,
            recipients,
            webhook_url,
            next_fire_at,
        }),
        _ => Err(AppError::invalid_fields(errors)),
    }
}

fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

pub fn not_found() -> AppError {
    AppError::NotFound("report schedule not found".into())
}

fn require_scheduler(principal: &Principal) -> AppResult<()> {
    if may_create(principal.role) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "schedules require role SUPERVISOR or higher".into(),
        ))
    }
}

/// The report, if the caller sees it (NOT_FOUND otherwise, another tenant's too).
async fn visible_report(conn: &mut AsyncPgConnection, principal: &Principal, report_id: Uuid) -> AppResult<()> {
    report_rows::get(conn, &Tenant::of(principal), report_id)
        .await?
        .filter(|r| sees(principal, r.owner_id, r.shared))
        .map(|_| ())
        .ok_or_else(crate::reports::saved::not_found)
}

/// A schedule of a report the caller sees (NOT_FOUND otherwise).
async fn visible(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<ScheduleRow> {
    let row = rows::get(conn, &Tenant::of(principal), id)
        .await?
        .ok_or_else(not_found)?;
    visible_report(conn, principal, row.report_id)
        .await
        .map_err(|_| not_found())?;
    Ok(row)
}

/// A schedule the caller may change: visible, and theirs or the caller an ADMIN.
async fn editable(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<ScheduleRow> {
    let row = visible(conn, principal, id).await?;
    if !may_edit(principal, row.owner_id) {
        return Err(AppError::Forbidden(
            "only the schedule's owner or an ADMIN may change it".into(),
        ));
    }
    Ok(row)
}

fn details(row: &ScheduleRow) -> serde_json::Value {
    serde_json::json!({
        "reportId": row.report_id,
        "cron": row.cron,
        "timezone": row.timezone,
        "format": row.format,
        "recipients": row.recipients,
        "webhookUrl": row.webhook_url,
        "paused": row.paused,
        "version": row.version,
    })
}

/// Creates a schedule of a report the caller sees, owned by the caller (SUPERVISOR+). Returns
/// it with its webhook secret, shown this once. Audited.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    report_id: Uuid,
    input: ScheduleInput,
    request_id: Option<String>,
) -> AppResult<(Schedule, String)> {
    require_scheduler(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    visible_report(&mut conn, principal, report_id).await?;
    let checked = check(&input, Utc::now())?;
    let secret = new_secret();
    let format = format_name(checked.format);
    let row = conn
        .transaction(async |conn| -> AppResult<ScheduleRow> {
            let fields = ScheduleFields {
                cron: &checked.cron,
                timezone: &checked.timezone,
                format: &format,
                recipients: &checked.recipients,
                webhook_url: checked.webhook_url.as_deref(),
                next_fire_at: checked.next_fire_at,
            };
            let row = rows::insert(conn, &tenant, report_id, principal.user_id, fields, &secret).await?;
            let event = AuditEvent::new(
                Some(tenant.org_id()),
                Some(Actor::of(principal)),
                "report_schedule.create",
            )
            .target("report_schedule", row.id)
            .details(details(&row))
            .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(row)
        })
        .await?;
    Ok((Schedule::try_from(row)?, secret))
}

/// The schedules of a report the caller sees (SUPERVISOR+), oldest first.
pub async fn list(state: &AppState, principal: &Principal, report_id: Uuid) -> AppResult<Vec<Schedule>> {
    require_scheduler(principal)?;
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    visible_report(&mut conn, principal, report_id).await?;
    rows::list_for_report(&mut conn, &Tenant::of(principal), report_id)
        .await?
        .into_iter()
        .map(Schedule::try_from)
        .collect()
}

/// One schedule of a report the caller sees (SUPERVISOR+).
pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<Schedule> {
    require_scheduler(principal)?;
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    Schedule::try_from(visible(&mut conn, principal, id).await?)
}

/// A schedule's latest deliveries, newest first (the caller sees the schedule).
pub async fn deliveries_of(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    require_scheduler(principal)?;
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    let row = visible(&mut conn, principal, id).await?;
    deliveries::list_for_schedule(&mut conn, &Tenant::of(principal), row.id, limit).await
}

/// A change of a schedule (see [`change`]).
enum Change<'a> {
    Replace(&'a Checked),
    Pause,
    Resume,
    Secret(&'a str),
}

/// Runs a locked read-check-write change of a schedule the caller may edit, audited as
/// `action`, with the version check when `expected_version` is given.
async fn change(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    expected_version: Option<i32>,
    action: &'static str,
    request_id: Option<String>,
    what: Change<'_>,
) -> AppResult<ScheduleRow> {
    require_scheduler(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    editable(&mut conn, principal, id).await?;
    conn.transaction(async |conn| -> AppResult<ScheduleRow> {
        let current = rows::get_for_update(conn, &tenant, id).await?.ok_or_else(not_found)?;
        if let Some(expected) = expected_version {
            if current.version != expected {
                return Err(AppError::Conflict(format!(
                    "the schedule is at version {}, not {expected}: read it again and retry",
                    current.version
                )));
            }
        }
        let changed = match what {
            Change::Replace(checked) => {
                let format = format_name(checked.format);
                let fields = ScheduleFields {
                    cron: &checked.cron,
                    timezone: &checked.timezone,
                    format: &format,
                    recipients: &checked.recipients,
                    webhook_url: checked.webhook_url.as_deref(),
                    next_fire_at: if current.paused { None } else { checked.next_fire_at },
                };
                rows::update(conn, &tenant, id, fields).await?
            }
            Change::Pause => rows::set_paused(conn, &tenant, id, true, None).await?,
            Change::Resume => {
                let (pattern, tz) = stored_pattern(&current.cron, &current.timezone)?;
                let next = pattern.next_after(tz, Utc::now());
                rows::set_paused(conn, &tenant, id, false, next).await?
            }
            Change::Secret(secret) => rows::set_secret(conn, &tenant, id, secret).await?,
        };
        let row = changed.ok_or_else(not_found)?;
        let mut details = details(&row);
        details["fromVersion"] = serde_json::json!(current.version);
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), action)
            .target("report_schedule", row.id)
            .details(details)
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(row)
    })
    .await
}

/// Replaces a schedule's pattern, zone, format and targets if it is still at
/// `expected_version` (CONFLICT otherwise). The owner or an ADMIN. Audited.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    expected_version: i32,
    input: ScheduleInput,
    request_id: Option<String>,
) -> AppResult<Schedule> {
    require_scheduler(principal)?;
    let checked = check(&input, Utc::now())?;
    let row = change(
        state,
        principal,
        id,
        Some(expected_version),
        "report_schedule.update",
        request_id,
        Change::Replace(&checked),
    )
    .await?;
    Schedule::try_from(row)
}

/// Pauses (no fire until resumed) or resumes (from the next fire after now). The owner or an
/// ADMIN. Audited; pausing a paused schedule changes nothing but is still recorded.
pub async fn set_paused(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    paused: bool,
    request_id: Option<String>,
) -> AppResult<Schedule> {
    let (action, what) = if paused {
        ("report_schedule.pause", Change::Pause)
    } else {
        ("report_schedule.resume", Change::Resume)
    };
    let row = change(state, principal, id, None, action, request_id, what).await?;
    Schedule::try_from(row)
}

/// A new webhook secret, returned this once (the old one stops signing at once). The owner
/// or an ADMIN. Audited (without the secret).
pub async fn rotate_secret(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<(Schedule, String)> {
    let secret = new_secret();
    let row = change(
        state,
        principal,
        id,
        None,
        "report_schedule.rotate_secret",
        request_id,
        Change::Secret(&secret),
    )
    .await?;
    Ok((Schedule::try_from(row)?, secret))
}

/// Deletes a schedule (its past runs stay, without it). The owner or an ADMIN. Audited.
pub async fn delete(state: &AppState, principal: &Principal, id: Uuid, request_id: Option<String>) -> AppResult<Uuid> {
    require_scheduler(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let row = editable(&mut conn, principal, id).await?;
    conn.transaction(async |conn| -> AppResult<()> {
        if !rows::delete(conn, &tenant, id).await? {
            return Err(not_found());
        }
        let event = AuditEvent::new(
            Some(tenant.org_id()),
            Some(Actor::of(principal)),
            "report_schedule.delete",
        )
        .target("report_schedule", id)
        .details(details(&row))
        .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ScheduleInput {
        ScheduleInput {
            cron: "30 2 * * *".into(),
            timezone: "Europe/Paris".into(),
            format: "csv".into(),
            recipients: vec!["ops@example.com".into()],
            webhook_url: None,
        }
    }

    fn fields(result: AppResult<Checked>) -> Vec<String> {
        match result {
            Err(AppError::BadUserInput { fields, .. }) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let now = Utc::now();
        assert!(check(&input(), now).is_ok());
        let bad = ScheduleInput {
            cron: "61 * * * *".into(),
            timezone: "Europe/Atlantis".into(),
            format: "docx".into(),
            recipients: vec!["ok@example.com".into(), "not an address".into()],
            webhook_url: Some("ftp://example.com/hook".into()),
        };
        assert_eq!(
            fields(check(&bad, now)),
            [
                "input.cron",
                "input.timezone",
                "input.format",
                "input.recipients[1]",
                "input.webhookUrl"
            ]
        );
        let nobody = ScheduleInput {
            recipients: Vec::new(),
            ..input()
        };
        assert_eq!(fields(check(&nobody, now)), ["input.recipients"]);
        let hook_only = ScheduleInput {
            recipients: Vec::new(),
            webhook_url: Some("https://hooks.example.com/omnivox".into()),
            ..input()
        };
        assert!(check(&hook_only, now).is_ok());
        for url in [
            "hooks.example.com",
            "https://user:pw@example.com/",
            "https://a.example/#f",
            "mailto:x@example.com",
        ] {
            assert!(check_webhook_url(url).is_err(), "{url}");
        }
    }
}
