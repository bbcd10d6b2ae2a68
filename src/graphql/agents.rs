//! `agents`, `agent` and the agent mutations; the `Agent`, `Team`, `Skill` output types and the
//! DataLoaders behind their nested fields.
//!
//! Scope and rules live in `management::agents`; resolvers read arguments, build one
//! [`AgentReads`] per root field (tenant, the caller's scope, the loaders), and convert. Nested
//! fields (an agent's team and skills, a team's supervisors and members) go through
//! DataLoaders, so a page of 50 agents with their teams and skills costs one statement per
//! kind of nested field, not one per agent (tests/agents.rs counts them).
//!
//! Field guards: names, teams and states are VIEWER+ (the wallboard's data); the profile
//! fields (extension, linked user, skills) and `performance` / `activity` are AGENT+ — an
//! AGENT's rows are their own, a SUPERVISOR's those of their teams. Guarded fields are
//! nullable, so a refused field does not hide the agent.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, Enum, InputObject, Lookahead, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::{Permission, Principal, Role, Tenant};
use crate::db::agents::{self as agent_rows, AgentListFilter, AgentRow, AgentSkillRow, AgentSort};
use crate::db::teams::{self as team_rows, SkillRow, SupervisorRow, TeamRow};
use crate::db::tenancy::{TenantConn, TenantPool};
use crate::domain::{Direction, Presence, RoutingState};
use crate::error::{AppError, AppResult, FieldError};
use crate::graphql::context::{parse_id, parse_ids, principal, request_id, settings, state, tenant_for};
use crate::graphql::guards::{PermissionGuard, RoleGuard};
use crate::graphql::kpi::KpiValues;
use crate::graphql::pagination::{decode_offset, encode_offset, page_size};
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::kpi::analytics::{self as views, AgentOrder, AgentVisibility, SortDirection};
use crate::kpi::filter::{self, RawFilter};
use crate::management::agents::{self as manage, AgentPatch, AgentScope, NewAgentInput};

// ---------------------------------------------------------------------------------------------
// DataLoaders: one batched statement per kind of nested field.

/// Teams by id.
pub struct TeamLoader {
    pool: TenantPool,
    tenant: Tenant,
}

impl Loader<Uuid> for TeamLoader {
    type Value = TeamRow;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, TeamRow>, AppError> {
        let mut conn = self.pool.get(&self.tenant).await?;
        let rows = team_rows::teams_by_ids(&mut conn, &self.tenant, keys).await?;
        Ok(rows.into_iter().map(|t| (t.id, t)).collect())
    }
}

/// Skills of agents, by agent id.
pub struct AgentSkillsLoader {
    pool: TenantPool,
    tenant: Tenant,
}

impl Loader<Uuid> for AgentSkillsLoader {
    type Value = Vec<AgentSkillRow>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<AgentSkillRow>>, AppError> {
        let mut conn = self.pool.get(&self.tenant).await?;
        let mut out: HashMap<Uuid, Vec<AgentSkillRow>> = HashMap::new();
        for row in agent_rows::skills_of_agents(&mut conn, &self.tenant, keys).await? {
            out.entry(row.agent_id).or_default().push(row);
        }
        Ok(out)
    }
}

/// Supervisors of teams, by team id.
pub struct SupervisorsLoader {
    pool: TenantPool,
    tenant: Tenant,
}

impl Loader<Uuid> for SupervisorsLoader {
    type Value = Vec<SupervisorRow>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<SupervisorRow>>, AppError> {
        let mut conn = self.pool.get(&self.tenant).await?;
        let mut out: HashMap<Uuid, Vec<SupervisorRow>> = HashMap::new();
        for row in team_rows::supervisors_of_teams(&mut conn, &self.tenant, keys).await? {
            out.entry(row.team_id).or_default().push(row);
        }
        Ok(out)
    }
}

/// Members of teams (active or not), by team id.
pub struct MembersLoader {
    pool: TenantPool,
    tenant: Tenant,
}

impl Loader<Uuid> for MembersLoader {
    type Value = Vec<AgentRow>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<AgentRow>>, AppError> {
        let mut conn = self.pool.get(&self.tenant).await?;
        let mut out: HashMap<Uuid, Vec<AgentRow>> = HashMap::new();
        for row in agent_rows::members_of_teams(&mut conn, &self.tenant, keys).await? {
            if let Some(team) = row.team_id {
                out.entry(team).or_default().push(row);
            }
        }
        Ok(out)
    }
}

