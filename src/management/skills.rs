//! Skills: the organization's catalogue and the agents' proficiencies.
//!
//! * Create and rename: SUPERVISOR+ (DESIGN.md §4: skills are supervisors' business). Delete:
//!   ADMIN+, because it takes the skill from every agent, also agents outside a supervisor's
//!   teams.
//! * Assign (set a proficiency, 1 = novice … 5 = expert) and unassign: SUPERVISOR+ for agents
//!   in their scope (see `management::agents`); in bulk, up to [`MAX_ASSIGNMENTS`] pairs per
//!   call, all or nothing: one bad pair refuses the whole call and stores nothing.
//! * Names are trimmed, 1–200 characters, unique per organization (a duplicate is CONFLICT).
//!
//! Each change writes one audit record in its transaction and, after commit, publishes the
//! agents whose skills changed on the agent-state topic.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::agents as agent_rows;
use crate::db::teams::{self as rows, SkillRow};
use crate::error::{AppError, AppResult, FieldError};
use crate::management::agents::{out_of_scope, publish, scope_of};
use crate::state::AppState;

/// Most (agent, skill) pairs one assignment call may carry.
pub const MAX_ASSIGNMENTS: usize = 1_000;

/// One proficiency to set.
#[derive(Clone, Copy, Debug)]
pub struct Assignment {
    pub agent_id: Uuid,
    pub skill_id: Uuid,
    pub proficiency: i32,
}

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "name",
            "must be 1 to 200 characters",
        )]));
    }
    Ok(name.to_owned())
}

fn check_description(description: Option<&str>) -> AppResult<Option<String>> {
    let description = description.map(str::trim).filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > 2_000) {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "description",
            "at most 2,000 characters",
        )]));
    }
    Ok(description.map(str::to_owned))
}

fn require(principal: &Principal, role: Role) -> AppResult<()> {
    if principal.role < role {
        return Err(AppError::Forbidden(format!("requires role {role} or higher")));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    name: &str,
    description: Option<&str>,
    request_id: Option<String>,
) -> AppResult<SkillRow> {
    require(principal, Role::Supervisor)?;
    let name = check_name(name)?;
    let description = check_description(description)?;
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| -> AppResult<SkillRow> {
        let skill = rows::insert_skill(conn, tenant, &name, description.as_deref()).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "skill.create")
            .target("skill", skill.id)
            .details(serde_json::json!({ "name": skill.name }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(skill)
    })
    .await
}

pub async fn rename(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    skill_id: Uuid,
    name: &str,
    request_id: Option<String>,
) -> AppResult<SkillRow> {
    require(principal, Role::Supervisor)?;
    let name = check_name(name)?;
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| -> AppResult<SkillRow> {
        let before = rows::lock_skill(conn, tenant, skill_id).await?;
        if before.name == name {
            return Ok(before);
        }
        let after = rows::rename_skill(conn, tenant, skill_id, &name).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "skill.rename")
            .target("skill", skill_id)
            .details(serde_json::json!({ "before": before.name, "after": after.name }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(after)
    })
    .await
}

pub async fn delete(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    skill_id: Uuid,
    request_id: Option<String>,
) -> AppResult<SkillRow> {
    require(principal, Role::Admin)?;
    let mut conn = state.db.get(tenant).await?;
    let (skill, holders) = conn
        .transaction(async |conn| -> AppResult<(SkillRow, Vec<Uuid>)> {
            let skill = rows::lock_skill(conn, tenant, skill_id).await?;
            let holders = rows::delete_skill(conn, tenant, skill_id).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "skill.delete")
                .target("skill", skill_id)
                .details(serde_json::json!({ "name": skill.name, "heldBy": holders }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((skill, holders))
        })
        .await?;
    publish(state, tenant, holders);
    Ok(skill)
}

fn check_assignments(field: &str, assignments: &[Assignment]) -> AppResult<()> {
    if assignments.is_empty() || assignments.len() > MAX_ASSIGNMENTS {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            field,
            format!("1 to {MAX_ASSIGNMENTS} assignments per call"),
        )]));
    }
    let errors: Vec<FieldError> = assignments
        .iter()
        .enumerate()
        .filter(|(_, a)| !(1..=5).contains(&a.proficiency))
        .map(|(i, _)| FieldError::new(format!("{field}[{i}].proficiency"), "must be 1 to 5"))
        .collect();
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    for (i, a) in assignments.iter().enumerate() {
        if assignments[..i]
            .iter()
            .any(|b| b.agent_id == a.agent_id && b.skill_id == a.skill_id)
        {
            return Err(AppError::invalid_fields(vec![FieldError::new(
                format!("{field}[{i}]"),
                "the same agent and skill appear twice",
            )]));
        }
    }
    Ok(())
}

