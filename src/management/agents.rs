//! Agents: who sees which, and the profile changes (create, update, deactivate).
//!
//! # Scope (DESIGN.md §4)
//! * ADMIN and above: every agent of the organization.
//! * SUPERVISOR: the agents of the teams they supervise (`team_supervisors`); the business
//!   setting `supervisorsSeeAllAgents` widens that to every agent.
//! * AGENT: only themselves (the agent profile linked to their user).
//! * VIEWER: every agent, but only names, teams and states (what the wallboard shows anyway);
//!   the profile fields (extension, skills, performance, activity) are guarded AGENT+, and an
//!   AGENT's rows are their own.
//!
//! An agent outside the caller's scope is FORBIDDEN (its name and state are not secret: every
//! VIEWER reads them); an id of another organization, or none, is NOT_FOUND.
//!
//! # Changes
//! ADMIN: any agent. SUPERVISOR: agents in scope, and only into teams they supervise (an agent
//! cannot be moved out of a supervisor's reach into a team they do not supervise, nor created
//! without a team under team scope). Every change writes its audit record in the same
//! transaction and is published on the agent-state topic after commit, so live boards (and
//! `agentStates` filtered by team) follow at once.
//!
//! Deactivation is refused (CONFLICT) unless the agent is OFFLINE and IDLE: an agent that
//! disappeared mid-shift would leave an open presence interval counting logged-in time, or a
//! call without its owner. Set the agent OFFLINE first.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::agents::{self as rows, AgentProfile, AgentRow, Visible};
use crate::db::{orgs, teams};
use crate::domain::{Presence, RoutingState};
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::BusEvent;
use crate::state::AppState;

/// Which agents a caller sees (and, above VIEWER, manages or reads in full).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentScope {
    /// ADMIN+, a SUPERVISOR when the organization widens their scope, and VIEWER (names and
    /// states only; see the module documentation).
    All,
    /// A SUPERVISOR: the agents of these teams.
    Teams(Vec<Uuid>),
    /// An AGENT: their own profile, if they have one.
    Own(Option<Uuid>),
}

impl AgentScope {
    pub fn visible(&self) -> Visible {
        match self {
            AgentScope::All => Visible::All,
            AgentScope::Teams(ids) => Visible::Teams(ids.clone()),
            AgentScope::Own(id) => Visible::One(*id),
        }
    }

    pub fn admits(&self, agent: &AgentRow) -> bool {
        match self {
            AgentScope::All => true,
            AgentScope::Teams(ids) => agent.team_id.is_some_and(|t| ids.contains(&t)),
            AgentScope::Own(id) => *id == Some(agent.id),
        }
    }

    /// Whether an agent may be placed in `team` (None: no team) by a caller of this scope.
    pub fn admits_team(&self, team: Option<Uuid>) -> bool {
        match self {
            AgentScope::All => true,
            AgentScope::Teams(ids) => team.is_some_and(|t| ids.contains(&t)),
            AgentScope::Own(_) => false,
        }
    }
}

/// The caller's scope over the tenant's agents.
pub async fn scope_of(conn: &mut AsyncPgConnection, tenant: &Tenant, principal: &Principal) -> AppResult<AgentScope> {
    match principal.role {
        Role::Admin | Role::SuperAdmin | Role::Viewer => Ok(AgentScope::All),
        Role::Supervisor => {
            if orgs::settings(conn, tenant).await?.supervisors_see_all_agents {
                Ok(AgentScope::All)
            } else {
                Ok(AgentScope::Teams(
                    teams::supervised_by(conn, tenant, principal.user_id).await?,
                ))
            }
        }
        Role::Agent => Ok(AgentScope::Own(
            rows::of_user(conn, tenant, principal.user_id).await?.map(|a| a.id),
        )),
    }
}

pub fn out_of_scope() -> AppError {
    AppError::Forbidden("this agent is outside your teams".into())
}

