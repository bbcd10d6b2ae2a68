//! `teams`, `team`, `skills` and the team and skill mutations. Rules live in
//! `management::teams` and `management::skills`; the output types (`Team`, `Skill`) and their
//! loaders in `graphql::agents`.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use crate::auth::{Permission, Principal, Tenant};
use crate::db::teams as team_rows;
use crate::error::{AppError, AppResult};
use crate::graphql::agents::{AgentReads, Skill, Team};
use crate::graphql::context::{parse_id, principal, request_id, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::management::{agents as manage_agents, skills as manage_skills, teams as manage};

fn parse_id_list(ids: &[ID], field: &str) -> AppResult<Vec<uuid::Uuid>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| parse_id(id, &format!("{field}[{i}]")))
        .collect()
}

async fn team_answer(
    ctx: &Context<'_>,
    tenant: Tenant,
    caller: &Principal,
    row: team_rows::TeamRow,
) -> async_graphql::Result<Team> {
    let pool = &state(ctx)?.db;
    let mut conn = pool.get(&tenant).await?;
    let scope = manage_agents::scope_of(&mut conn, &tenant, caller).await?;
    Ok(Team::new(row, AgentReads::new(pool, tenant, scope)))
}

#[derive(Default)]
pub struct TeamQuery;

#[Object]
impl TeamQuery {
    /// Every team of the organization, by name. SUPERVISOR+ (a team's `members` lists only
    /// the agents the caller may see).
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "100 * child_complexity"
    )]
    async fn teams(&self, ctx: &Context<'_>, org_id: Option<ID>) -> async_graphql::Result<Vec<Team>> {
        let (reads, mut conn) = AgentReads::for_request(ctx, org_id.as_ref()).await?;
        let rows = team_rows::list_teams(&mut conn, &reads.tenant).await?;
        drop(conn);
        let ids: Vec<uuid::Uuid> = rows.iter().map(|t| t.id).collect();
        reads.prime_teams(&ctx.look_ahead(), &ids).await?;
        Ok(rows.into_iter().map(|row| Team::new(row, reads.clone())).collect())
    }

    /// One team; unknown or another organization's: NOT_FOUND. SUPERVISOR+.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn team(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<Team> {
        let team_id = parse_id(&id, "id")?;
        let (reads, mut conn) = AgentReads::for_request(ctx, org_id.as_ref()).await?;
        let row = team_rows::teams_by_ids(&mut conn, &reads.tenant, &[team_id])
            .await?
            .pop()
            .ok_or_else(team_rows::team_not_found)?;
        Ok(Team::new(row, reads))
    }

    /// The organization's skill catalogue, by name. SUPERVISOR+.
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "100 * child_complexity"
    )]
    async fn skills(&self, ctx: &Context<'_>, org_id: Option<ID>) -> async_graphql::Result<Vec<Skill>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        Ok(team_rows::list_skills(&mut conn, &tenant)
            .await?
            .into_iter()
            .map(Skill::from)
            .collect())
    }
}

/// One proficiency to set (or, for `unassignSkills`, one pair to remove; `proficiency` is
/// then ignored).
#[derive(InputObject)]
pub struct SkillAssignmentInput {
    pub agent_id: ID,
    pub skill_id: ID,
    /// 1 (novice) to 5 (expert).
    #[graphql(default = 1)]
    pub proficiency: i32,
}

/// What a bulk skill change did.
#[derive(SimpleObject)]
pub struct SkillAssignmentResult {
    /// The agents whose skills were changed.
    agent_ids: Vec<ID>,
}

