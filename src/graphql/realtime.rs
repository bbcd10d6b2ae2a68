//! Agent presence and the live subscriptions: `setAgentPresence`, reason codes, `agentStates`,
//! `liveKpis`, `interactionEvents` and `complianceAlerts`.
//!
//! Subscription payloads are ordinary guarded objects resolved per subscriber, so guards and
//! masking apply exactly as in queries (a customer number on a live call is masked below
//! SUPERVISOR). Every subscription is scoped to the caller's organization (SUPER_ADMIN: an
//! explicit `orgId`, audited).
//!
//! The subscriptions' state machines (the board's delta merge, the call filter, the compliance
//! edge detector) live in [`crate::realtime`]; the resolvers here validate and parse their
//! arguments, start the realtime stream and map each item to its GraphQL object.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::auth::{Permission, Role};
use crate::db::presence::{self as db_presence, LiveAgentRow, ReasonCodeRow};
use crate::domain::ServiceLevelVariant;
use crate::domain::{Direction, Outcome, Presence, RoutingState};
use crate::error::{AppError, AppResult};
use crate::graphql::context::{parse_ids, principal, request_id, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::ingest;
use crate::kpi::analytics::ComplianceLevel;
use crate::management::presence as manage;
use crate::realtime::agents::{self, AgentFilter, BoardView};
use crate::realtime::compliance::{self, ComplianceEdge};
use crate::realtime::interactions::{self, CallBatch, CallFilter};
use crate::realtime::live::{self, LiveFilter, LiveTiles, WindowTiles};
use crate::realtime::{CallChange, StreamPosition};

/// An agent now: names and states (VIEWER+, like the wallboard), the current call's customer
/// number masked below SUPERVISOR.
pub struct AgentStatus(pub Arc<LiveAgentRow>);

#[Object]
impl AgentStatus {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.display_name
    }
    async fn team_id(&self) -> Option<ID> {
        self.0.team_id.map(|id| ID(id.to_string()))
    }
    async fn team_name(&self) -> Option<&str> {
        self.0.team_name.as_deref()
    }
    async fn presence(&self) -> async_graphql::Result<Presence> {
        Ok(Presence::from_stored(&self.0.presence)?)
    }
    /// The reason code of the presence, if any.
    async fn presence_reason(&self) -> Option<&str> {
        self.0.presence_reason.as_deref()
    }
    async fn presence_since(&self) -> DateTime<Utc> {
        self.0.presence_since
    }
    async fn routing_state(&self) -> async_graphql::Result<RoutingState> {
        Ok(RoutingState::from_stored(&self.0.routing_state)?)
    }
    async fn routing_since(&self) -> DateTime<Utc> {
        self.0.routing_since
    }
    /// The call the agent is ringing for, talking on or wrapping up.
    async fn current_call(&self) -> Option<LiveCall> {
        self.0.call_id.map(|_| LiveCall(self.0.clone()))
    }
}

/// The call an agent is on.
pub struct LiveCall(Arc<LiveAgentRow>);