/// What every object of one root field's answer shares: the tenant, the caller's scope over
/// agents, and the loaders (bound to that tenant, so a SUPER_ADMIN's `orgId` holds for nested
/// fields too; their cache lives as long as the answer).
///
/// The executor polls the items of a list 32 at a time, so a loader's short batching window
/// can split a long page into two or three batches; the root fields therefore prime the
/// loaders with the whole page's keys for the nested fields the query selects
/// ([`AgentReads::prime_agents`]), one statement per kind of field.
pub struct AgentReads {
    pub tenant: Tenant,
    pub scope: AgentScope,
    teams: DataLoader<TeamLoader, HashMapCache>,
    skills: DataLoader<AgentSkillsLoader, HashMapCache>,
    supervisors: DataLoader<SupervisorsLoader, HashMapCache>,
    members: DataLoader<MembersLoader, HashMapCache>,
}

fn distinct(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = ids.collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl AgentReads {
    pub fn new(pool: &TenantPool, tenant: Tenant, scope: AgentScope) -> Arc<Self> {
        let spawn = |f: futures_util::future::BoxFuture<'static, ()>| {
            tokio::spawn(f);
        };
        Arc::new(Self {
            tenant,
            scope,
            teams: DataLoader::with_cache(
                TeamLoader {
                    pool: pool.clone(),
                    tenant,
                },
                spawn,
                HashMapCache::default(),
            ),
            skills: DataLoader::with_cache(
                AgentSkillsLoader {
                    pool: pool.clone(),
                    tenant,
                },
                spawn,
                HashMapCache::default(),
            ),
            supervisors: DataLoader::with_cache(
                SupervisorsLoader {
                    pool: pool.clone(),
                    tenant,
                },
                spawn,
                HashMapCache::default(),
            ),
            members: DataLoader::with_cache(
                MembersLoader {
                    pool: pool.clone(),
                    tenant,
                },
                spawn,
                HashMapCache::default(),
            ),
        })
    }

    /// Loads, in one batch each, the nested fields `node` (an `Agent` selection) asks for, for
    /// every agent of `rows`; the nested resolvers then read the loaders' cache.
    pub async fn prime_agents(&self, node: &Lookahead<'_>, rows: &[AgentRow]) -> AppResult<()> {
        let team = node.field("team");
        if team.exists() {
            let team_ids = distinct(rows.iter().filter_map(|r| r.team_id));
            self.prime_teams(&team, &team_ids).await?;
        }
        if node.field("skills").exists() {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let found = self.skills.load_many(ids.iter().copied()).await?;
            let empty = ids.into_iter().filter(|id| !found.contains_key(id));
            self.skills.feed_many(empty.map(|id| (id, Vec::new()))).await;
        }
        Ok(())
    }

    /// [`Self::prime_agents`] for teams: the teams themselves, and the supervisors and members
    /// `team` (a `Team` selection) asks for.
    pub async fn prime_teams(&self, team: &Lookahead<'_>, team_ids: &[Uuid]) -> AppResult<()> {
        if team_ids.is_empty() {
            return Ok(());
        }
        self.teams.load_many(team_ids.iter().copied()).await?;
        if team.field("supervisors").exists() {
            let found = self.supervisors.load_many(team_ids.iter().copied()).await?;
            let empty = team_ids.iter().copied().filter(|id| !found.contains_key(id));
            self.supervisors.feed_many(empty.map(|id| (id, Vec::new()))).await;
        }
        if team.field("members").exists() {
            let found = self.members.load_many(team_ids.iter().copied()).await?;
            let empty = team_ids.iter().copied().filter(|id| !found.contains_key(id));
            self.members.feed_many(empty.map(|id| (id, Vec::new()))).await;
        }
        Ok(())
    }

    /// The reads of a root field: the tenant (by `orgId`), the caller's scope (read on
    /// `conn`), fresh loaders.
    pub async fn for_request(ctx: &Context<'_>, org_id: Option<&ID>) -> async_graphql::Result<(Arc<Self>, TenantConn)> {
        let tenant = tenant_for(ctx, org_id).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let scope = manage::scope_of(&mut conn, &tenant, principal(ctx)?).await?;
        Ok((Self::new(&state(ctx)?.db, tenant, scope), conn))
    }
}

