//! Dashboards: `dashboards`, `dashboard`, `defaultDashboard`, the mutations that write them,
//! and `dashboardUpdated`. Resolvers read arguments, call [`crate::dashboards`], and convert.
//! Who may do what, and how values are computed, shared and masked, is in that module's doc.
//!
//! `Dashboard.widgets` computes the values of every widget at once when `value` (or
//! `valueUnavailable`) is selected, each distinct widget query once: the statements of
//! `dashboard { widgets { value } }` grow with the distinct queries, not with the widgets.

use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::auth::{Permission, Role};
use crate::dashboards::follow::{self, DashboardUpdate};
use crate::dashboards::values::WidgetValue;
use crate::dashboards::widgets::{FilterInput, Grid, TableInput, Thresholds};
use crate::dashboards::{self, saved, Visibility, WidgetKind};
use crate::domain::Direction;
use crate::error::AppResult;
use crate::graphql::analytics::AnalyticsOrder;
use crate::graphql::context::{parse_id, principal, request_id, state};
use crate::graphql::guards::PermissionGuard;
use crate::kpi::analytics::Dimension;
use crate::kpi::time::Granularity;
use crate::reports::definition::metric_api_name;
use crate::reports::RelativeRange;

/// A widget's place on the dashboard's grid (48 columns; x 0–47, y 0–999, width and height
/// 1–48 cells).
#[derive(InputObject, SimpleObject, Clone, Copy)]
#[graphql(input_name = "GridInput")]
pub struct GridCell {
    x: i32,
    y: i32,
    width: i32,
    height: i32,
}