#[Object]
impl LiveCall {
    async fn interaction_id(&self) -> Option<ID> {
        self.0.call_id.map(|id| ID(id.to_string()))
    }
    async fn external_id(&self) -> Option<&str> {
        self.0.call_external_id.as_deref()
    }
    async fn direction(&self) -> async_graphql::Result<Option<Direction>> {
        Ok(self
            .0
            .call_direction
            .as_deref()
            .map(Direction::from_stored)
            .transpose()?)
    }
    async fn campaign_id(&self) -> Option<ID> {
        self.0.call_campaign_id.map(|id| ID(id.to_string()))
    }
    /// Masked (e.g. `+44******1234`) below SUPERVISOR.
    async fn customer_number(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let Some(number) = self.0.call_customer_number.as_deref() else {
            return Ok(None);
        };
        let unmasked = principal(ctx)?.role >= Role::Supervisor;
        Ok(Some(if unmasked {
            number.to_owned()
        } else {
            ingest::mask_number(number)
        }))
    }
    async fn offered_at(&self) -> Option<DateTime<Utc>> {
        self.0.call_offered_at
    }
    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.0.call_answered_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatesKind {
    /// Every matching agent: replace what you show.
    Snapshot,
    /// Only the agents that changed (and `removedAgentIds`): update what you show.
    Delta,
}

/// One message of `agentStates`.
#[derive(SimpleObject)]
pub struct AgentStatesUpdate {
    kind: AgentStatesKind,
    /// A snapshot sent after a possible gap (bus reconnect, this subscriber fell behind).
    resync: bool,
    agents: Vec<AgentStatus>,
    /// Agents that left the view (deactivated).
    removed_agent_ids: Vec<ID>,
}

#[derive(InputObject, Default)]
pub struct AgentStatesFilter {
    /// Agents currently in one of these teams.
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
}

impl From<BoardView> for AgentStatesUpdate {
    fn from(view: BoardView) -> Self {
        match view {
            BoardView::Snapshot { resync, agents } => Self {
                kind: AgentStatesKind::Snapshot,
                resync,
                agents: agents.into_iter().map(AgentStatus).collect(),
                removed_agent_ids: Vec::new(),
            },
            BoardView::Delta { changed, removed } => Self {
                kind: AgentStatesKind::Delta,
                resync: false,
                agents: changed.into_iter().map(AgentStatus).collect(),
                removed_agent_ids: removed.into_iter().map(|id| ID(id.to_string())).collect(),
            },
        }
    }
}

#[derive(SimpleObject)]
pub struct PresenceReasonCode {
    code: String,
    presence: Presence,
    label: String,
    active: bool,
}

impl PresenceReasonCode {
    fn new(row: ReasonCodeRow) -> AppResult<Self> {
        Ok(Self {
            presence: Presence::from_stored(&row.presence)?,
            code: row.code,
            label: row.label,
            active: row.active,
        })
    }
}

#[derive(InputObject)]
pub struct PresenceReasonCodeInput {
    /// `A-Z`, `0-9`, `_`; 1 to 64 characters. The key: the same code updates the existing one.
    code: String,
    /// Any presence but AVAILABLE and OFFLINE.
    presence: Presence,
    label: String,
    /// Inactive codes are refused by `setAgentPresence` but keep their meaning in history.
    #[graphql(default = true)]
    active: bool,
}

#[derive(Default)]
pub struct RealtimeQuery;

#[Object]
impl RealtimeQuery {
    /// The organization's presence reason codes (inactive ones included).
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn presence_reason_codes(
        &self,
        ctx: &Context<'_>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Vec<PresenceReasonCode>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let rows = db_presence::reason_codes(&mut conn, &tenant).await?;
        Ok(rows
            .into_iter()
            .map(PresenceReasonCode::new)
            .collect::<AppResult<_>>()?)
    }
}

#[derive(Default)]
pub struct RealtimeMutation;

#[Object]
impl RealtimeMutation {
    /// Sets an agent's presence. Without `agentId`: the caller's own agent profile (AGENT+);
    /// with another agent's id: SUPERVISOR+ (audited as forced). `reason`: a reason code of the
    /// organization for that presence (required when it has any; none for AVAILABLE and
    /// OFFLINE). OFFLINE is refused while the agent is on a call. The same presence and reason
    /// again changes nothing. Returns the agent's state after the change.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn set_agent_presence(
        &self,
        ctx: &Context<'_>,
        agent_id: Option<ID>,
        presence: Presence,
        reason: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<AgentStatus> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let agent_id = agent_id
            .map(|id| Uuid::parse_str(id.as_str()).map_err(|_| AppError::NotFound("agent not found".into())))
            .transpose()?;
        let app = state(ctx)?;
        let change = manage::set_presence(app, caller, &tenant, agent_id, presence, reason, request_id(ctx)).await?;
        let mut conn = app.db.get(&tenant).await?;
        let row = db_presence::live_agents(&mut conn, &tenant, Some(&[change.agent_id]))
            .await?
            .pop()
            .ok_or_else(|| AppError::NotFound("agent not found".into()))?;
        Ok(AgentStatus(Arc::new(row)))
    }