// ---------------------------------------------------------------------------------------------
// Output types

/// An agent: a profile of a person who takes calls, with their current state on both axes.
pub struct Agent {
    row: AgentRow,
    reads: Arc<AgentReads>,
}

impl Agent {
    pub fn new(row: AgentRow, reads: Arc<AgentReads>) -> Self {
        Self { row, reads }
    }
}

/// Longest `activity` window.
pub const MAX_ACTIVITY_DAYS: i64 = 31;
/// Most state intervals and most calls one `activity` answer carries (each).
pub const MAX_ACTIVITY_ROWS: i64 = 5_000;

#[Object]
impl Agent {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn display_name(&self) -> &str {
        &self.row.display_name
    }
    /// Deactivated agents take no calls and are left out of listings unless asked for.
    async fn active(&self) -> bool {
        self.row.active
    }
    /// The agent's current team (loaded in one batch for a whole page).
    async fn team(&self) -> async_graphql::Result<Option<Team>> {
        let Some(team_id) = self.row.team_id else {
            return Ok(None);
        };
        Ok(self
            .reads
            .teams
            .load_one(team_id)
            .await?
            .map(|row| Team::new(row, self.reads.clone())))
    }
    /// What the agent chose.
    async fn presence(&self) -> async_graphql::Result<Presence> {
        Ok(Presence::from_stored(&self.row.presence)?)
    }
    /// The organization's reason code refining the presence, if any.
    async fn presence_reason(&self) -> Option<&str> {
        self.row.presence_reason.as_deref()
    }
    async fn presence_since(&self) -> DateTime<Utc> {
        self.row.presence_since
    }
    /// What the telephony layer sees.
    async fn routing_state(&self) -> async_graphql::Result<RoutingState> {
        Ok(RoutingState::from_stored(&self.row.routing_state)?)
    }
    async fn routing_state_since(&self) -> DateTime<Utc> {
        self.row.state_since
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// AGENT+ (an AGENT reads only their own profile).
    #[graphql(guard = "RoleGuard(Role::Agent)")]
    async fn extension(&self) -> Option<&str> {
        self.row.extension.as_deref()
    }
    /// The user signing in as this agent, if any. AGENT+.
    #[graphql(guard = "RoleGuard(Role::Agent)")]
    async fn user_id(&self) -> Option<ID> {
        self.row.user_id.map(|id| ID(id.to_string()))
    }
    /// Skills with proficiency 1 (novice) to 5 (expert), by skill name. AGENT+.
    #[graphql(guard = "RoleGuard(Role::Agent)")]
    async fn skills(&self) -> async_graphql::Result<Option<Vec<AgentSkill>>> {
        let rows = self.reads.skills.load_one(self.row.id).await?.unwrap_or_default();
        Ok(Some(
            rows.into_iter()
                .map(|r| AgentSkill {
                    skill_id: ID(r.skill_id.to_string()),
                    name: r.skill_name,
                    proficiency: i32::from(r.proficiency),
                })
                .collect(),
        ))
    }
    /// The agent's registry metrics over `range`: the very numbers `agentPerformance` gives
    /// this agent's row (the same code path). Null for a deactivated agent without activity
    /// in the range (`agentPerformance` lists no row for it either). AGENT+ (own).
    #[graphql(guard = "RoleGuard(Role::Agent)")]
    async fn performance(&self, ctx: &Context<'_>, range: AgentRange) -> async_graphql::Result<Option<KpiValues>> {
        let raw = RawFilter {
            from: range.from,
            to: range.to,
            campaign_ids: None,
            team_ids: None,
            agent_ids: Some(vec![self.row.id.to_string()]),
            direction: None,
        };
        let tenant = &self.reads.tenant;
        let (mut conn, pool, _) = state(ctx)?.reads.conn(tenant).await?;
        let resolved = filter::resolve(&mut conn, tenant, "range", &raw).await?;
        let mut spare = pool.try_get(tenant).await;
        let rows = views::agent_performance(
            &mut conn,
            spare.as_deref_mut(),
            &self.reads.tenant,
            &resolved,
            AgentVisibility::All,
            AgentOrder::default(),
        )
        .await?;
        Ok(rows
            .into_iter()
            .find(|r| r.agent.id == self.row.id)
            .map(|r| KpiValues(r.values)))
    }
    /// One timeline of `from`..`to` (at most 31 days) merging the agent's state changes
    /// (both axes, with reason codes) and calls, by time; and the time spent in each state
    /// within the window. AGENT+ (own).
    #[graphql(guard = "RoleGuard(Role::Agent)")]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<Option<AgentActivity>> {
        if from >= to {
            return Err(AppError::invalid_fields(vec![FieldError::new("to", "must be after `from`")]).into());
        }
        if to - from > TimeDelta::days(MAX_ACTIVITY_DAYS) {
            return Err(AppError::invalid_fields(vec![FieldError::new(
                "to",
                format!("the window may cover at most {MAX_ACTIVITY_DAYS} days"),
            )])
            .into());
        }
        let tenant = &self.reads.tenant;
        let (mut conn, _, _) = state(ctx)?.reads.conn(tenant).await?;
        let states =
            agent_rows::state_intervals(&mut conn, tenant, self.row.id, from, to, MAX_ACTIVITY_ROWS + 1).await?;
        let calls = agent_rows::calls(&mut conn, tenant, self.row.id, from, to, MAX_ACTIVITY_ROWS + 1).await?;
        Ok(Some(AgentActivity::build(from, to, Utc::now(), states, calls)))
    }
}