/// Which calls (or agents) a widget covers; combined with AND. An AGENT's widgets are forced
/// to their own agent. An agent grid takes teams and agents only.
#[derive(InputObject, Default)]
pub struct WidgetFilterInput {
    campaign_ids: Option<Vec<ID>>,
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

/// A tile's colours: `critical` beyond `warning` in the direction the metric gets worse
/// (`critical >= warning`: higher is worse, as an abandon rate; `critical < warning`: lower is
/// worse, as a service level). A value at a threshold takes its colour.
#[derive(InputObject, SimpleObject, Clone, Copy)]
#[graphql(input_name = "ThresholdsInput")]
pub struct TileThresholds {
    warning: f64,
    critical: f64,
}

/// A table's analytics query (its filter and range are the widget's), as `analytics` takes it.
#[derive(InputObject)]
pub struct WidgetTableInput {
    /// Metric enum names (`SERVICE_LEVEL`…).
    metrics: Vec<String>,
    #[graphql(default)]
    group_by: Vec<Dimension>,
    granularity: Option<Granularity>,
    #[graphql(default)]
    order_by: Vec<AnalyticsOrder>,
    limit: Option<i32>,
}

/// One widget. Which fields count depends on `kind`:
/// * KPI_TILE: `metric`, `range`, optional `target` and `thresholds`;
/// * TIME_SERIES: `metric`, `granularity`, `range`;
/// * TABLE: `table` (an analytics query) or `reportId` (a saved report; on a shared
///   dashboard, a shared report), and `range` for `table`;
/// * AGENT_GRID: `filter.teamIds` / `filter.agentIds`;
/// * COMPLIANCE_GAUGE: `campaignId`, an OUTBOUND campaign.
///
/// `range` (default TODAY) is resolved in the organization's time zone when the value is
/// computed. Refused (BAD_USER_INPUT naming the widget by index and title): unknown metric,
/// illegal grouping, a range over the analytics caps (e.g. 15-minute buckets over 30 days),
/// ids of no entity of the organization, fields of another kind.
#[derive(InputObject)]
pub struct DashboardWidgetInput {
    title: String,
    kind: WidgetKind,
    grid: GridCell,
    filter: Option<WidgetFilterInput>,
    range: Option<RelativeRange>,
    /// A metric enum name (`SERVICE_LEVEL`…).
    metric: Option<String>,
    target: Option<f64>,
    thresholds: Option<TileThresholds>,
    granularity: Option<Granularity>,
    table: Option<WidgetTableInput>,
    report_id: Option<ID>,
    campaign_id: Option<ID>,
}

/// A whole dashboard; an update replaces it, widgets included (at most 24).
#[derive(InputObject)]
pub struct DashboardInput {
    /// 1 to 200 characters.
    title: String,
    /// At most 2000 characters.
    description: Option<String>,
    visibility: Visibility,
    /// TEAM only: the team it is shared with (default: the owner's teams). A SUPERVISOR names
    /// a team they belong to or supervise.
    team_id: Option<ID>,
    #[graphql(default)]
    widgets: Vec<DashboardWidgetInput>,
}

fn ids(ids: Option<Vec<ID>>) -> Option<Vec<String>> {
    ids.map(|v| v.into_iter().map(|id| id.0).collect())
}

fn domain_input(input: DashboardInput) -> saved::DashboardInput {
    saved::DashboardInput {
        title: input.title,
        description: input.description,
        visibility: input.visibility,
        team_id: input.team_id.map(|id| id.0),
        widgets: input
            .widgets
            .into_iter()
            .map(|w| {
                let filter = w.filter.unwrap_or_default();
                dashboards::WidgetInput {
                    title: w.title,
                    kind: w.kind,
                    grid: Grid {
                        x: w.grid.x,
                        y: w.grid.y,
                        width: w.grid.width,
                        height: w.grid.height,
                    },
                    filter: FilterInput {
                        campaign_ids: ids(filter.campaign_ids),
                        team_ids: ids(filter.team_ids),
                        agent_ids: ids(filter.agent_ids),
                        direction: filter.direction,
                    },
                    range: w.range,
                    metric: w.metric,
                    target: w.target,
                    thresholds: w.thresholds.map(|t| Thresholds {
                        warning: t.warning,
                        critical: t.critical,
                    }),
                    granularity: w.granularity,
                    table: w.table.map(|t| TableInput {
                        metrics: t.metrics,
                        group_by: t.group_by,
                        granularity: t.granularity,
                        order_by: t.order_by.iter().map(AnalyticsOrder::term).collect(),
                        limit: t.limit,
                    }),
                    report_id: w.report_id.map(|id| id.0),
                    campaign_id: w.campaign_id.map(|id| id.0),
                }
            })
            .collect(),
    }
}

fn id_list(ids: &Option<Vec<uuid::Uuid>>) -> Option<Vec<ID>> {
    ids.as_ref().map(|v| v.iter().map(|id| ID(id.to_string())).collect())
}

/// A widget's filter as stored (an AGENT's forced to their own agent).
#[derive(SimpleObject)]
pub struct WidgetFilter {
    campaign_ids: Option<Vec<ID>>,
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

/// One widget of a dashboard, with its value for the caller.
pub struct DashboardWidget {
    widget: dashboards::Widget,
    value: Option<WidgetValue>,
}

#[Object]
impl DashboardWidget {
    async fn id(&self) -> ID {
        ID(self.widget.id.to_string())
    }
    /// Its index in the layout (0-based; errors name widgets by it).
    async fn position(&self) -> i32 {
        self.widget.position
    }
    async fn title(&self) -> &str {
        &self.widget.title
    }
    async fn kind(&self) -> WidgetKind {
        self.widget.kind
    }
    async fn grid(&self) -> GridCell {
        let g = self.widget.grid;
        GridCell {
            x: g.x,
            y: g.y,
            width: g.width,
            height: g.height,
        }
    }
    async fn filter(&self) -> WidgetFilter {
        let f = &self.widget.spec.filter;
        WidgetFilter {
            campaign_ids: id_list(&f.campaign_ids),
            team_ids: id_list(&f.team_ids),
            agent_ids: id_list(&f.agent_ids),
            direction: f.direction,
        }
    }
    async fn range(&self) -> Option<RelativeRange> {
        self.widget.spec.range
    }
    /// The metric's enum name (tiles and series).
    async fn metric(&self) -> Option<String> {
        self.widget.spec.metric.map(metric_api_name)
    }
    async fn target(&self) -> Option<f64> {
        self.widget.spec.target
    }
    async fn thresholds(&self) -> Option<TileThresholds> {
        self.widget.spec.thresholds.map(|t| TileThresholds {
            warning: t.warning,
            critical: t.critical,
        })
    }
    async fn granularity(&self) -> Option<Granularity> {
        self.widget.spec.granularity
    }
    /// A table's analytics query as stored (metrics, groupBy, granularity, orderBy, limit).
    async fn table(&self) -> Option<Json<Value>> {
        self.widget
            .spec
            .table
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .map(Json)
    }
    async fn report_id(&self) -> Option<ID> {
        self.widget.spec.report_id.map(|id| ID(id.to_string()))
    }
    async fn campaign_id(&self) -> Option<ID> {
        self.widget.spec.campaign_id.map(|id| ID(id.to_string()))
    }
    /// The widget's value for the caller, equal to its direct query's answer:
    /// * KPI_TILE `{metric, value, numerator, denominator, target, status (GREEN|AMBER|RED|null),
    ///   from}` — `kpiSummary`'s metric over the range;
    /// * TIME_SERIES `{metric, granularity, timezone, points: [{start, value}]}` — `kpiSeries`;
    /// * TABLE `{from, timezone, metrics, groupBy, granularity, totalRows, truncated, rows:
    ///   [{dimensions, values}]}` — `analytics` (or the saved report's result);
    /// * AGENT_GRID `{agents: [{id, name, teamId, teamName, presence, presenceReason,
    ///   presenceSince, routingState, routingSince, currentCall}]}` — `agentStates`, customer
    ///   numbers masked below SUPERVISOR;
    /// * COMPLIANCE_GAUGE `{campaignId, campaignName, limit, status, uk, us}` —
    ///   `complianceStatus` (rates in percent).
    ///
    /// Null with `valueUnavailable` when it cannot be shown (TABLE and COMPLIANCE_GAUGE below
    /// SUPERVISOR; an id deleted since).
    async fn value(&self) -> Option<Json<Value>> {
        self.value.as_ref().and_then(|v| v.value.clone()).map(Json)
    }
    /// Why `value` is null, when it is.
    async fn value_unavailable(&self) -> Option<&str> {
        self.value.as_ref().and_then(|v| v.unavailable.as_deref())
    }
}

/// A saved layout of widgets.
pub struct Dashboard(dashboards::Dashboard);

#[Object]
impl Dashboard {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn owner_id(&self) -> ID {
        ID(self.0.owner_id.to_string())
    }
    async fn visibility(&self) -> Visibility {
        self.0.visibility
    }
    /// The team a TEAM dashboard is shared with (null: the owner's teams).
    async fn team_id(&self) -> Option<ID> {
        self.0.team_id.map(|id| ID(id.to_string()))
    }
    /// Moves on every update: pass it back as `expectedVersion`.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The widgets by position. Selecting `value` computes every widget's value in this one
    /// request, each distinct query once.
    #[graphql(complexity = "24 * child_complexity")]
    async fn widgets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DashboardWidget>> {
        let lookahead = ctx.look_ahead();
        let wanted = lookahead.field("value").exists() || lookahead.field("valueUnavailable").exists();
        let values = if wanted {
            saved::values(state(ctx)?, principal(ctx)?, &self.0)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None; self.0.widgets.len()]
        };
        Ok(self
            .0
            .widgets
            .iter()
            .cloned()
            .zip(values)
            .map(|(widget, value)| DashboardWidget { widget, value })
            .collect())
    }
}

#[derive(Default)]
pub struct DashboardQueries;

#[Object]
impl DashboardQueries {
    /// The dashboards the caller may see, by title (at most 500). VIEWER+.
    #[graphql(
        guard = "PermissionGuard(Permission::ReadOrganization)",
        complexity = "50 * child_complexity"
    )]
    async fn dashboards(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Dashboard>> {
        let list = saved::list(state(ctx)?, principal(ctx)?).await?;
        Ok(list.into_iter().map(Dashboard).collect())
    }

    /// One dashboard the caller may see (NOT_FOUND otherwise, another organization's too);
    /// without `id`, the caller's role default (NOT_FOUND when none is set). VIEWER+.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn dashboard(&self, ctx: &Context<'_>, id: Option<ID>) -> async_graphql::Result<Dashboard> {
        let id = id.map(|id| parse_id(&id, "id")).transpose()?;
        Ok(Dashboard(saved::get(state(ctx)?, principal(ctx)?, id).await?))
    }

    /// The caller's role default, when an ADMIN set one. VIEWER+.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn default_dashboard(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Dashboard>> {
        Ok(saved::default_for(state(ctx)?, principal(ctx)?).await?.map(Dashboard))
    }
}