    /// Creates or updates a presence reason code. ADMIN+; audited.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn upsert_presence_reason_code(
        &self,
        ctx: &Context<'_>,
        input: PresenceReasonCodeInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<PresenceReasonCode> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let presence: Presence = input.presence;
        let row = ReasonCodeRow {
            code: input.code,
            presence: presence.as_str().to_owned(),
            label: input.label,
            active: input.active,
        };
        let row = manage::upsert_reason_code(state(ctx)?, caller, &tenant, row, request_id(ctx)).await?;
        Ok(PresenceReasonCode::new(row)?)
    }
}

/// Which calls a live view covers; all optional, combined with AND. Team filters use agents'
/// current team.
#[derive(InputObject, Default, Clone)]
pub struct LiveKpiFilter {
    campaign_ids: Option<Vec<ID>>,
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

impl LiveKpiFilter {
    fn parse(&self) -> AppResult<LiveFilter> {
        Ok(LiveFilter {
            campaign_ids: parse_ids("filter.campaignIds", &self.campaign_ids)?,
            team_ids: parse_ids("filter.teamIds", &self.team_ids)?,
            agent_ids: parse_ids("filter.agentIds", &self.agent_ids)?,
            direction: self.direction,
        })
    }
}

/// Tiles of one window. Durations in seconds, rates in percent; null when the denominator is 0.
#[derive(SimpleObject)]
pub struct LiveWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offered: i64,
    answered: i64,
    abandoned: i64,
    service_level: Option<f64>,
    average_speed_of_answer: Option<f64>,
    average_handle_time: Option<f64>,
    /// Abandoned / offered, percent (short abandons excluded when the organization's
    /// `excludeShortAbandonsFromAbandonRate` says so).
    abandon_rate: Option<f64>,
}

impl From<&WindowTiles> for LiveWindow {
    fn from(w: &WindowTiles) -> Self {
        Self {
            start: w.start,
            end: w.end,
            offered: w.offered,
            answered: w.answered,
            abandoned: w.abandoned,
            service_level: w.service_level,
            average_speed_of_answer: w.average_speed_of_answer,
            average_handle_time: w.average_handle_time,
            abandon_rate: w.abandon_rate,
        }
    }
}

#[derive(SimpleObject)]
pub struct StateCount {
    state: String,
    count: i64,
}

fn counts(map: &BTreeMap<String, i64>) -> Vec<StateCount> {
    map.iter()
        .map(|(state, count)| StateCount {
            state: state.clone(),
            count: *count,
        })
        .collect()
}

/// The wallboard tiles of one filter, shared by every subscriber of it.
pub struct LiveKpis(Arc<LiveTiles>);

#[Object]
impl LiveKpis {
    async fn computed_at(&self) -> DateTime<Utc> {
        self.0.computed_at
    }
    /// The organization's IANA zone: `today` starts at its midnight.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn service_level_variant(&self) -> ServiceLevelVariant {
        self.0.rule.variant
    }
    async fn service_level_threshold_seconds(&self) -> i32 {
        self.0.rule.threshold_seconds
    }
    /// Today so far. As in every KPI, a call counts in the interval in which it was offered, and
    /// counts once it has ended, answered or abandoned (a call in conversation counts as offered
    /// and answered when it ends); calls still waiting are in `callsWaiting`.
    async fn today(&self) -> LiveWindow {
        (&self.0.today).into()
    }
    async fn last_15_minutes(&self) -> LiveWindow {
        (&self.0.last_15_minutes).into()
    }
    async fn last_60_minutes(&self) -> LiveWindow {
        (&self.0.last_60_minutes).into()
    }
    /// Calls offered and neither answered nor ended.
    async fn calls_waiting(&self) -> i64 {
        self.0.calls_waiting
    }
    /// When the longest-waiting call was offered: a wallboard counts the wait up from it
    /// locally (the server pushes only when it changes).
    async fn oldest_waiting_since(&self) -> Option<DateTime<Utc>> {
        self.0.oldest_waiting_since
    }
    /// The longest current wait at `computedAt`, in seconds.
    async fn longest_current_wait(&self) -> Option<f64> {
        self.0
            .oldest_waiting_since
            .map(|t| ((self.0.computed_at - t).num_milliseconds().max(0) as f64) / 1000.0)
    }
    /// Active agents of the scope per presence (states with no agent are omitted).
    async fn agents_by_presence(&self) -> Vec<StateCount> {
        counts(&self.0.agents_by_presence)
    }
    /// Active agents of the scope per routing state.
    async fn agents_by_routing_state(&self) -> Vec<StateCount> {
        counts(&self.0.agents_by_routing_state)
    }
}