/// An agent's skill.
#[derive(SimpleObject, Clone)]
pub struct AgentSkill {
    skill_id: ID,
    name: String,
    /// 1 (novice) to 5 (expert).
    proficiency: i32,
}

/// An interval of time: `from` inclusive, `to` exclusive.
#[derive(InputObject, Clone, Copy)]
pub struct AgentRange {
    pub from: DateTime<Utc>,
    /// At most 400 days after `from`.
    pub to: DateTime<Utc>,
}

/// What an activity entry is.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ActivityKind {
    /// An interval of the state log (presence or routing axis).
    State,
    /// A call offered to the agent.
    Call,
}

/// One entry of an agent's timeline. STATE entries carry `axis`, `state`, `reasonCode`; CALL
/// entries carry the call fields (`state` is the call's outcome).
#[derive(SimpleObject, Clone, Debug)]
pub struct AgentActivityEntry {
    kind: ActivityKind,
    /// When the state began, or the call was offered.
    at: DateTime<Utc>,
    /// When the state ended or the call's wrap-up finished (its end without wrap-up); null
    /// while still open.
    ended_at: Option<DateTime<Utc>>,
    /// Seconds of this entry inside the window (an open state counts up to now).
    seconds_in_window: f64,
    /// PRESENCE or ROUTING (STATE entries).
    axis: Option<String>,
    /// The state (STATE) or the outcome (CALL).
    state: String,
    reason_code: Option<String>,
    interaction_id: Option<ID>,
    external_id: Option<String>,
    direction: Option<Direction>,
    campaign_id: Option<ID>,
    disposition_id: Option<ID>,
    answered_at: Option<DateTime<Utc>>,
    talk_seconds: Option<f64>,
    hold_seconds: Option<f64>,
    wrap_seconds: Option<f64>,
}

/// Time spent in one state (per axis and reason code) within the window.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct AgentTimeInState {
    axis: String,
    state: String,
    reason_code: Option<String>,
    seconds: f64,
}

/// An agent's timeline over a window.
#[derive(SimpleObject, Debug)]
pub struct AgentActivity {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// By time (state changes and calls merged; at equal times, states first).
    entries: Vec<AgentActivityEntry>,
    /// By axis, then state, then reason code.
    time_in_state: Vec<AgentTimeInState>,
    /// True when the window held more than 5,000 state intervals or calls: ask a shorter one.
    truncated: bool,
}

