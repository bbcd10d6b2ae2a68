//! Outbound-abandonment compliance per campaign: the UK (Ofcom, rolling 24 hours) and US (FTC,
//! rolling 30 days) rates against the campaign's limit, with the counts behind them.

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, CampaignDirectoryEntry};
use crate::domain::Direction;
use crate::error::{AppError, AppResult, FieldError};
use crate::kpi::metrics::MetricName;
use crate::kpi::metrics::{self, Evaluated, MetricDef, ServiceLevelRule};
use crate::kpi::organization_rule;
use crate::kpi::plan::*;
use crate::kpi::query::{Aggregates, GroupKey, GroupSpec, Scope};

/// Outbound abandonment limit when a campaign sets none (UK Ofcom and US FTC: 3 %).
pub const DEFAULT_ABANDON_LIMIT_PERCENT: f64 = 3.0;
/// A compliance rate at or above this share of its limit is a WARNING.
pub const WARNING_SHARE_OF_LIMIT: f64 = 0.8;

/// OK below 80 % of the limit, WARNING from 80 % up to the limit, BREACH above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ComplianceLevel {
    Ok,
    Warning,
    Breach,
}

/// One rolling window of one campaign's outbound abandonment.
pub struct ComplianceWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The registry's evaluation (rate in percent, numerator, denominator, formula).
    pub rate: Evaluated,
    pub limit: f64,
    pub status: ComplianceLevel,
    pub drops: i64,
    pub live: i64,
    /// Machine answers passed to an agent (the AM of the UK rule).
    pub machine_answered: i64,
    /// Machine answers that never reached an agent.
    pub machine_detected: i64,
    pub human_answered: i64,
}

impl ComplianceWindow {
    /// `limit − rate`; null when the rate is (no live calls).
    pub fn headroom(&self) -> Option<f64> {
        self.rate.value.map(|r| self.limit - r)
    }
}

pub struct ComplianceRow {
    pub campaign: CampaignDirectoryEntry,
    pub limit: f64,
    /// UK (Ofcom): rolling 24 hours.
    pub uk: ComplianceWindow,
    /// US (FTC): rolling 30 days.
    pub us: ComplianceWindow,
}

impl ComplianceRow {
    /// The worse of the two.
    pub fn status(&self) -> ComplianceLevel {
        self.uk.status.max(self.us.status)
    }
}

pub fn compliance_level(rate: Option<f64>, limit: f64) -> ComplianceLevel {
    match rate {
        Some(r) if r > limit => ComplianceLevel::Breach,
        Some(r) if limit > 0.0 && r >= WARNING_SHARE_OF_LIMIT * limit => ComplianceLevel::Warning,
        _ => ComplianceLevel::Ok,
    }
}

fn compliance_window(
    def: &MetricDef,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: f64,
    a: &Aggregates,
    rule: &ServiceLevelRule,
) -> ComplianceWindow {
    let rate = metrics::evaluate_one(def, a, rule);
    let status = compliance_level(rate.value, limit);
    let c = &a.calls;
    ComplianceWindow {
        start,
        end,
        status,
        limit,
        drops: c.drops,
        // The live calls of the UK formula: its denominator less its numerator (D' + live − D').
        live: rate.denominator.map_or(0, |d| (d - rate.numerator).round() as i64),
        machine_answered: c.machine_answered,
        machine_detected: c.machine_detected,
        human_answered: c.human_answered,
        rate,
    }
}