#[derive(InputObject, Default)]
pub struct InteractionEventsFilter {
    campaign_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

/// One call that changed.
#[derive(SimpleObject, Clone)]
pub struct InteractionChange {
    interaction_id: ID,
    external_id: String,
    outcome: Option<Outcome>,
    agent_id: Option<ID>,
    campaign_id: Option<ID>,
    direction: Option<Direction>,
}

/// One message of `interactionEvents`: the calls one committed change touched, or a resync
/// notice (events may have been missed: re-query `interactions`).
#[derive(SimpleObject)]
pub struct InteractionEvents {
    resync: bool,
    /// The bus's per-organization sequence (0 for a resync notice or while Redis is down).
    sequence: u64,
    server_time: DateTime<Utc>,
    interactions: Vec<InteractionChange>,
}

impl From<&CallChange> for InteractionChange {
    fn from(call: &CallChange) -> Self {
        Self {
            interaction_id: ID(call.interaction_id.to_string()),
            external_id: call.external_id.clone(),
            outcome: Some(call.outcome),
            agent_id: call.agent_id.map(|id| ID(id.to_string())),
            campaign_id: call.campaign_id.map(|id| ID(id.to_string())),
            direction: Some(call.direction),
        }
    }
}

impl From<CallBatch> for InteractionEvents {
    fn from(batch: CallBatch) -> Self {
        Self {
            resync: batch.resync,
            sequence: batch.sequence,
            server_time: batch.server_time,
            interactions: batch.calls.iter().map(InteractionChange::from).collect(),
        }
    }
}

/// Which level a compliance alert announces.
#[derive(SimpleObject)]
pub struct ComplianceAlert {
    campaign_id: ID,
    campaign_name: String,
    /// `UK_24H` (Ofcom, rolling 24 hours) or `US_30D` (FTC, rolling 30 days).
    window: String,
    /// WARNING: the rate reached 80 % of the limit; BREACH: it crossed the limit; OK: it went
    /// back below 80 %.
    level: ComplianceLevel,
    /// Null on the first message for a campaign already at WARNING or BREACH when subscribing.
    previous_level: Option<ComplianceLevel>,
    rate: Option<f64>,
    limit: f64,
    at: DateTime<Utc>,
}

impl From<ComplianceEdge> for ComplianceAlert {
    fn from(edge: ComplianceEdge) -> Self {
        Self {
            campaign_id: ID(edge.campaign_id.to_string()),
            campaign_name: edge.campaign_name,
            window: edge.window.as_str().to_owned(),
            level: edge.level,
            previous_level: edge.previous_level,
            rate: edge.rate,
            limit: edge.limit,
            at: edge.at,
        }
    }
}

#[derive(Default)]
pub struct RealtimeSubscription;

#[Subscription]
impl RealtimeSubscription {
    /// Every matching agent (a SNAPSHOT), then a DELTA per change — one DELTA may carry several
    /// agents when changes arrive faster than the subscriber reads. After a bus reconnect or
    /// when this subscriber fell behind, a fresh SNAPSHOT with `resync: true`. VIEWER+.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn agent_states(
        &self,
        ctx: &Context<'_>,
        filter: Option<AgentStatesFilter>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = AgentStatesUpdate>> {
        let filter = filter.unwrap_or_default();
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let app = state(ctx)?.clone();
        let parsed = LiveFilter {
            team_ids: parse_ids("filter.teamIds", &filter.team_ids)?,
            agent_ids: parse_ids("filter.agentIds", &filter.agent_ids)?,
            ..LiveFilter::default()
        };
        if parsed.team_ids.is_some() || parsed.agent_ids.is_some() {
            live::validate(&app.db, &tenant, "filter", &parsed).await?;
        }
        let filter = AgentFilter::new(parsed.team_ids, parsed.agent_ids);
        let board = app
            .boards
            .board(&app.db, &app.bus, &tenant, app.settings.live_updates_buffer)
            .await?;
        // Reported before each message so the WebSocket layer can share the deltas (see
        // `StreamPosition`); absent for other transports.
        let position = ctx.data_opt::<StreamPosition>().cloned().unwrap_or_default();
        Ok(agents::follow(board, filter, position).map(AgentStatesUpdate::from))
    }