fn seconds(delta: TimeDelta) -> f64 {
    // Microsecond precision is what PostgreSQL stores.
    delta.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn millis(ms: i64) -> f64 {
    ms as f64 / 1e3
}

impl AgentActivity {
    /// Merges the two fact reads into one timeline; pure, so it is unit-tested.
    fn build(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
        mut states: Vec<agent_rows::StateIntervalRow>,
        mut calls: Vec<agent_rows::AgentCallRow>,
    ) -> Self {
        let limit = usize::try_from(MAX_ACTIVITY_ROWS).unwrap_or(usize::MAX);
        let truncated = states.len() > limit || calls.len() > limit;
        states.truncate(limit);
        calls.truncate(limit);
        let clip = |start: DateTime<Utc>, end: Option<DateTime<Utc>>| {
            let end = end.unwrap_or(now).min(to);
            let start = start.max(from);
            if end > start {
                seconds(end - start)
            } else {
                0.0
            }
        };
        let mut totals: Vec<AgentTimeInState> = Vec::new();
        let mut entries: Vec<AgentActivityEntry> = Vec::with_capacity(states.len() + calls.len());
        for s in states {
            let in_window = clip(s.started_at, s.ended_at);
            match totals
                .iter_mut()
                .find(|t| t.axis == s.axis && t.state == s.state && t.reason_code == s.reason)
            {
                Some(t) => t.seconds += in_window,
                None => totals.push(AgentTimeInState {
                    axis: s.axis.clone(),
                    state: s.state.clone(),
                    reason_code: s.reason.clone(),
                    seconds: in_window,
                }),
            }
            entries.push(AgentActivityEntry {
                kind: ActivityKind::State,
                at: s.started_at,
                ended_at: s.ended_at,
                seconds_in_window: in_window,
                axis: Some(s.axis),
                state: s.state,
                reason_code: s.reason,
                interaction_id: None,
                external_id: None,
                direction: None,
                campaign_id: None,
                disposition_id: None,
                answered_at: None,
                talk_seconds: None,
                hold_seconds: None,
                wrap_seconds: None,
            });
        }
        for c in calls {
            let ended_at = c.wrap_ended_at.or(c.ended_at);
            entries.push(AgentActivityEntry {
                kind: ActivityKind::Call,
                at: c.offered_at,
                ended_at,
                seconds_in_window: clip(c.offered_at, ended_at),
                axis: None,
                state: c.outcome,
                reason_code: None,
                interaction_id: Some(ID(c.id.to_string())),
                external_id: Some(c.external_id),
                direction: Direction::parse(&c.direction),
                campaign_id: c.campaign_id.map(|id| ID(id.to_string())),
                disposition_id: c.disposition_id.map(|id| ID(id.to_string())),
                answered_at: c.answered_at,
                talk_seconds: Some(millis(c.talk_ms)),
                hold_seconds: Some(millis(c.hold_ms)),
                wrap_seconds: Some(millis(c.wrap_ms)),
            });
        }
        // Stable: states (pushed first) stay before calls at the same instant.
        entries.sort_by_key(|e| e.at);
        totals.sort_by(|a, b| (&a.axis, &a.state, &a.reason_code).cmp(&(&b.axis, &b.state, &b.reason_code)));
        Self {
            from,
            to,
            entries,
            time_in_state: totals,
            truncated,
        }
    }
}

/// A team of agents.
pub struct Team {
    row: TeamRow,
    reads: Arc<AgentReads>,
}

impl Team {
    pub fn new(row: TeamRow, reads: Arc<AgentReads>) -> Self {
        Self { row, reads }
    }
}

/// A user who supervises a team.
#[derive(SimpleObject, Clone)]
pub struct TeamSupervisor {
    user_id: ID,
    display_name: String,
    email: String,
    role: Role,
}

#[Object]
impl Team {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.row.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// Who supervises the team (sees and manages its agents). SUPERVISOR+.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn supervisors(&self) -> async_graphql::Result<Option<Vec<TeamSupervisor>>> {
        let rows = self.reads.supervisors.load_one(self.row.id).await?.unwrap_or_default();
        Ok(Some(
            rows.into_iter()
                .map(|s| TeamSupervisor {
                    user_id: ID(s.user_id.to_string()),
                    display_name: s.display_name,
                    email: s.email,
                    role: s.role,
                })
                .collect(),
        ))
    }
    /// The team's agents the caller may see, by name (deactivated ones only when asked).
    /// SUPERVISOR+.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn members(
        &self,
        #[graphql(default = false)] include_inactive: bool,
    ) -> async_graphql::Result<Option<Vec<Agent>>> {
        let rows = self.reads.members.load_one(self.row.id).await?.unwrap_or_default();
        Ok(Some(
            rows.into_iter()
                .filter(|a| (include_inactive || a.active) && self.reads.scope.admits(a))
                .map(|a| Agent::new(a, self.reads.clone()))
                .collect(),
        ))
    }
}