fn assignments(input: &[SkillAssignmentInput]) -> AppResult<Vec<manage_skills::Assignment>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(input.len());
    for (i, a) in input.iter().enumerate() {
        match (
            parse_id(&a.agent_id, &format!("assignments[{i}].agentId")),
            parse_id(&a.skill_id, &format!("assignments[{i}].skillId")),
        ) {
            (Ok(agent_id), Ok(skill_id)) => out.push(manage_skills::Assignment {
                agent_id,
                skill_id,
                proficiency: a.proficiency,
            }),
            (a, s) => {
                for e in [a.err(), s.err()].into_iter().flatten() {
                    if let AppError::BadUserInput { fields, .. } = e {
                        errors.extend(fields);
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

fn result(agent_ids: Vec<uuid::Uuid>) -> SkillAssignmentResult {
    SkillAssignmentResult {
        agent_ids: agent_ids.into_iter().map(|id| ID(id.to_string())).collect(),
    }
}

#[derive(Default)]
pub struct TeamMutation;

#[Object]
impl TeamMutation {
    /// Creates a team, optionally with its supervisors (users of role SUPERVISOR or higher).
    /// ADMIN+. A duplicate name: CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn create_team(
        &self,
        ctx: &Context<'_>,
        name: String,
        supervisor_ids: Option<Vec<ID>>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Team> {
        let supervisors = parse_id_list(supervisor_ids.as_deref().unwrap_or_default(), "supervisorIds")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::create(state(ctx)?, caller, &tenant, &name, &supervisors, request_id(ctx)).await?;
        team_answer(ctx, tenant, caller, row).await
    }

    /// Renames a team. ADMIN+. A duplicate name: CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn rename_team(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Team> {
        let team_id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::rename(state(ctx)?, caller, &tenant, team_id, &name, request_id(ctx)).await?;
        team_answer(ctx, tenant, caller, row).await
    }

    /// Deletes a team. A team with agents is refused (CONFLICT) unless `reassignMembersTo`
    /// names another team: its agents move there in the same transaction. Returns the deleted
    /// team's id. ADMIN+.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn delete_team(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reassign_members_to: Option<ID>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<ID> {
        let team_id = parse_id(&id, "id")?;
        let target = reassign_members_to
            .as_ref()
            .map(|t| parse_id(t, "reassignMembersTo"))
            .transpose()?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::delete(state(ctx)?, principal(ctx)?, &tenant, team_id, target, request_id(ctx)).await?;
        Ok(ID(row.id.to_string()))
    }

    /// Replaces a team's supervisors (active users of role SUPERVISOR or higher). ADMIN+.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn set_team_supervisors(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        user_ids: Vec<ID>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Team> {
        let team = parse_id(&team_id, "teamId")?;
        let users = parse_id_list(&user_ids, "userIds")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::set_supervisors(state(ctx)?, caller, &tenant, team, &users, request_id(ctx)).await?;
        team_answer(ctx, tenant, caller, row).await
    }

    /// Moves agents into a team. ADMIN+; a SUPERVISOR for a team they supervise and agents of
    /// their teams.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn add_team_members(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        agent_ids: Vec<ID>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Team> {
        let team = parse_id(&team_id, "teamId")?;
        let agents = parse_id_list(&agent_ids, "agentIds")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::add_members(state(ctx)?, caller, &tenant, team, &agents, request_id(ctx)).await?;
        team_answer(ctx, tenant, caller, row).await
    }

    /// Takes agents out of a team (they then have none). An agent not in the team:
    /// BAD_USER_INPUT naming it. ADMIN+; a SUPERVISOR for a team they supervise.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn remove_team_members(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        agent_ids: Vec<ID>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Team> {
        let team = parse_id(&team_id, "teamId")?;
        let agents = parse_id_list(&agent_ids, "agentIds")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let row = manage::remove_members(state(ctx)?, caller, &tenant, team, &agents, request_id(ctx)).await?;
        team_answer(ctx, tenant, caller, row).await
    }

    /// Adds a skill to the catalogue. SUPERVISOR+. A duplicate name: CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn create_skill(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Skill> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage_skills::create(
            state(ctx)?,
            principal(ctx)?,
            &tenant,
            &name,
            description.as_deref(),
            request_id(ctx),
        )
        .await?;
        Ok(row.into())
    }

    /// Renames a skill. SUPERVISOR+. A duplicate name: CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn rename_skill(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Skill> {
        let skill_id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row =
            manage_skills::rename(state(ctx)?, principal(ctx)?, &tenant, skill_id, &name, request_id(ctx)).await?;
        Ok(row.into())
    }

    /// Deletes a skill and every assignment of it. ADMIN+. Returns the deleted skill's id.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn delete_skill(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<ID> {
        let skill_id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage_skills::delete(state(ctx)?, principal(ctx)?, &tenant, skill_id, request_id(ctx)).await?;
        Ok(ID(row.id.to_string()))
    }

    /// Sets skill proficiencies (1–5) of agents, in bulk (up to 1,000 pairs), all or nothing.
    /// SUPERVISOR+ for agents in their scope.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn assign_skills(
        &self,
        ctx: &Context<'_>,
        assignments: Vec<SkillAssignmentInput>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<SkillAssignmentResult> {
        let parsed = self::assignments(&assignments)?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let changed = manage_skills::assign(state(ctx)?, principal(ctx)?, &tenant, &parsed, request_id(ctx)).await?;
        Ok(result(changed))
    }

    /// Removes skills from agents, in bulk, all or nothing. SUPERVISOR+ for agents in their
    /// scope.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn unassign_skills(
        &self,
        ctx: &Context<'_>,
        assignments: Vec<SkillAssignmentInput>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<SkillAssignmentResult> {
        let parsed = self::assignments(&assignments)?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let changed = manage_skills::unassign(state(ctx)?, principal(ctx)?, &tenant, &parsed, request_id(ctx)).await?;
        Ok(result(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn malformed_ids_in_assignments_are_named() {
        let input = vec![SkillAssignmentInput {
            agent_id: ID("nope".into()),
            skill_id: ID(uuid::Uuid::new_v4().to_string()),
            proficiency: 3,
        }];
        match assignments(&input) {
            Err(AppError::BadUserInput { fields, .. }) => {
                assert_eq!(
                    fields,
                    vec![FieldError::new("assignments[0].agentId", "not a valid id")]
                );
            }
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }
}
