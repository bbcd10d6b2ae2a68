//! Agent presence and the live subscriptions: `setAgentPresence`, reason codes, `agentStates`,
//! `liveKpis`, `interactionEvents` and `complianceAlerts`.
//!
//! Subscription payloads are ordinary guarded objects resolved per subscriber, so guards and
//! masking apply exactly as in queries (a customer number on a live call is masked below
//! SUPERVISOR). Every subscription is scoped to the caller's organization (SUPER_ADMIN: an
//! explicit `orgId`, audited).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::auth::{Permission, Role};
use crate::db;
use crate::db::presence::{self as db_presence, LiveAgentRow, ReasonCodeRow};
use crate::domain::ServiceLevelVariant;
use crate::domain::{Direction, Outcome, Presence, RoutingState};
use crate::error::{AppError, AppResult};
use crate::graphql::context::{parse_ids, principal, request_id, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::ingest;
use crate::kpi::analytics::{self as views, ComplianceLevel};
use crate::management::presence as manage;
use crate::realtime::agents::BoardUpdate;
use crate::realtime::bus::Received;
use crate::realtime::live::{self, LiveFilter, LiveTiles, WindowTiles};
use crate::realtime::{StreamPosition, Topic};

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

/// A subscriber's filter, checked against each agent's current team.
struct AgentMatcher {
    teams: Option<HashSet<Uuid>>,
    agents: Option<HashSet<Uuid>>,
}

impl AgentMatcher {
    fn matches(&self, agent: &LiveAgentRow) -> bool {
        self.agents.as_ref().is_none_or(|ids| ids.contains(&agent.id))
            && self
                .teams
                .as_ref()
                .is_none_or(|ids| agent.team_id.is_some_and(|t| ids.contains(&t)))
    }

    /// An agent this subscriber showed (its previous team matched) that no longer matches
    /// because it moved to another team: the subscriber must drop it.
    fn left_teams(&self, agent: &LiveAgentRow, previous_team: Option<Uuid>) -> bool {
        let Some(teams) = &self.teams else { return false };
        self.agents.as_ref().is_none_or(|ids| ids.contains(&agent.id))
            && previous_team.is_some_and(|t| teams.contains(&t))
            && !agent.team_id.is_some_and(|t| teams.contains(&t))
    }

    fn snapshot(&self, agents: &[Arc<LiveAgentRow>], resync: bool) -> AgentStatesUpdate {
        AgentStatesUpdate {
            kind: AgentStatesKind::Snapshot,
            resync,
            agents: agents
                .iter()
                .filter(|a| self.matches(a))
                .map(|a| AgentStatus(a.clone()))
                .collect(),
            removed_agent_ids: Vec::new(),
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
        let mut conn = db::conn(&state(ctx)?.db).await?;
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
        let mut conn = db::conn(&app.db).await?;
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
    /// counts as offered once it was answered or abandoned; calls still waiting are in
    /// `callsWaiting`.
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

/// Board updates folded into one `agentStates` message at most.
const MAX_BATCHED_UPDATES: usize = 256;

/// How often `complianceAlerts` may recompute for one subscriber.
const COMPLIANCE_MIN_INTERVAL: Duration = Duration::from_secs(2);

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
        let matcher = AgentMatcher {
            teams: parsed.team_ids.map(|v| v.into_iter().collect()),
            agents: parsed.agent_ids.map(|v| v.into_iter().collect()),
        };
        let board = app
            .boards
            .board(&app.db, &app.bus, &tenant, app.settings.live_updates_buffer)
            .await?;
        // Reported before each message so the WebSocket layer can share the deltas (see
        // `StreamPosition`); absent for other transports.
        let position = ctx.data_opt::<StreamPosition>().cloned().unwrap_or_default();
        Ok(async_stream::stream! {
            let (mut updates, mut version, snapshot) = board.subscribe();
            position.report(version);
            yield matcher.snapshot(&snapshot, position.resync_first());
            drop(snapshot);
            loop {
                // One update, plus whatever else is already queued: under load a subscriber
                // gets one message for several changes instead of falling further behind.
                let mut pending = vec![updates.recv().await];
                while pending.len() < MAX_BATCHED_UPDATES {
                    match updates.try_recv() {
                        Ok(update) => pending.push(Ok(update)),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(n)) => {
                            pending.push(Err(RecvError::Lagged(n)));
                            break;
                        }
                        Err(TryRecvError::Closed) => {
                            pending.push(Err(RecvError::Closed));
                            break;
                        }
                    }
                }
                let mut resync: Option<(u64, Arc<Vec<Arc<LiveAgentRow>>>)> = None;
                let mut changed: Vec<Arc<LiveAgentRow>> = Vec::new();
                let mut removed: Vec<Uuid> = Vec::new();
                let mut closed = false;
                for item in pending {
                    match item {
                        Ok(BoardUpdate::Changed { version: v, agent, previous_team }) if v > version => {
                            version = v;
                            if matcher.matches(&agent) {
                                changed.retain(|a| a.id != agent.id);
                                removed.retain(|id| *id != agent.id);
                                changed.push(agent);
                            } else if matcher.left_teams(&agent, previous_team) {
                                changed.retain(|a| a.id != agent.id);
                                removed.push(agent.id);
                            }
                        }
                        Ok(BoardUpdate::Removed { version: v, agent_id }) if v > version => {
                            version = v;
                            if matcher.agents.as_ref().is_none_or(|ids| ids.contains(&agent_id)) {
                                changed.retain(|a| a.id != agent_id);
                                removed.push(agent_id);
                            }
                        }
                        Ok(BoardUpdate::Changed { .. } | BoardUpdate::Removed { .. }) => {}
                        Ok(BoardUpdate::Resync { version: v, agents }) => {
                            version = v;
                            resync = Some((v, agents));
                            changed.clear();
                            removed.clear();
                        }
                        Err(RecvError::Lagged(_)) => {
                            let (v, agents) = board.snapshot();
                            version = v;
                            resync = Some((v, agents));
                            changed.clear();
                            removed.clear();
                        }
                        Err(RecvError::Closed) => closed = true,
                    }
                }
                if let Some((at, agents)) = resync {
                    position.report(at);
                    yield matcher.snapshot(&agents, true);
                }
                if !changed.is_empty() || !removed.is_empty() {
                    position.report(version);
                    yield AgentStatesUpdate {
                        kind: AgentStatesKind::Delta,
                        resync: false,
                        agents: changed.into_iter().map(AgentStatus).collect(),
                        removed_agent_ids: removed.into_iter().map(|id| ID(id.to_string())).collect(),
                    };
                }
                if closed {
                    break;
                }
            }
        })
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
        let campaigns: Option<HashSet<String>> =
            parsed.campaign_ids.map(|ids| ids.iter().map(Uuid::to_string).collect());
        let agents: Option<HashSet<String>> = parsed.agent_ids.map(|ids| ids.iter().map(Uuid::to_string).collect());
        let direction = filter.direction.map(|d| d.as_str());
        let mut events = app.bus.receiver(&[Topic::Interactions]);
        Ok(async_stream::stream! {
            loop {
                match events.recv().await {
                    Received::Event(event) if event.organization_id == tenant.org_id() => {
                        let list = event.payload.get("interactions").and_then(|v| v.as_array()).cloned().unwrap_or_default();
                        let text = |call: &serde_json::Value, key: &str| call.get(key).and_then(|v| v.as_str()).map(str::to_owned);
                        let changes: Vec<InteractionChange> = list
                            .iter()
                            .filter(|call| {
                                let within = |set: &Option<HashSet<String>>, key: &str| match set {
                                    None => true,
                                    Some(ids) => text(call, key).is_some_and(|id| ids.contains(&id)),
                                };
                                within(&campaigns, "campaignId")
                                    && within(&agents, "agentId")
                                    && direction.is_none_or(|d| text(call, "direction").as_deref() == Some(d))
                            })
                            .filter_map(|call| {
                                Some(InteractionChange {
                                    interaction_id: ID(text(call, "id")?),
                                    external_id: text(call, "externalId").unwrap_or_default(),
                                    outcome: text(call, "outcome").as_deref().and_then(Outcome::parse),
                                    agent_id: text(call, "agentId").map(ID),
                                    campaign_id: text(call, "campaignId").map(ID),
                                    direction: text(call, "direction").as_deref().and_then(Direction::parse),
                                })
                            })
                            .collect();
                        if !changes.is_empty() {
                            yield InteractionEvents {
                                resync: false,
                                sequence: event.sequence,
                                server_time: event.server_time,
                                interactions: changes,
                            };
                        }
                    }
                    Received::Event(_) => {}
                    Received::Resync => yield InteractionEvents {
                        resync: true,
                        sequence: 0,
                        server_time: Utc::now(),
                        interactions: Vec::new(),
                    },
                    Received::Closed => break,
                }
            }
        })
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
        let read = {
            let app = app.clone();
            move |ids: Option<Vec<String>>| {
                let app = app.clone();
                async move {
                    let mut conn = db::conn(&app.db).await?;
                    views::compliance_status(&mut conn, &tenant, "campaignIds", ids.as_deref(), Utc::now()).await
                }
            }
        };
        // Validates the ids (BAD_USER_INPUT) and sets the baseline.
        let first = read(ids.clone()).await?;
        let mut events = app.bus.receiver(&[Topic::Interactions]);
        Ok(async_stream::stream! {
            let mut levels: BTreeMap<(Uuid, &'static str), ComplianceLevel> = BTreeMap::new();
            let mut rows = first;
            let mut initial = true;
            loop {
                let now = Utc::now();
                for row in &rows {
                    for (window, w) in [("UK_24H", &row.uk), ("US_30D", &row.us)] {
                        let key = (row.campaign.id, window);
                        let previous = levels.insert(key, w.status);
                        let announce = match previous {
                            None => initial && w.status != ComplianceLevel::Ok,
                            Some(p) => p != w.status,
                        };
                        if announce {
                            yield ComplianceAlert {
                                campaign_id: ID(row.campaign.id.to_string()),
                                campaign_name: row.campaign.name.clone(),
                                window: window.to_owned(),
                                level: w.status,
                                previous_level: previous,
                                rate: w.rate.value,
                                limit: w.limit,
                                at: now,
                            };
                        }
                    }
                }
                initial = false;
                // Wait for a call of a watched (outbound) campaign to change (or a resync),
                // then at most one recompute per interval.
                let watched: Vec<Uuid> = rows.iter().map(|r| r.campaign.id).collect();
                let watched = Some(watched);
                loop {
                    match events.recv().await {
                        Received::Event(event) if event.organization_id == tenant.org_id() => {
                            let relevant = event.payload.get("interactions").and_then(|v| v.as_array()).is_none_or(|calls| {
                                calls.iter().any(|c| {
                                    let campaign = c.get("campaignId").and_then(|v| v.as_str()).and_then(|t| t.parse().ok());
                                    live::in_scope(&watched, campaign)
                                })
                            });
                            if relevant {
                                break;
                            }
                        }
                        Received::Event(_) => {}
                        Received::Resync => break,
                        Received::Closed => return,
                    }
                }
                tokio::time::sleep(COMPLIANCE_MIN_INTERVAL).await;
                match read(ids.clone()).await {
                    Ok(fresh) => rows = fresh,
                    Err(error) => {
                        tracing::warn!(?error, "compliance alerts: reading the status failed");
                    }
                }
            }
        })
    }
}