/// A skill of the organization's catalogue.
#[derive(SimpleObject, Clone)]
pub struct Skill {
    id: ID,
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<SkillRow> for Skill {
    fn from(row: SkillRow) -> Self {
        Skill {
            id: ID(row.id.to_string()),
            name: row.name,
            description: row.description,
            created_at: row.created_at,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Root fields

/// Which agents `agents` lists. Filters combine with AND; a list matches any of its values.
#[derive(InputObject, Default)]
pub struct AgentsFilter {
    /// Agents currently in one of these teams.
    team_ids: Option<Vec<ID>>,
    /// Agents holding at least one of these skills (AGENT+: skills are a profile field).
    skill_ids: Option<Vec<ID>>,
    presence: Option<Vec<Presence>>,
    routing_state: Option<Vec<RoutingState>>,
    /// Case-insensitive part of the display name or extension (at most 200 characters).
    search: Option<String>,
    /// Deactivated agents too (default: active only).
    #[graphql(default = false)]
    include_inactive: bool,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AgentOrderField {
    Name,
    Extension,
    CreatedAt,
}

#[derive(InputObject, Clone, Copy)]
pub struct AgentsOrder {
    field: AgentOrderField,
    /// Ties are ordered by id; agents without an extension sort last.
    #[graphql(default)]
    direction: SortDirection,
}

#[derive(SimpleObject)]
pub struct AgentConnectionTotals {
    /// Agents matching the filter within the caller's scope, whatever the page.
    total_count: i64,
}

pub type AgentConnection = Connection<String, Agent, AgentConnectionTotals>;

/// Unknown (or another organization's) ids in a filter: BAD_USER_INPUT naming each, as the
/// KPI filters do.
fn report_unknown(field: &str, asked: &[Uuid], found: &[Uuid], errors: &mut Vec<FieldError>) {
    for (i, id) in asked.iter().enumerate() {
        if !found.contains(id) {
            errors.push(FieldError::new(format!("{field}[{i}]"), "unknown id"));
        }
    }
}

async fn list_filter(
    conn: &mut AsyncPgConnection,
    reads: &AgentReads,
    filter: AgentsFilter,
) -> async_graphql::Result<AgentListFilter> {
    let team_ids = parse_ids("filter.teamIds", &filter.team_ids)?;
    let skill_ids = parse_ids("filter.skillIds", &filter.skill_ids)?;
    let search = filter.search.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut errors = Vec::new();
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        errors.push(FieldError::new("filter.search", "at most 200 characters"));
    }
    if let Some(ids) = &team_ids {
        let found: Vec<Uuid> = team_rows::teams_by_ids(conn, &reads.tenant, ids)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        report_unknown("filter.teamIds", ids, &found, &mut errors);
    }
    if let Some(ids) = &skill_ids {
        let found: Vec<Uuid> = team_rows::skills_by_ids(conn, &reads.tenant, ids)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        report_unknown("filter.skillIds", ids, &found, &mut errors);
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors).into());
    }
    Ok(AgentListFilter {
        visible: reads.scope.visible(),
        team_ids,
        skill_ids,
        presence: filter
            .presence
            .map(|v| v.into_iter().map(|p| p.as_str().to_owned()).collect()),
        routing_state: filter
            .routing_state
            .map(|v| v.into_iter().map(|r| r.as_str().to_owned()).collect()),
        search,
        include_inactive: filter.include_inactive,
    })
}

#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// The agents in the caller's scope: ADMIN+ every agent; SUPERVISOR those of the teams
    /// they supervise (every agent when the organization's `supervisorsSeeAllAgents` is on);
    /// AGENT only themselves; VIEWER every agent's name, team and state (profile fields are
    /// AGENT+). Default order: NAME ascending. Cursors are opaque offsets into the order.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn agents(
        &self,
        ctx: &Context<'_>,
        filter: Option<AgentsFilter>,
        order_by: Option<AgentsOrder>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<AgentConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let start = after
            .as_deref()
            .map(decode_offset)
            .transpose()?
            .map_or(0, |o| o.saturating_add(1));
        let filter = filter.unwrap_or_default();
        // Skills are a profile field (AGENT+): a VIEWER filtering by them would read them.
        if filter.skill_ids.is_some() && principal(ctx)?.role < Role::Agent {
            return Err(AppError::Forbidden("filtering by skills requires role AGENT or higher".into()).into());
        }
        let (reads, mut conn) = AgentReads::for_request(ctx, org_id.as_ref()).await?;
        let list = list_filter(&mut conn, &reads, filter).await?;
        let (sort, descending) = order_by.map_or((AgentSort::Name, false), |o| {
            let sort = match o.field {
                AgentOrderField::Name => AgentSort::Name,
                AgentOrderField::Extension => AgentSort::Extension,
                AgentOrderField::CreatedAt => AgentSort::CreatedAt,
            };
            (sort, o.direction == SortDirection::Desc)
        });
        let offset = i64::try_from(start).unwrap_or(i64::MAX);
        let mut rows = agent_rows::page(&mut conn, &reads.tenant, &list, sort, descending, offset, limit + 1).await?;
        let total_count = agent_rows::count(&mut conn, &reads.tenant, &list).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        drop(conn);
        reads
            .prime_agents(&ctx.look_ahead().field("edges").field("node"), &rows)
            .await?;
        let mut connection =
            Connection::with_additional_fields(start > 0, has_next, AgentConnectionTotals { total_count });
        connection.edges.extend(
            rows.into_iter()
                .enumerate()
                .map(|(i, row)| Edge::new(encode_offset(start + i), Agent::new(row, reads.clone()))),
        );
        Ok(connection)
    }