    /// Wallboard tiles for today (organization time zone) and the last 15 and 60 minutes,
    /// calls waiting, longest current wait and agents per state: the current value first, then
    /// again whenever a value changed. Subscribers of the same filter share one computation
    /// (at most one per second, only when an event touched the filter's scope). VIEWER+.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn live_kpis(
        &self,
        ctx: &Context<'_>,
        filter: Option<LiveKpiFilter>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = LiveKpis>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let app = state(ctx)?.clone();
        let parsed = filter.unwrap_or_default().parse()?.normalized();
        live::validate(&app.db, &tenant, "filter", &parsed).await?;
        let entry = app.live.entry(&app.db, &app.bus, &tenant, parsed);
        let mut latest = entry.watch();
        Ok(async_stream::stream! {
            // Holding the entry keeps the shared computation alive.
            let _entry = entry;
            loop {
                let current = latest.borrow_and_update().clone();
                if let Some(tiles) = current {
                    yield LiveKpis(tiles);
                }
                if latest.changed().await.is_err() {
                    break;
                }
            }
        })
    }

    /// Calls as they change (offered, answered, ended, disposed…), filtered; a message with
    /// `resync: true` when events may have been missed. SUPERVISOR+.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn interaction_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<InteractionEventsFilter>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = InteractionEvents>> {
        let filter = filter.unwrap_or_default();
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let app = state(ctx)?.clone();
        let parsed = LiveFilter {
            campaign_ids: parse_ids("filter.campaignIds", &filter.campaign_ids)?,
            agent_ids: parse_ids("filter.agentIds", &filter.agent_ids)?,
            ..LiveFilter::default()
        };
        live::validate(&app.db, &tenant, "filter", &parsed).await?;
        let filter = CallFilter {
            campaign_ids: parsed.campaign_ids,
            agent_ids: parsed.agent_ids,
            direction: filter.direction,
        };
        Ok(interactions::follow(&app.bus, tenant, filter).map(InteractionEvents::from))
    }

    /// Outbound abandonment alerts per campaign (`campaignIds`, or every outbound campaign):
    /// a message when a campaign's UK 24-hour or US 30-day rate reaches 80 % of its limit
    /// (WARNING), crosses the limit (BREACH), or falls back below 80 % (OK) — edge-triggered,
    /// once per change of level. On subscribing, one message per campaign already at WARNING
    /// or BREACH (`previousLevel: null`). SUPERVISOR+.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn compliance_alerts(
        &self,
        ctx: &Context<'_>,
        campaign_ids: Option<Vec<ID>>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = ComplianceAlert>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let app = state(ctx)?.clone();
        let ids: Option<Vec<String>> = campaign_ids.map(|v| v.into_iter().map(|id| id.0).collect());
        let alerts = compliance::alerts(app.db.clone(), &app.bus, tenant, ids).await?;
        Ok(alerts.map(ComplianceAlert::from))
    }
}
