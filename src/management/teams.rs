//! Teams: create, rename, delete, supervisors, members.
//!
//! * Create, rename, delete and the supervisors of a team are ADMIN+: a team's supervisors
//!   decide who sees which agents, so a SUPERVISOR cannot name themselves supervisor of a team.
//! * Members are added and removed by ADMIN+, or by a SUPERVISOR for the teams they supervise
//!   (the agents must be in their scope too: moving an agent from a team they do not supervise
//!   is FORBIDDEN).
//! * A team with agents (active or not) is deleted only when `reassignMembersTo` names another
//!   team of the organization: its members move there in the same transaction. Otherwise
//!   CONFLICT, and nothing changes.
//! * Supervisors must be active users of the organization with role SUPERVISOR or higher.
//! * Names are trimmed, 1–200 characters, unique per organization (a duplicate is CONFLICT).
//!
//! Every change writes one audit record in its transaction and, after commit, publishes the
//! agents whose team changed (or whose team was renamed) on the agent-state topic, so live
//! boards and `agentStates` filtered by team follow.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::agents as agent_rows;
use crate::db::teams::{self as rows, TeamRow};
use crate::error::{AppError, AppResult, FieldError};
use crate::management::agents::{out_of_scope, publish, scope_of};
use crate::state::AppState;

/// Most agents or supervisors one call may name.
pub const MAX_IDS_PER_CALL: usize = 1_000;

fn check_name(field: &str, name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            field,
            "must be 1 to 200 characters",
        )]));
    }
    Ok(name.to_owned())
}

fn check_count(field: &str, n: usize) -> AppResult<()> {
    if n > MAX_IDS_PER_CALL {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            field,
            format!("at most {MAX_IDS_PER_CALL} ids per call"),
        )]));
    }
    Ok(())
}

fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut out = ids.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

fn require_admin(principal: &Principal) -> AppResult<()> {
    if principal.role < Role::Admin {
        return Err(AppError::Forbidden("requires role ADMIN or higher".into()));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    name: &str,
    supervisor_ids: &[Uuid],
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    require_admin(principal)?;
    let name = check_name("name", name)?;
    check_count("supervisorIds", supervisor_ids.len())?;
    let supervisors = distinct(supervisor_ids);
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| -> AppResult<TeamRow> {
        let team = rows::insert_team(conn, tenant, &name).await?;
        check_supervisors(conn, tenant, &supervisors).await?;
        rows::replace_supervisors(conn, tenant, team.id, &supervisors).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "team.create")
            .target("team", team.id)
            .details(serde_json::json!({ "name": team.name, "supervisorIds": supervisors }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(team)
    })
    .await
}

/// Unknown users (or other tenants') are NOT_FOUND; users below SUPERVISOR or deactivated are
/// BAD_USER_INPUT naming `supervisorIds`.
async fn check_supervisors(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &Tenant,
    user_ids: &[Uuid],
) -> AppResult<()> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let found = rows::users_by_ids(conn, tenant, user_ids).await?;
    if found.len() != user_ids.len() {
        return Err(AppError::NotFound("user not found".into()));
    }
    if let Some((id, role, _)) = found
        .iter()
        .find(|(_, role, active)| *role < Role::Supervisor || !active)
    {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "supervisorIds",
            format!("user {id} cannot supervise a team: role {role} or deactivated (SUPERVISOR or higher, active)"),
        )]));
    }
    Ok(())
}