/// The scope a caller may change agents in: ADMIN+ all, SUPERVISOR their scope, nobody else.
async fn managing_scope(conn: &mut AsyncPgConnection, tenant: &Tenant, principal: &Principal) -> AppResult<AgentScope> {
    if principal.role < Role::Supervisor {
        return Err(AppError::Forbidden("requires role SUPERVISOR or higher".into()));
    }
    scope_of(conn, tenant, principal).await
}

/// Reads one agent the caller may see; FORBIDDEN outside their scope.
pub async fn get_in_scope(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    scope: &AgentScope,
    agent_id: Uuid,
) -> AppResult<AgentRow> {
    let agent = rows::get(conn, tenant, agent_id).await?;
    if scope.admits(&agent) {
        Ok(agent)
    } else {
        Err(out_of_scope())
    }
}

/// Publishes after commit that these agents' profiles changed.
pub(crate) fn publish(state: &AppState, tenant: &Tenant, agent_ids: Vec<Uuid>) {
    if !agent_ids.is_empty() {
        state
            .bus
            .publish(tenant.org_id(), BusEvent::AgentProfiles { agent_ids });
    }
}

/// A new agent. `team_id` and `user_id` are optional.
#[derive(Clone, Debug, Default)]
pub struct NewAgentInput {
    pub display_name: String,
    pub extension: Option<String>,
    pub team_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

/// A partial update: `None` keeps a field; `Some(None)` clears a nullable one.
#[derive(Clone, Debug, Default)]
pub struct AgentPatch {
    pub display_name: Option<String>,
    pub extension: Option<Option<String>>,
    pub team_id: Option<Option<Uuid>>,
    pub user_id: Option<Option<Uuid>>,
}

fn check_name(errors: &mut Vec<FieldError>, field: &str, name: &str) {
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new(field, "must be 1 to 200 characters"));
    }
}

fn check_extension(errors: &mut Vec<FieldError>, field: &str, extension: Option<&str>) {
    if let Some(ext) = extension {
        let ok = (1..=32).contains(&ext.len())
            && ext
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '+' | '-'));
        if !ok {
            errors.push(FieldError::new(
                field,
                "must be 1 to 32 characters of 0-9, A-Z, a-z, *, #, + or -",
            ));
        }
    }
}

/// Refuses a user that is not of the tenant (NOT_FOUND) or inactive (BAD_USER_INPUT).
async fn check_user(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid, field: &str) -> AppResult<()> {
    let found = teams::users_by_ids(conn, tenant, &[user_id]).await?;
    match found.first() {
        None => Err(AppError::NotFound("user not found".into())),
        Some((_, _, false)) => Err(AppError::invalid_fields(vec![FieldError::new(
            field,
            "the user is deactivated",
        )])),
        Some(_) => Ok(()),
    }
}

/// Refuses a team that is not of the tenant (NOT_FOUND) or outside the caller's reach.
async fn check_team(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    scope: &AgentScope,
    team_id: Option<Uuid>,
) -> AppResult<()> {
    if let Some(id) = team_id {
        if teams::teams_by_ids(conn, tenant, &[id]).await?.is_empty() {
            return Err(teams::team_not_found());
        }
    }
    if !scope.admits_team(team_id) {
        return Err(AppError::Forbidden(
            "you may only place agents in teams you supervise".into(),
        ));
    }
    Ok(())
}