#[derive(Default)]
pub struct DashboardMutations;

#[Object]
impl DashboardMutations {
    /// Creates a dashboard owned by the caller. AGENT+ (an AGENT: PRIVATE, their own numbers
    /// only). Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn create_dashboard(&self, ctx: &Context<'_>, input: DashboardInput) -> async_graphql::Result<Dashboard> {
        let created = saved::create(state(ctx)?, principal(ctx)?, domain_input(input), request_id(ctx)).await?;
        Ok(Dashboard(created))
    }

    /// Replaces a dashboard (widgets included) if it is still at `expectedVersion` (CONFLICT
    /// otherwise: read it again). Its owner or an ADMIN. Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn update_dashboard(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: DashboardInput,
    ) -> async_graphql::Result<Dashboard> {
        let id = parse_id(&id, "id")?;
        let updated = saved::update(
            state(ctx)?,
            principal(ctx)?,
            id,
            expected_version,
            domain_input(input),
            request_id(ctx),
        )
        .await?;
        Ok(Dashboard(updated))
    }

    /// Copies a dashboard the caller sees into a PRIVATE one of theirs, "<title> (copy)".
    /// AGENT+. Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn duplicate_dashboard(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Dashboard> {
        let id = parse_id(&id, "id")?;
        let copy = saved::duplicate(state(ctx)?, principal(ctx)?, id, request_id(ctx)).await?;
        Ok(Dashboard(copy))
    }

    /// Deletes a dashboard: its owner or an ADMIN. Returns its id. Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn delete_dashboard(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let id = parse_id(&id, "id")?;
        let deleted = saved::delete(state(ctx)?, principal(ctx)?, id, request_id(ctx)).await?;
        Ok(ID(deleted.to_string()))
    }

    /// Sets the default dashboard of a role (an ORGANIZATION dashboard), or clears it with
    /// `id: null`. ADMIN+. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn set_default_dashboard(
        &self,
        ctx: &Context<'_>,
        role: Role,
        id: Option<ID>,
    ) -> async_graphql::Result<Option<Dashboard>> {
        let id = id.map(|id| parse_id(&id, "id")).transpose()?;
        let set = saved::set_default(state(ctx)?, principal(ctx)?, role, id, request_id(ctx)).await?;
        Ok(set.map(Dashboard))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum DashboardUpdateKind {
    /// Every widget: replace what you show.
    Snapshot,
    /// Only the widgets whose value changed.
    Delta,
}

/// One widget's new value.
#[derive(SimpleObject)]
pub struct WidgetValueUpdate {
    widget_id: ID,
    position: i32,
    /// As `DashboardWidget.value`.
    value: Option<Json<Value>>,
    value_unavailable: Option<String>,
}

/// One message of `dashboardUpdated`.
#[derive(SimpleObject)]
pub struct DashboardUpdated {
    kind: DashboardUpdateKind,
    dashboard_id: ID,
    widgets: Vec<WidgetValueUpdate>,
}

impl From<DashboardUpdate> for DashboardUpdated {
    fn from(update: DashboardUpdate) -> Self {
        DashboardUpdated {
            kind: if update.snapshot {
                DashboardUpdateKind::Snapshot
            } else {
                DashboardUpdateKind::Delta
            },
            dashboard_id: ID(update.dashboard_id.to_string()),
            widgets: update
                .widgets
                .into_iter()
                .map(|(id, position, v)| WidgetValueUpdate {
                    widget_id: ID(id.to_string()),
                    position,
                    value: v.value.map(Json),
                    value_unavailable: v.unavailable,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct DashboardSubscription;

#[Subscription]
impl DashboardSubscription {
    /// Every widget's value (a SNAPSHOT), then a DELTA with only the widgets whose value
    /// changed for the caller. Values are computed once per distinct widget query across every
    /// viewer of every dashboard on the instance (at most once a second, only when an event
    /// touched the query's scope). Without `id`: the caller's role default. When the dashboard
    /// (or the role default followed) changes, a new SNAPSHOT of the new layout; when it is
    /// deleted or no longer visible, the stream completes. VIEWER+, on a dashboard they may see.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn dashboard_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = DashboardUpdated>> {
        let id = id.map(|id| parse_id(&id, "id")).transpose()?;
        let stream: AppResult<_> = follow::follow(state(ctx)?, principal(ctx)?, id).await;
        Ok(stream?.map(DashboardUpdated::from))
    }
}