pub async fn rename(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    name: &str,
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    require_admin(principal)?;
    let name = check_name("name", name)?;
    let mut conn = state.db.get(tenant).await?;
    let (team, members) = conn
        .transaction(async |conn| -> AppResult<(TeamRow, Vec<Uuid>)> {
            let before = rows::lock_team(conn, tenant, team_id).await?;
            if before.name == name {
                return Ok((before, Vec::new()));
            }
            let after = rows::rename_team(conn, tenant, team_id, &name).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "team.rename")
                .target("team", team_id)
                .details(serde_json::json!({ "before": before.name, "after": after.name }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((after, rows::member_ids(conn, tenant, team_id).await?))
        })
        .await?;
    // Live boards show the team's name beside each agent.
    publish(state, tenant, members);
    Ok(team)
}

/// Deletes a team; its members move to `reassign_to` in the same transaction. Returns the
/// deleted team.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    reassign_to: Option<Uuid>,
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    require_admin(principal)?;
    if reassign_to == Some(team_id) {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "reassignMembersTo",
            "must be another team than the one deleted",
        )]));
    }
    let mut conn = state.db.get(tenant).await?;
    let (team, moved) = conn
        .transaction(async |conn| -> AppResult<(TeamRow, Vec<Uuid>)> {
            let team = rows::lock_team(conn, tenant, team_id).await?;
            if let Some(target) = reassign_to {
                rows::lock_team(conn, tenant, target).await?;
            }
            let members = rows::member_ids(conn, tenant, team_id).await?;
            if !members.is_empty() {
                let Some(target) = reassign_to else {
                    return Err(AppError::Conflict(format!(
                        "the team has {} agent(s): name a team in reassignMembersTo, or move them first",
                        members.len()
                    )));
                };
                agent_rows::lock(conn, tenant, &members).await?;
                agent_rows::set_team(conn, tenant, &members, Some(target)).await?;
            }
            rows::delete_team(conn, tenant, team_id).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "team.delete")
                .target("team", team_id)
                .details(serde_json::json!({
                    "name": team.name,
                    "reassignedTo": reassign_to,
                    "movedAgentIds": members,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((team, members))
        })
        .await?;
    publish(state, tenant, moved);
    Ok(team)
}

pub async fn set_supervisors(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    user_ids: &[Uuid],
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    require_admin(principal)?;
    check_count("userIds", user_ids.len())?;
    let users = distinct(user_ids);
    let mut conn = state.db.get(tenant).await?;
    let (team, members) = conn
        .transaction(async |conn| -> AppResult<(TeamRow, Vec<Uuid>)> {
            let team = rows::lock_team(conn, tenant, team_id).await?;
            check_supervisors(conn, tenant, &users).await.map_err(|e| match e {
                AppError::BadUserInput { fields, .. } => AppError::invalid_fields(
                    fields
                        .into_iter()
                        .map(|f| FieldError::new("userIds", f.message))
                        .collect(),
                ),
                other => other,
            })?;
            let mut before = rows::replace_supervisors(conn, tenant, team_id, &users).await?;
            before.sort_unstable();
            if before == users {
                return Ok((team, Vec::new()));
            }
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "team.supervisors")
                .target("team", team_id)
                .details(serde_json::json!({ "before": before, "after": users }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((team, rows::member_ids(conn, tenant, team_id).await?))
        })
        .await?;
    publish(state, tenant, members);
    Ok(team)
}

/// Moves agents into a team (from wherever they are). Returns the team.
pub async fn add_members(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    agent_ids: &[Uuid],
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    change_members(state, principal, tenant, team_id, agent_ids, true, request_id).await
}

/// Takes agents out of a team (they then have none).
pub async fn remove_members(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    agent_ids: &[Uuid],
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    change_members(state, principal, tenant, team_id, agent_ids, false, request_id).await
}

async fn change_members(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    team_id: Uuid,
    agent_ids: &[Uuid],
    add: bool,
    request_id: Option<String>,
) -> AppResult<TeamRow> {
    if principal.role < Role::Supervisor {
        return Err(AppError::Forbidden("requires role SUPERVISOR or higher".into()));
    }
    check_count("agentIds", agent_ids.len())?;
    let ids = distinct(agent_ids);
    let mut conn = state.db.get(tenant).await?;
    let (team, changed) = conn
        .transaction(async |conn| -> AppResult<(TeamRow, Vec<Uuid>)> {
            let team = rows::lock_team(conn, tenant, team_id).await?;
            let scope = scope_of(conn, tenant, principal).await?;
            if !scope.admits_team(Some(team_id)) {
                return Err(AppError::Forbidden(
                    "you may only change the members of teams you supervise".into(),
                ));
            }
            let agents = agent_rows::lock(conn, tenant, &ids).await?;
            if agents.len() != ids.len() {
                return Err(AppError::NotFound("agent not found".into()));
            }
            // A SUPERVISOR moves only agents of teams they supervise (not agents without a
            // team either: those are outside their scope).
            if agents.iter().any(|a| !scope.admits(a)) {
                return Err(out_of_scope());
            }
            let changed: Vec<Uuid> = if add {
                agents
                    .iter()
                    .filter(|a| a.team_id != Some(team_id))
                    .map(|a| a.id)
                    .collect()
            } else {
                if let Some((i, _)) = agent_ids
                    .iter()
                    .enumerate()
                    .find(|(_, id)| agents.iter().any(|a| a.id == **id && a.team_id != Some(team_id)))
                {
                    return Err(AppError::invalid_fields(vec![FieldError::new(
                        format!("agentIds[{i}]"),
                        "the agent is not a member of this team",
                    )]));
                }
                ids.clone()
            };
            if changed.is_empty() {
                return Ok((team, changed));
            }
            let before: Vec<serde_json::Value> = agents
                .iter()
                .filter(|a| changed.contains(&a.id))
                .map(|a| serde_json::json!({ "agentId": a.id, "teamId": a.team_id }))
                .collect();
            agent_rows::set_team(conn, tenant, &changed, add.then_some(team_id)).await?;
            let action = if add { "team.add_members" } else { "team.remove_members" };
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), action)
                .target("team", team_id)
                .details(serde_json::json!({ "agents": before }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((team, changed))
        })
        .await?;
    publish(state, tenant, changed);
    Ok(team)
}
