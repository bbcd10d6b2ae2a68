//! Teams, their supervisors, and the skills catalogue. Names are unique per organization: a
//! duplicate answers CONFLICT (as a duplicate e-mail address does for users).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::{Role, Tenant};
use crate::db::schema::{agents, skills, team_supervisors, teams, users};
use crate::error::{AppError, AppResult};

#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = teams, check_for_backend(diesel::pg::Pg))]
pub struct TeamRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = skills, check_for_backend(diesel::pg::Pg))]
pub struct SkillRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn duplicate_name(what: &'static str) -> impl Fn(diesel::result::Error) -> AppError {
    move |e| match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            AppError::Conflict(format!("a {what} with this name already exists"))
        }
        other => other.into(),
    }
}

pub fn team_not_found() -> AppError {
    AppError::NotFound("team not found".into())
}

pub fn skill_not_found() -> AppError {
    AppError::NotFound("skill not found".into())
}

/// Every team of the tenant, by name.
pub async fn list_teams(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Vec<TeamRow>> {
    Ok(teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .select(TeamRow::as_select())
        .order((teams::name, teams::id))
        .load(conn)
        .await?)
}

/// Teams of the tenant by id (the DataLoaders' read); other tenants' ids are simply absent.
pub async fn teams_by_ids(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<Vec<TeamRow>> {
    Ok(teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .filter(teams::id.eq_any(ids))
        .select(TeamRow::as_select())
        .load(conn)
        .await?)
}

/// Locks one team of the tenant for a change.
pub async fn lock_team(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<TeamRow> {
    teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .filter(teams::id.eq(id))
        .select(TeamRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(team_not_found)
}

pub async fn insert_team(conn: &mut AsyncPgConnection, tenant: &Tenant, name: &str) -> AppResult<TeamRow> {
    diesel::insert_into(teams::table)
        .values((teams::organization_id.eq(tenant.org_id()), teams::name.eq(name)))
        .returning(TeamRow::as_returning())
        .get_result(conn)
        .await
        .map_err(duplicate_name("team"))
}

pub async fn rename_team(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid, name: &str) -> AppResult<TeamRow> {
    diesel::update(
        teams::table
            .filter(teams::organization_id.eq(tenant.org_id()))
            .filter(teams::id.eq(id)),
    )
    .set(teams::name.eq(name))
    .returning(TeamRow::as_returning())
    .get_result(conn)
    .await
    .optional()
    .map_err(duplicate_name("team"))?
    .ok_or_else(team_not_found)
}

pub async fn delete_team(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<usize> {
    Ok(diesel::delete(
        teams::table
            .filter(teams::organization_id.eq(tenant.org_id()))
            .filter(teams::id.eq(id)),
    )
    .execute(conn)
    .await?)
}

/// The ids of every agent (active or not) in the team.
pub async fn member_ids(conn: &mut AsyncPgConnection, tenant: &Tenant, team_id: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::team_id.eq(team_id))
        .select(agents::id)
        .order(agents::id)
        .load(conn)
        .await?)
}

/// A supervisor of a team, as the API shows them.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct SupervisorRow {
    pub team_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub email: String,
    pub role: Role,
}

/// The supervisors of each of `team_ids`, by name.
pub async fn supervisors_of_teams(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    team_ids: &[Uuid],
) -> AppResult<Vec<SupervisorRow>> {
    Ok(team_supervisors::table
        .inner_join(
            users::table.on(users::id
                .eq(team_supervisors::user_id)
                .and(users::organization_id.eq(team_supervisors::organization_id))),
        )
        .filter(team_supervisors::organization_id.eq(tenant.org_id()))
        .filter(team_supervisors::team_id.eq_any(team_ids))
        .select((
            team_supervisors::team_id,
            users::id,
            users::display_name,
            users::email,
            users::role,
        ))
        .order((users::display_name, users::id))
        .load(conn)
        .await?)
}

/// The teams a user supervises.
pub async fn supervised_by(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(team_supervisors::table
        .filter(team_supervisors::organization_id.eq(tenant.org_id()))
        .filter(team_supervisors::user_id.eq(user_id))
        .select(team_supervisors::team_id)
        .order(team_supervisors::team_id)
        .load(conn)
        .await?)
}

/// Replaces a team's supervisors; returns the user ids before.
pub async fn replace_supervisors(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    team_id: Uuid,
    user_ids: &[Uuid],
) -> AppResult<Vec<Uuid>> {
    let before: Vec<Uuid> = diesel::delete(
        team_supervisors::table
            .filter(team_supervisors::organization_id.eq(tenant.org_id()))
            .filter(team_supervisors::team_id.eq(team_id)),
    )
    .returning(team_supervisors::user_id)
    .get_results(conn)
    .await?;
    let values: Vec<_> = user_ids
        .iter()
        .map(|user_id| {
            (
                team_supervisors::organization_id.eq(tenant.org_id()),
                team_supervisors::team_id.eq(team_id),
                team_supervisors::user_id.eq(*user_id),
            )
        })
        .collect();
    if !values.is_empty() {
        diesel::insert_into(team_supervisors::table)
            .values(values)
            .execute(conn)
            .await?;
    }
    Ok(before)
}

/// Users of the tenant by id: (id, role, active).
pub async fn users_by_ids(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    ids: &[Uuid],
) -> AppResult<Vec<(Uuid, Role, bool)>> {
    Ok(users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .filter(users::id.eq_any(ids))
        .select((users::id, users::role, users::active))
        .load(conn)
        .await?)
}

/// Every skill of the tenant, by name.
pub async fn list_skills(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Vec<SkillRow>> {
    Ok(skills::table
        .filter(skills::organization_id.eq(tenant.org_id()))
        .select(SkillRow::as_select())
        .order((skills::name, skills::id))
        .load(conn)
        .await?)
}

/// Skills of the tenant by id; other tenants' ids are absent.
pub async fn skills_by_ids(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<Vec<SkillRow>> {
    Ok(skills::table
        .filter(skills::organization_id.eq(tenant.org_id()))
        .filter(skills::id.eq_any(ids))
        .select(SkillRow::as_select())
        .load(conn)
        .await?)
}

pub async fn insert_skill(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    name: &str,
    description: Option<&str>,
) -> AppResult<SkillRow> {
    diesel::insert_into(skills::table)
        .values((
            skills::organization_id.eq(tenant.org_id()),
            skills::name.eq(name),
            skills::description.eq(description),
        ))
        .returning(SkillRow::as_returning())
        .get_result(conn)
        .await
        .map_err(duplicate_name("skill"))
}

pub async fn lock_skill(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<SkillRow> {
    skills::table
        .filter(skills::organization_id.eq(tenant.org_id()))
        .filter(skills::id.eq(id))
        .select(SkillRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(skill_not_found)
}

pub async fn rename_skill(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid, name: &str) -> AppResult<SkillRow> {
    diesel::update(
        skills::table
            .filter(skills::organization_id.eq(tenant.org_id()))
            .filter(skills::id.eq(id)),
    )
    .set(skills::name.eq(name))
    .returning(SkillRow::as_returning())
    .get_result(conn)
    .await
    .optional()
    .map_err(duplicate_name("skill"))?
    .ok_or_else(skill_not_found)
}

/// Deletes a skill (its assignments go with it, by the foreign key's cascade); returns the
/// agents that held it.
pub async fn delete_skill(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Vec<Uuid>> {
    let holders: Vec<Uuid> = crate::db::schema::agent_skills::table
        .filter(crate::db::schema::agent_skills::organization_id.eq(tenant.org_id()))
        .filter(crate::db::schema::agent_skills::skill_id.eq(id))
        .select(crate::db::schema::agent_skills::agent_id)
        .load(conn)
        .await?;
    diesel::delete(
        skills::table
            .filter(skills::organization_id.eq(tenant.org_id()))
            .filter(skills::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(holders)
}

/// Makes `user_id` a supervisor of the team named `team_name`, if both exist and it is not one
/// already (the demo seed's idempotent step). Returns whether a row was added.
pub async fn ensure_supervisor_by_team_name(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    team_name: &str,
    user_id: Uuid,
) -> AppResult<bool> {
    use diesel::sql_types::{Text, Uuid as SqlUuid};
    let added = diesel::sql_query(
        "INSERT INTO team_supervisors (organization_id, team_id, user_id)
         SELECT t.organization_id, t.id, $3 FROM teams t WHERE t.organization_id = $1 AND t.name = $2
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Text, _>(team_name)
    .bind::<SqlUuid, _>(user_id)
    .execute(conn)
    .await?;
    Ok(added > 0)
}
