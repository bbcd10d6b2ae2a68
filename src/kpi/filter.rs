//! Validation of KPI filters, and their resolution into a query [`Scope`]: every id must
//! belong to the tenant (another tenant's id is reported as unknown, naming the field), the
//! interval must be ordered and bounded.

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre as cc;
use crate::domain::ids::parse_id_list;
use crate::domain::Direction;
use crate::error::{AppError, AppResult, FieldError};
use crate::kpi::query::Scope;

/// The longest interval one KPI query may cover.
pub const MAX_RANGE_DAYS: i64 = 400;

/// A filter as the API receives it (ids still unparsed).
#[derive(Debug, Clone, Default)]
pub struct RawFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub campaign_ids: Option<Vec<String>>,
    pub team_ids: Option<Vec<String>>,
    pub agent_ids: Option<Vec<String>>,
    pub direction: Option<Direction>,
}

#[derive(Debug, Clone)]
pub struct ResolvedFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub scope: Scope,
}

fn parse_ids(field: &str, ids: &Option<Vec<String>>, errors: &mut Vec<FieldError>) -> Option<Vec<Uuid>> {
    let ids = ids.as_ref()?;
    Some(parse_id_list(field, ids).unwrap_or_else(|refused| {
        errors.extend(refused);
        Vec::new()
    }))
}

fn report_unknown(field: &str, asked: &[Uuid], found: &[Uuid], errors: &mut Vec<FieldError>) {
    for (i, id) in asked.iter().enumerate() {
        if !found.contains(id) {
            errors.push(FieldError::new(format!("{field}[{i}]"), "unknown id"));
        }
    }
}

/// Checks the interval only (for callers that build their own scope).
pub fn check_interval(prefix: &str, from: DateTime<Utc>, to: DateTime<Utc>, errors: &mut Vec<FieldError>) {
    if from >= to {
        errors.push(FieldError::new(format!("{prefix}.to"), "must be after `from`"));
    } else if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        errors.push(FieldError::new(
            format!("{prefix}.to"),
            format!("the interval may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
}

/// Validates and resolves a filter; `prefix` is the argument name used in error paths.
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    prefix: &str,
    raw: &RawFilter,
) -> AppResult<ResolvedFilter> {
    let mut errors = Vec::new();
    check_interval(prefix, raw.from, raw.to, &mut errors);
    let campaigns = parse_ids(&format!("{prefix}.campaignIds"), &raw.campaign_ids, &mut errors);
    let teams = parse_ids(&format!("{prefix}.teamIds"), &raw.team_ids, &mut errors);
    let agents = parse_ids(&format!("{prefix}.agentIds"), &raw.agent_ids, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    if let Some(ids) = &campaigns {
        let found = cc::existing_campaigns(conn, tenant, ids).await?;
        report_unknown(&format!("{prefix}.campaignIds"), ids, &found, &mut errors);
    }
    if let Some(ids) = &agents {
        let found = cc::existing_agents(conn, tenant, ids).await?;
        report_unknown(&format!("{prefix}.agentIds"), ids, &found, &mut errors);
    }
    let mut team_agents = None;
    if let Some(ids) = &teams {
        let found = cc::existing_teams(conn, tenant, ids).await?;
        report_unknown(&format!("{prefix}.teamIds"), ids, &found, &mut errors);
        team_agents = Some(cc::agents_in_teams(conn, tenant, ids).await?);
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    // Team and agent filters combine as AND: agents named AND in one of the teams.
    let agent_ids = match (agents, team_agents) {
        (Some(a), Some(t)) => Some(a.into_iter().filter(|id| t.contains(id)).collect()),
        (a, t) => a.or(t),
    };
    Ok(ResolvedFilter {
        from: raw.from,
        to: raw.to,
        scope: Scope {
            campaign_ids: campaigns,
            agent_ids,
            direction: raw.direction,
        },
    })
}
