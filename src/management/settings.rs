//! Business settings: validation and the optimistic-concurrency update.

use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::models::{OrgRow, SettingsRow};
use crate::db::orgs;
use crate::domain::ServiceLevelVariant;
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::BusEvent;
use crate::state::AppState;

/// Opening hours on one weekday (ISO: Monday = 1 … Sunday = 7), `HH:MM` in the org's zone.
/// A weekday may have several intervals (a lunch closure); they must not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHoursInterval {
    pub weekday: i32,
    pub open: String,
    pub close: String,
}

/// A partial update: None leaves the setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub timezone: Option<String>,
    pub service_level_threshold_seconds: Option<i32>,
    pub service_level_target_percent: Option<f64>,
    pub service_level_variant: Option<ServiceLevelVariant>,
    pub short_abandon_seconds: Option<i32>,
    pub max_abandon_rate_percent: Option<f64>,
    pub wrap_up_limit_seconds: Option<i32>,
    pub business_hours: Option<Vec<BusinessHoursInterval>>,
    pub holidays: Option<Vec<NaiveDate>>,
    pub data_retention_days: Option<i32>,
    pub exclude_short_abandons_from_abandon_rate: Option<bool>,
    pub exclude_short_abandons_from_service_level: Option<bool>,
    /// Every read of other agents' performance leaves an audit record.
    pub audit_performance_reads: Option<bool>,
    /// `Some(None)`: back to the organization's creation.
    pub history_horizon: Option<Option<DateTime<Utc>>>,
    pub supervisors_see_all_agents: Option<bool>,
}

pub const MAX_BUSINESS_HOURS_INTERVALS: usize = 28;
pub const MAX_HOLIDAYS: usize = 400;

/// Minutes since midnight of `HH:MM` (24:00 allowed as a closing time).
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1_440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn check_int(errors: &mut Vec<FieldError>, field: &str, value: Option<i32>, min: i32, max: i32) {
    if let Some(v) = value {
        if !(min..=max).contains(&v) {
            errors.push(FieldError::new(
                format!("input.{field}"),
                format!("must be between {min} and {max}"),
            ));
        }
    }
}

fn check_percent(errors: &mut Vec<FieldError>, field: &str, value: Option<f64>) {
    if let Some(v) = value {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            errors.push(FieldError::new(
                format!("input.{field}"),
                "must be a percentage between 0 and 100",
            ));
        }
    }
}

/// Every problem of a patch, each with its field path.
pub fn validate(patch: &SettingsPatch) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(zone) = &patch.timezone {
        if zone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(FieldError::new(
                "input.timezone",
                "not an IANA time zone name (e.g. Europe/London)",
            ));
        }
    }
    check_int(
        &mut errors,
        "serviceLevelThresholdSeconds",
        patch.service_level_threshold_seconds,
        1,
        3_600,
    );
    check_percent(
        &mut errors,
        "serviceLevelTargetPercent",
        patch.service_level_target_percent,
    );
    check_int(&mut errors, "shortAbandonSeconds", patch.short_abandon_seconds, 0, 600);
    check_percent(&mut errors, "maxAbandonRatePercent", patch.max_abandon_rate_percent);
    check_int(&mut errors, "wrapUpLimitSeconds", patch.wrap_up_limit_seconds, 0, 7_200);
    check_int(&mut errors, "dataRetentionDays", patch.data_retention_days, 1, 3_650);
    if let Some(hours) = &patch.business_hours {
        if hours.len() > MAX_BUSINESS_HOURS_INTERVALS {
            errors.push(FieldError::new(
                "input.businessHours",
                format!("at most {MAX_BUSINESS_HOURS_INTERVALS} intervals"),
            ));
        }
        let mut parsed: Vec<(i32, u32, u32, usize)> = Vec::new();
        for (i, interval) in hours.iter().enumerate() {
            let path = format!("input.businessHours[{i}]");
            if !(1..=7).contains(&interval.weekday) {
                errors.push(FieldError::new(
                    format!("{path}.weekday"),
                    "must be 1 (Monday) to 7 (Sunday)",
                ));
            }
            let open = minutes(&interval.open);
            let close = minutes(&interval.close);
            if open.is_none_or(|m| m >= 1_440) {
                errors.push(FieldError::new(
                    format!("{path}.open"),
                    "must be a time HH:MM from 00:00 to 23:59",
                ));
            }
            if close.is_none() {
                errors.push(FieldError::new(
                    format!("{path}.close"),
                    "must be a time HH:MM from 00:01 to 24:00",
                ));
            }
            if let (Some(o), Some(c)) = (open, close) {
                if c <= o {
                    errors.push(FieldError::new(format!("{path}.close"), "must be after open"));
                } else {
                    parsed.push((interval.weekday, o, c, i));
                }
            }
        }
        parsed.sort_unstable();
        for pair in parsed.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.0 == b.0 && b.1 < a.2 {
                errors.push(FieldError::new(
                    format!("input.businessHours[{}]", b.3),
                    format!("overlaps input.businessHours[{}] on the same weekday", a.3),
                ));
            }
        }
    }
    if let Some(Some(horizon)) = patch.history_horizon {
        if horizon > Utc::now() {
            errors.push(FieldError::new("input.historyHorizon", "must not be in the future"));
        } else if horizon < DateTime::UNIX_EPOCH {
            // Agents' routing history starts at the epoch (ingest::routing_log).
            errors.push(FieldError::new("input.historyHorizon", "must not be before 1970"));
        }
    }
    if let Some(holidays) = &patch.holidays {
        if holidays.len() > MAX_HOLIDAYS {
            errors.push(FieldError::new(
                "input.holidays",
                format!("at most {MAX_HOLIDAYS} dates"),
            ));
        }
    }
    errors
}

