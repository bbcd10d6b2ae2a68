//! Per-agent and per-campaign performance: every registry metric for each agent (or campaign)
//! in scope, all of them answered by one grouped read per source.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::SortDirection;
use super::{cmp_names, cmp_nulls_last, window_values};
use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, AgentDirectoryEntry, CampaignDirectoryEntry};
use crate::error::AppResult;
use crate::kpi::filter::ResolvedFilter;
use crate::kpi::metrics::{with_metric_names, MetricName};
use crate::kpi::plan::*;
use crate::kpi::query::{CounterMask, GroupKey, GroupSpec};
use crate::kpi::{organization_rule, WindowValues};

/// Generates [`AgentPerformanceOrderField`] from the registry's one list of metric names.
macro_rules! agent_order_field {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// What `agentPerformance` rows can be ordered by: the agent's display name, the team's
        /// name, or any metric of the registry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
        #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
        pub enum AgentPerformanceOrderField {
            Name,
            Team,
            $($variant),+
        }

        impl AgentPerformanceOrderField {
            pub fn metric(self) -> Option<MetricName> {
                match self {
                    Self::Name | Self::Team => None,
                    $(Self::$variant => Some(MetricName::$variant)),+
                }
            }
        }
    };
}
with_metric_names!(agent_order_field);

/// Which agents' rows a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentVisibility {
    /// SUPERVISOR and above.
    All,
    /// An AGENT: their own agent profile, if they have one.
    Own(Option<Uuid>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOrder {
    pub field: AgentPerformanceOrderField,
    pub direction: SortDirection,
}

impl Default for AgentOrder {
    fn default() -> Self {
        AgentOrder {
            field: AgentPerformanceOrderField::Name,
            direction: SortDirection::Asc,
        }
    }
}

pub struct AgentPerformanceRow {
    pub agent: AgentDirectoryEntry,
    pub values: WindowValues,
}

/// One row per agent in scope with every registry metric over `filter`'s interval; agents
/// without activity in the interval are listed when active. All agents are answered by one
/// grouped statement per source.
pub async fn agent_performance(
    conn: &mut AsyncPgConnection,
    spare: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    filter: &ResolvedFilter,
    visibility: AgentVisibility,
    order: AgentOrder,
) -> AppResult<Vec<AgentPerformanceRow>> {
    let mut scope = filter.scope.clone();
    if let AgentVisibility::Own(own) = visibility {
        let Some(own) = own else { return Ok(Vec::new()) };
        let visible = scope.agent_ids.as_ref().is_none_or(|ids| ids.contains(&own));
        if !visible {
            return Ok(Vec::new());
        }
        scope.agent_ids = Some(vec![own]);
    }
    let directory = cc::agent_directory(conn, tenant).await?;
    let (rule, tz) = organization_rule(conn, tenant).await?;
    let group = GroupSpec {
        agent: true,
        ..GroupSpec::default()
    };
    let sources = plan_sources(filter.from, filter.to, &[], false).with_days(tz, &[]);
    let keys = LevelKeys {
        agents: directory.iter().map(|a| a.id).collect(),
        campaigns: Vec::new(),
    };
    let read = GroupRead {
        scope: &scope,
        group: &group,
        sources: &sources,
        keys: &keys,
        calls: Some(CounterMask::ALL),
        agent_time: true,
    };
    let groups = aggregate_groups(conn, spare, tenant, read).await?;
    let mut rows: Vec<AgentPerformanceRow> = directory
        .into_iter()
        .filter(|a| scope.agent_ids.as_ref().is_none_or(|ids| ids.contains(&a.id)))
        .filter_map(|agent| {
            let key = GroupKey {
                agent: Some(agent.id),
                ..GroupKey::default()
            };
            let aggregates = groups.get(&key);
            if aggregates.is_none() && !agent.active {
                return None;
            }
            let values = window_values(filter.from, filter.to, rule, &aggregates.copied().unwrap_or_default());
            Some(AgentPerformanceRow { agent, values })
        })
        .collect();
    sort_agent_rows(&mut rows, order);
    Ok(rows)
}

fn sort_agent_rows(rows: &mut [AgentPerformanceRow], order: AgentOrder) {
    let descending = order.direction == SortDirection::Desc;
    let by_name = |a: &AgentPerformanceRow, b: &AgentPerformanceRow| {
        cmp_names(&a.agent.display_name, &b.agent.display_name).then_with(|| a.agent.id.cmp(&b.agent.id))
    };
    rows.sort_by(|a, b| {
        let primary = match order.field {
            AgentPerformanceOrderField::Name => {
                let o = by_name(a, b);
                return if descending { o.reverse() } else { o };
            }
            AgentPerformanceOrderField::Team => cmp_nulls_last(
                a.agent.team_name.as_deref(),
                b.agent.team_name.as_deref(),
                descending,
                |x, y| cmp_names(x, y),
            ),
            field => {
                let value = |row: &AgentPerformanceRow| field.metric().and_then(|m| row.values.value(m));
                cmp_nulls_last(value(a), value(b), descending, |x, y| x.total_cmp(y))
            }
        };
        primary.then_with(|| by_name(a, b))
    });
}

// ---------------------------------------------------------------------------------------------
// campaignPerformance

pub struct CampaignPerformanceRow {
    pub campaign: CampaignDirectoryEntry,
    /// Agent-time metrics (occupancy, calls per agent hour) are null: agent time belongs to no
    /// campaign.
    pub values: WindowValues,
}

/// One row per campaign in scope (the filter's campaigns, or all; of the filter's direction
/// when it names one), by name, from the (campaign, ALL) rollup level grouped by campaign (the
/// (campaign, agent) cells when the filter names agents or teams). Calls without a campaign
/// are in no row.
pub async fn campaign_performance(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    filter: &ResolvedFilter,
) -> AppResult<Vec<CampaignPerformanceRow>> {
    let directory = cc::campaign_directory(conn, tenant).await?;
    let (rule, tz) = organization_rule(conn, tenant).await?;
    let campaigns: Vec<CampaignDirectoryEntry> = directory
        .into_iter()
        .filter(|c| filter.scope.campaign_ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| filter.scope.direction.is_none_or(|d| d.as_str() == c.direction))
        .collect();
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    let mut scope = filter.scope.clone();
    scope.campaign_ids = Some(campaigns.iter().map(|c| c.id).collect());
    let group = GroupSpec {
        campaign: true,
        ..GroupSpec::default()
    };
    let sources = plan_sources(filter.from, filter.to, &[], false).with_days(tz, &[]);
    let keys = LevelKeys {
        agents: Vec::new(),
        campaigns: Vec::new(),
    };
    let read = GroupRead {
        scope: &scope,
        group: &group,
        sources: &sources,
        keys: &keys,
        calls: Some(CounterMask::ALL),
        agent_time: false,
    };
    let groups = aggregate_groups(conn, None, tenant, read).await?;
    Ok(campaigns
        .into_iter()
        .map(|campaign| {
            let key = GroupKey {
                campaign: Some(campaign.id),
                ..GroupKey::default()
            };
            let aggregates = groups.get(&key).copied().unwrap_or_default();
            let values = window_values(filter.from, filter.to, rule, &aggregates);
            CampaignPerformanceRow { campaign, values }
        })
        .collect())
}