    /// One agent. Outside the caller's scope: FORBIDDEN; unknown or another organization's:
    /// NOT_FOUND.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn agent(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<Agent> {
        let agent_id = parse_id(&id, "id")?;
        let (reads, mut conn) = AgentReads::for_request(ctx, org_id.as_ref()).await?;
        let row = manage::get_in_scope(&mut conn, &reads.tenant, &reads.scope, agent_id).await?;
        Ok(Agent::new(row, reads))
    }
}

#[derive(InputObject)]
pub struct CreateAgentInput {
    pub display_name: String,
    /// 1–32 of 0-9, A-Z, a-z, `*`, `#`, `+`, `-`; unique in the organization.
    pub extension: Option<String>,
    /// Required for a SUPERVISOR (one of the teams they supervise).
    pub team_id: Option<ID>,
    /// The user who signs in as this agent (at most one agent per user).
    pub user_id: Option<ID>,
}

/// A partial update: omitted fields keep their value; `null` clears `extension`, `teamId`
/// or `userId`.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    pub display_name: Option<String>,
    pub extension: MaybeUndefined<String>,
    pub team_id: MaybeUndefined<ID>,
    pub user_id: MaybeUndefined<ID>,
}

fn patch_id(value: MaybeUndefined<ID>, field: &str) -> AppResult<Option<Option<Uuid>>> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(id) => Ok(Some(Some(parse_id(&id, field)?))),
    }
}

fn optional_id(value: Option<&ID>, field: &str) -> AppResult<Option<Uuid>> {
    value.map(|id| parse_id(id, field)).transpose()
}

/// The reads an answer to a mutation needs (the caller's scope after the change).
async fn reads_after(ctx: &Context<'_>, tenant: Tenant, caller: &Principal) -> async_graphql::Result<Arc<AgentReads>> {
    let pool = &state(ctx)?.db;
    let mut conn = pool.get(&tenant).await?;
    let scope = manage::scope_of(&mut conn, &tenant, caller).await?;
    Ok(AgentReads::new(pool, tenant, scope))
}