/// Refuses to switch short abandons out of the service level under a variant that already
/// decides it: the default variant always leaves them out, answered within T / answered never
/// counts an abandon. (A flag stored earlier stays stored when the variant changes later; the
/// variant then decides, and every service-level value reports what was applied.)
pub fn check_short_abandon_choice(patch: &SettingsPatch, variant: ServiceLevelVariant) -> Option<FieldError> {
    let fixed = matches!(
        variant,
        ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons
            | ServiceLevelVariant::AnsweredWithinOverAnswered
    );
    (fixed && patch.exclude_short_abandons_from_service_level == Some(true)).then(|| {
        FieldError::new(
            "input.excludeShortAbandonsFromServiceLevel",
            format!(
                "the service-level variant {} already decides whether short abandons count",
                variant.as_str()
            ),
        )
    })
}

/// The stored business hours (written only by [`update`], so always well-formed).
pub fn business_hours(row: &SettingsRow) -> Vec<BusinessHoursInterval> {
    serde_json::from_value(row.business_hours.clone()).unwrap_or_default()
}

pub fn holidays(row: &SettingsRow) -> Vec<NaiveDate> {
    row.holidays.iter().flatten().copied().collect()
}

/// Applies a validated patch to the stored row, or refuses with CONFLICT when the caller's
/// `expected_version` is stale. Audited with before and after; published after commit.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    patch: SettingsPatch,
    expected_version: i32,
    request_id: Option<String>,
) -> AppResult<(OrgRow, SettingsRow)> {
    let errors = validate(&patch);
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    let result = conn
        .transaction(async |conn| -> AppResult<(OrgRow, SettingsRow)> {
            let before = orgs::settings_for_update(conn, tenant).await?;
            let org_before = orgs::get(conn, tenant).await?;
            if before.version != expected_version {
                return Err(AppError::Conflict(format!(
                    "business settings changed since version {expected_version}; the current version is {}",
                    before.version
                )));
            }
            let variant_after = match patch.service_level_variant {
                Some(v) => v,
                None => ServiceLevelVariant::from_stored(&before.service_level_variant)?,
            };
            if let Some(error) = check_short_abandon_choice(&patch, variant_after) {
                return Err(AppError::invalid_fields(vec![error]));
            }
            let mut changes = before.changes();
            if let Some(v) = patch.service_level_threshold_seconds {
                changes.service_level_threshold_seconds = v;
            }
            if let Some(v) = patch.service_level_target_percent {
                changes.service_level_target_percent = v;
            }
            if let Some(v) = patch.service_level_variant {
                changes.service_level_variant = v.as_str().to_owned();
            }
            if let Some(v) = patch.short_abandon_seconds {
                changes.short_abandon_seconds = v;
            }
            if let Some(v) = patch.max_abandon_rate_percent {
                changes.max_abandon_rate_percent = v;
            }
            if let Some(v) = patch.wrap_up_limit_seconds {
                changes.wrap_up_limit_seconds = v;
            }
            if let Some(v) = &patch.business_hours {
                changes.business_hours = serde_json::to_value(v)?;
            }
            if let Some(v) = &patch.holidays {
                let mut dates = v.clone();
                dates.sort_unstable();
                dates.dedup();
                changes.holidays = dates.into_iter().map(Some).collect();
            }
            if let Some(v) = patch.data_retention_days {
                changes.data_retention_days = v;
            }
            // Formula choices: the counters stay as they are, so nothing is re-stated.
            if let Some(v) = patch.exclude_short_abandons_from_abandon_rate {
                changes.exclude_short_abandons_from_abandon_rate = v;
            }
            if let Some(v) = patch.exclude_short_abandons_from_service_level {
                changes.exclude_short_abandons_from_service_level = v;
            }
            if let Some(v) = patch.audit_performance_reads {
                changes.audit_performance_reads = v;
            }
            // Only what may be written from now on: stored calls stay as they are.
            if let Some(v) = patch.history_horizon {
                changes.history_horizon = v;
            }
            // Who sees which agents: no KPI depends on it.
            if let Some(v) = patch.supervisors_see_all_agents {
                changes.supervisors_see_all_agents = v;
            }
            let after = orgs::update_settings(conn, tenant, expected_version, &changes, principal.user_id)
                .await?
                .ok_or_else(|| {
                    AppError::Conflict("business settings changed concurrently; re-read and retry".into())
                })?;
            let thresholds_changed = before.service_level_threshold_seconds != after.service_level_threshold_seconds
                || before.short_abandon_seconds != after.short_abandon_seconds;
            if thresholds_changed {
                // History is re-stated with the new thresholds, atomically with the change.
                crate::kpi::writer::recompute_threshold_counters(conn, tenant).await?;
            }
            let timezone_after = patch.timezone.clone().unwrap_or_else(|| org_before.timezone.clone());
            if timezone_after != org_before.timezone {
                orgs::set_timezone(conn, tenant, &timezone_after).await?;
                // Daily rollups are keyed by local date: re-keyed atomically with the change.
                crate::kpi::writer::rebuild_daily_rollups(conn, tenant).await?;
            }
            let mut before_json = serde_json::to_value(before.changes())?;
            let mut after_json = serde_json::to_value(&changes)?;
            before_json["timezone"] = org_before.timezone.clone().into();
            after_json["timezone"] = timezone_after.into();
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "settings.update")
                .target("business_settings", tenant.org_id())
                .details(serde_json::json!({
                    "fromVersion": before.version,
                    "toVersion": after.version,
                    "before": before_json,
                    "after": after_json,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            let org_after = orgs::get(conn, tenant).await?;
            Ok((org_after, after))
        })
        .await?;
    state.bus.publish(
        tenant.org_id(),
        BusEvent::Settings {
            version: result.1.version,
        },
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(weekday: i32, open: &str, close: &str) -> BusinessHoursInterval {
        BusinessHoursInterval {
            weekday,
            open: open.into(),
            close: close.into(),
        }
    }

    #[test]
    fn valid_patch_has_no_errors() {
        let patch = SettingsPatch {
            timezone: Some("America/New_York".into()),
            service_level_threshold_seconds: Some(30),
            business_hours: Some(vec![interval(1, "08:00", "12:00"), interval(1, "13:00", "24:00")]),
            ..Default::default()
        };
        assert!(validate(&patch).is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let patch = SettingsPatch {
            timezone: Some("Mars/Olympus".into()),
            service_level_threshold_seconds: Some(0),
            service_level_target_percent: Some(f64::NAN),
            business_hours: Some(vec![
                interval(8, "09:00", "17:00"),
                interval(2, "17:00", "09:00"),
                interval(3, "09:00", "17:00"),
                interval(3, "16:00", "18:00"),
                interval(4, "9:00", "25:00"),
            ]),
            ..Default::default()
        };
        let fields: Vec<String> = validate(&patch).into_iter().map(|e| e.field).collect();
        for expected in [
            "input.timezone",
            "input.serviceLevelThresholdSeconds",
            "input.serviceLevelTargetPercent",
            "input.businessHours[0].weekday",
            "input.businessHours[1].close",
            "input.businessHours[3]",
            "input.businessHours[4].open",
            "input.businessHours[4].close",
        ] {
            assert!(fields.iter().any(|f| f == expected), "missing {expected} in {fields:?}");
        }
    }

    #[test]
    fn short_abandons_can_be_switched_only_where_the_variant_leaves_the_choice() {
        let on = SettingsPatch {
            exclude_short_abandons_from_service_level: Some(true),
            ..Default::default()
        };
        let off = SettingsPatch {
            exclude_short_abandons_from_service_level: Some(false),
            ..Default::default()
        };
        for &variant in ServiceLevelVariant::ALL {
            let fixed = matches!(
                variant,
                ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons
                    | ServiceLevelVariant::AnsweredWithinOverAnswered
            );
            let refused = check_short_abandon_choice(&on, variant).map(|e| e.field);
            assert_eq!(
                refused.as_deref(),
                fixed.then_some("input.excludeShortAbandonsFromServiceLevel"),
                "{variant:?}"
            );
            assert!(check_short_abandon_choice(&off, variant).is_none(), "{variant:?}");
        }
    }

    #[test]
    fn variants_round_trip_through_storage() {
        for &v in ServiceLevelVariant::ALL {
            assert_eq!(ServiceLevelVariant::parse(v.as_str()), Some(v));
        }
    }
}