fn trimmed(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned())
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewAgentInput,
    request_id: Option<String>,
) -> AppResult<AgentRow> {
    let display_name = input.display_name.trim().to_owned();
    let extension = trimmed(input.extension).filter(|e| !e.is_empty());
    let mut errors = Vec::new();
    check_name(&mut errors, "input.displayName", &display_name);
    check_extension(&mut errors, "input.extension", extension.as_deref());
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    let agent = conn
        .transaction(async |conn| -> AppResult<AgentRow> {
            let scope = managing_scope(conn, tenant, principal).await?;
            check_team(conn, tenant, &scope, input.team_id).await?;
            if let Some(user_id) = input.user_id {
                check_user(conn, tenant, user_id, "input.userId").await?;
            }
            let agent = rows::insert(
                conn,
                tenant,
                &AgentProfile {
                    user_id: input.user_id,
                    display_name: &display_name,
                    extension: extension.as_deref(),
                    team_id: input.team_id,
                },
            )
            .await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "agent.create")
                .target("agent", agent.id)
                .details(serde_json::json!({
                    "displayName": agent.display_name,
                    "extension": agent.extension,
                    "teamId": agent.team_id,
                    "userId": agent.user_id,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(agent)
        })
        .await?;
    publish(state, tenant, vec![agent.id]);
    Ok(agent)
}

pub async fn update(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    agent_id: Uuid,
    patch: AgentPatch,
    request_id: Option<String>,
) -> AppResult<AgentRow> {
    let display_name = trimmed(patch.display_name);
    let extension = patch.extension.map(|e| trimmed(e).filter(|e| !e.is_empty()));
    let mut errors = Vec::new();
    if let Some(name) = &display_name {
        check_name(&mut errors, "input.displayName", name);
    }
    if let Some(ext) = &extension {
        check_extension(&mut errors, "input.extension", ext.as_deref());
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    let (before, after) = conn
        .transaction(async |conn| -> AppResult<(AgentRow, AgentRow)> {
            let scope = managing_scope(conn, tenant, principal).await?;
            let before = rows::lock(conn, tenant, &[agent_id])
                .await?
                .pop()
                .ok_or_else(|| AppError::NotFound("agent not found".into()))?;
            if !scope.admits(&before) {
                return Err(out_of_scope());
            }
            let team_id = patch.team_id.unwrap_or(before.team_id);
            if team_id != before.team_id {
                check_team(conn, tenant, &scope, team_id).await?;
            }
            let user_id = patch.user_id.unwrap_or(before.user_id);
            if let Some(user) = user_id.filter(|u| Some(*u) != before.user_id) {
                check_user(conn, tenant, user, "input.userId").await?;
            }
            let profile = AgentProfile {
                user_id,
                display_name: display_name.as_deref().unwrap_or(&before.display_name),
                extension: match &extension {
                    Some(e) => e.as_deref(),
                    None => before.extension.as_deref(),
                },
                team_id,
            };
            let after = rows::update_profile(conn, tenant, agent_id, &profile).await?;
            if after == before {
                return Ok((before, after));
            }
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "agent.update")
                .target("agent", agent_id)
                .details(serde_json::json!({
                    "before": { "displayName": before.display_name, "extension": before.extension,
                                "teamId": before.team_id, "userId": before.user_id },
                    "after": { "displayName": after.display_name, "extension": after.extension,
                               "teamId": after.team_id, "userId": after.user_id },
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((before, after))
        })
        .await?;
    if before != after {
        publish(state, tenant, vec![agent_id]);
    }
    Ok(after)
}

pub async fn deactivate(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    agent_id: Uuid,
    request_id: Option<String>,
) -> AppResult<AgentRow> {
    let mut conn = state.db.get(tenant).await?;
    let (agent, changed) = conn
        .transaction(async |conn| -> AppResult<(AgentRow, bool)> {
            let scope = managing_scope(conn, tenant, principal).await?;
            let agent = rows::lock(conn, tenant, &[agent_id])
                .await?
                .pop()
                .ok_or_else(|| AppError::NotFound("agent not found".into()))?;
            if !scope.admits(&agent) {
                return Err(out_of_scope());
            }
            if !agent.active {
                return Ok((agent, false));
            }
            if agent.presence != Presence::Offline.as_str() || agent.routing_state != RoutingState::Idle.as_str() {
                return Err(AppError::Conflict(format!(
                    "the agent is {} and {}: set them OFFLINE (after any call) before deactivating",
                    agent.presence, agent.routing_state
                )));
            }
            let updated = rows::set_active(conn, tenant, agent_id, false).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "agent.deactivate")
                .target("agent", agent_id)
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((updated, true))
        })
        .await?;
    if changed {
        publish(state, tenant, vec![agent_id]);
    }
    Ok(agent)
}