#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// Creates an agent (OFFLINE, IDLE). ADMIN+; a SUPERVISOR into a team they supervise.
    /// A duplicate extension or a user who already has an agent: CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn create_agent(
        &self,
        ctx: &Context<'_>,
        input: CreateAgentInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Agent> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let input = NewAgentInput {
            display_name: input.display_name,
            extension: input.extension,
            team_id: optional_id(input.team_id.as_ref(), "input.teamId")?,
            user_id: optional_id(input.user_id.as_ref(), "input.userId")?,
        };
        let row = manage::create(state(ctx)?, caller, &tenant, input, request_id(ctx)).await?;
        Ok(Agent::new(row, reads_after(ctx, tenant, caller).await?))
    }

    /// Changes an agent's name, extension, team or linked user. ADMIN+; a SUPERVISOR for
    /// agents of their teams, and only into teams they supervise.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAgentInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Agent> {
        let agent_id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let patch = AgentPatch {
            display_name: input.display_name,
            extension: match input.extension {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(e) => Some(Some(e)),
            },
            team_id: patch_id(input.team_id, "input.teamId")?,
            user_id: patch_id(input.user_id, "input.userId")?,
        };
        let row = manage::update(state(ctx)?, caller, &tenant, agent_id, patch, request_id(ctx)).await?;
        Ok(Agent::new(row, reads_after(ctx, tenant, caller).await?))
    }

    /// Deactivates an agent (it leaves live boards and listings). Refused (CONFLICT) unless
    /// the agent is OFFLINE and IDLE. ADMIN+; a SUPERVISOR for agents of their teams.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn deactivate_agent(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<Agent> {
        let agent_id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::deactivate(state(ctx)?, caller, &tenant, agent_id, request_id(ctx)).await?;
        Ok(Agent::new(row, reads_after(ctx, tenant, caller).await?))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::db::agents::{AgentCallRow, StateIntervalRow};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).single().unwrap_or_default()
    }

    fn state(
        axis: &str,
        state: &str,
        reason: Option<&str>,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> StateIntervalRow {
        StateIntervalRow {
            axis: axis.into(),
            state: state.into(),
            reason: reason.map(Into::into),
            started_at: from,
            ended_at: to,
        }
    }

    #[test]
    fn the_timeline_merges_states_and_calls_and_clips_time_to_the_window() {
        let states = vec![
            // Began before the window: only 30 minutes of it count.
            state("PRESENCE", "AVAILABLE", None, at(8, 30), Some(at(9, 30))),
            state("PRESENCE", "BREAK", Some("COFFEE"), at(9, 30), Some(at(9, 45))),
            state("PRESENCE", "AVAILABLE", None, at(9, 45), None),
        ];
        let calls = vec![AgentCallRow {
            id: Uuid::nil(),
            external_id: "CA1".into(),
            direction: "INBOUND".into(),
            campaign_id: None,
            offered_at: at(9, 10),
            answered_at: Some(at(9, 11)),
            ended_at: Some(at(9, 20)),
            wrap_ended_at: Some(at(9, 22)),
            talk_ms: 540_000,
            hold_ms: 0,
            wrap_ms: 120_000,
            outcome: "ANSWERED".into(),
            disposition_id: None,
        }];
        // Window 09:00–10:00, now 10:30: the open interval counts up to the window's end.
        let activity = AgentActivity::build(at(9, 0), at(10, 0), at(10, 30), states, calls);
        let kinds: Vec<(ActivityKind, DateTime<Utc>)> = activity.entries.iter().map(|e| (e.kind, e.at)).collect();
        assert_eq!(
            kinds,
            vec![
                (ActivityKind::State, at(8, 30)),
                (ActivityKind::Call, at(9, 10)),
                (ActivityKind::State, at(9, 30)),
                (ActivityKind::State, at(9, 45)),
            ]
        );
        assert_eq!(activity.entries[1].seconds_in_window, 720.0);
        assert_eq!(activity.entries[1].talk_seconds, Some(540.0));
        let totals: Vec<(&str, Option<&str>, f64)> = activity
            .time_in_state
            .iter()
            .map(|t| (t.state.as_str(), t.reason_code.as_deref(), t.seconds))
            .collect();
        assert_eq!(
            totals,
            vec![("AVAILABLE", None, 45.0 * 60.0), ("BREAK", Some("COFFEE"), 15.0 * 60.0)]
        );
        assert!(!activity.truncated);
    }
}