/// Outbound abandonment per OUTBOUND campaign (`campaign_ids`, or every outbound campaign),
/// UK over `now − 24 h .. now` and US over `now − 30 days .. now`, against the campaign's
/// `max_abandon_rate_percent` (3 % when unset). `field` names the ids argument in errors.
pub async fn compliance_status(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    field: &str,
    campaign_ids: Option<&[String]>,
    now: DateTime<Utc>,
) -> AppResult<Vec<ComplianceRow>> {
    let directory = cc::campaign_directory(conn, tenant).await?;
    let campaigns: Vec<CampaignDirectoryEntry> = match campaign_ids {
        None => directory
            .into_iter()
            .filter(|c| c.direction == Direction::Outbound.as_str())
            .collect(),
        Some(ids) => {
            let mut errors = Vec::new();
            if ids.len() > 1_000 {
                errors.push(FieldError::new(field, "at most 1000 ids"));
            }
            let mut chosen = Vec::new();
            for (i, raw) in ids.iter().enumerate() {
                let found = Uuid::parse_str(raw)
                    .ok()
                    .and_then(|id| directory.iter().find(|c| c.id == id));
                match found {
                    None if Uuid::parse_str(raw).is_err() => {
                        errors.push(FieldError::new(format!("{field}[{i}]"), "not a valid id"))
                    }
                    None => errors.push(FieldError::new(format!("{field}[{i}]"), "unknown id")),
                    Some(c) if c.direction != Direction::Outbound.as_str() => {
                        errors.push(FieldError::new(format!("{field}[{i}]"), "not an OUTBOUND campaign"))
                    }
                    Some(c) => {
                        if !chosen.iter().any(|x: &CampaignDirectoryEntry| x.id == c.id) {
                            chosen.push(c.clone());
                        }
                    }
                }
            }
            if !errors.is_empty() {
                return Err(AppError::invalid_fields(errors));
            }
            chosen
        }
    };
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    let (rule, tz) = organization_rule(conn, tenant).await?;
    let uk_def = MetricName::OutboundAbandonRateUk.def()?;
    let us_def = MetricName::OutboundAbandonRateUs.def()?;
    let scope = Scope {
        campaign_ids: Some(campaigns.iter().map(|c| c.id).collect()),
        ..Scope::default()
    };
    let group = GroupSpec {
        campaign: true,
        ..GroupSpec::default()
    };
    let keys = LevelKeys {
        agents: Vec::new(),
        campaigns: Vec::new(),
    };
    let uk_window = (now - TimeDelta::hours(24), now);
    let us_window = (now - TimeDelta::days(30), now);
    let mut windows = Vec::with_capacity(2);
    for (from, to) in [uk_window, us_window] {
        let sources = plan_sources(from, to, &[], false).with_days(tz, &[]);
        let read = GroupRead {
            scope: &scope,
            group: &group,
            sources: &sources,
            keys: &keys,
            calls: Some(with_evidence(counter_mask(&[uk_def, us_def], &rule))),
            agent_time: false,
        };
        windows.push(aggregate_groups(conn, None, tenant, read).await?);
    }
    let (us, uk) = (windows.pop().unwrap_or_default(), windows.pop().unwrap_or_default());
    Ok(campaigns
        .into_iter()
        .map(|campaign| {
            let key = GroupKey {
                campaign: Some(campaign.id),
                ..GroupKey::default()
            };
            let limit = campaign
                .max_abandon_rate_percent
                .unwrap_or(DEFAULT_ABANDON_LIMIT_PERCENT);
            let uk_agg = uk.get(&key).copied().unwrap_or_default();
            let us_agg = us.get(&key).copied().unwrap_or_default();
            ComplianceRow {
                uk: compliance_window(uk_def, uk_window.0, uk_window.1, limit, &uk_agg, &rule),
                us: compliance_window(us_def, us_window.0, us_window.1, limit, &us_agg, &rule),
                limit,
                campaign,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_levels() {
        assert_eq!(compliance_level(None, 3.0), ComplianceLevel::Ok);
        assert_eq!(compliance_level(Some(2.3), 3.0), ComplianceLevel::Ok);
        assert_eq!(compliance_level(Some(0.1), 0.0), ComplianceLevel::Breach);
        assert_eq!(compliance_level(Some(2.5), 3.0), ComplianceLevel::Warning);
        assert_eq!(compliance_level(Some(3.0), 3.0), ComplianceLevel::Warning);
        assert_eq!(compliance_level(Some(3.01), 3.0), ComplianceLevel::Breach);
    }
}