fn distinct(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = ids.collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Sets proficiencies (bulk, all or nothing). Returns the agents changed.
pub async fn assign(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    assignments: &[Assignment],
    request_id: Option<String>,
) -> AppResult<Vec<Uuid>> {
    change(state, principal, tenant, assignments, true, request_id).await
}

/// Removes skills from agents (bulk, all or nothing; `proficiency` is ignored). Returns the
/// agents changed.
pub async fn unassign(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    pairs: &[Assignment],
    request_id: Option<String>,
) -> AppResult<Vec<Uuid>> {
    change(state, principal, tenant, pairs, false, request_id).await
}

async fn change(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    assignments: &[Assignment],
    set: bool,
    request_id: Option<String>,
) -> AppResult<Vec<Uuid>> {
    require(principal, Role::Supervisor)?;
    let field = "assignments";
    if set {
        check_assignments(field, assignments)?;
    } else {
        let as_set: Vec<Assignment> = assignments
            .iter()
            .map(|a| Assignment { proficiency: 1, ..*a })
            .collect();
        check_assignments(field, &as_set)?;
    }
    let agent_ids = distinct(assignments.iter().map(|a| a.agent_id));
    let skill_ids = distinct(assignments.iter().map(|a| a.skill_id));
    let mut conn = state.db.get(tenant).await?;
    let changed = conn
        .transaction(async |conn| -> AppResult<Vec<Uuid>> {
            let scope = scope_of(conn, tenant, principal).await?;
            let agents = agent_rows::lock(conn, tenant, &agent_ids).await?;
            if agents.len() != agent_ids.len() {
                return Err(AppError::NotFound("agent not found".into()));
            }
            if agents.iter().any(|a| !scope.admits(a)) {
                return Err(out_of_scope());
            }
            if rows::skills_by_ids(conn, tenant, &skill_ids).await?.len() != skill_ids.len() {
                return Err(rows::skill_not_found());
            }
            let details = if set {
                let values: Vec<(Uuid, Uuid, i16)> = assignments
                    .iter()
                    // Checked to be 1..=5 above, so it fits.
                    .map(|a| (a.agent_id, a.skill_id, i16::try_from(a.proficiency).unwrap_or(1)))
                    .collect();
                let before = agent_rows::upsert_skills(conn, tenant, &values).await?;
                serde_json::json!({
                    "set": values.iter().map(|(a, s, p)| serde_json::json!({ "agentId": a, "skillId": s, "proficiency": p })).collect::<Vec<_>>(),
                    "before": before.iter().map(|(a, s, p)| serde_json::json!({ "agentId": a, "skillId": s, "proficiency": p })).collect::<Vec<_>>(),
                })
            } else {
                let pairs: Vec<(Uuid, Uuid)> = assignments.iter().map(|a| (a.agent_id, a.skill_id)).collect();
                let removed = agent_rows::remove_skills(conn, tenant, &pairs).await?;
                serde_json::json!({
                    "removed": removed.iter().map(|(a, s)| serde_json::json!({ "agentId": a, "skillId": s })).collect::<Vec<_>>(),
                })
            };
            let action = if set { "skill.assign" } else { "skill.unassign" };
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), action)
                .details(details)
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(agent_ids.clone())
        })
        .await?;
    publish(state, tenant, changed.clone());
    Ok(changed)
}
