//! Agents as the management surface reads and writes them: the filtered, paged listing, the
//! profile row, the batched reads behind the GraphQL DataLoaders (teams, skills, supervisors,
//! members — one statement per batch of keys, never one per agent), the profile writes, and
//! the two fact reads an agent's activity timeline merges (state log and calls).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{agent_skills, agent_state_log, agents, interactions, skills};
use crate::error::{AppError, AppResult};

/// An agent's profile row.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = agents, check_for_backend(diesel::pg::Pg))]
pub struct AgentRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub extension: Option<String>,
    pub team_id: Option<Uuid>,
    pub presence: String,
    pub presence_reason: Option<String>,
    pub presence_since: DateTime<Utc>,
    pub routing_state: String,
    /// When the routing state began.
    pub state_since: DateTime<Utc>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// Which agents a caller may list at all (the rules live in `management::agents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    All,
    /// Agents currently in one of these teams.
    Teams(Vec<Uuid>),
    /// One agent (none when the caller has no agent profile).
    One(Option<Uuid>),
}

/// What `agents` lists can be ordered by; ties are broken by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentSort {
    Name,
    Extension,
    CreatedAt,
}

/// The listing's filters, combined with AND; a list filter matches any of its values.
#[derive(Clone, Debug)]
pub struct AgentListFilter {
    pub visible: Visible,
    pub team_ids: Option<Vec<Uuid>>,
    /// Agents holding at least one of these skills.
    pub skill_ids: Option<Vec<Uuid>>,
    pub presence: Option<Vec<String>>,
    pub routing_state: Option<Vec<String>>,
    /// Case-insensitive substring of the display name or the extension.
    pub search: Option<String>,
    pub include_inactive: bool,
}

/// `%`, `_` and `\` are literal in a search term.
fn like_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 2);
    escaped.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

fn filtered<'a>(tenant: &Tenant, filter: &'a AgentListFilter) -> agents::BoxedQuery<'a, Pg> {
    let mut query = agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .into_boxed();
    match &filter.visible {
        Visible::All => {}
        Visible::Teams(ids) => query = query.filter(agents::team_id.eq_any(ids.clone())),
        Visible::One(Some(id)) => query = query.filter(agents::id.eq(*id)),
        // The nil id names no agent: an empty listing.
        Visible::One(None) => query = query.filter(agents::id.eq(Uuid::nil())),
    }
    if !filter.include_inactive {
        query = query.filter(agents::active.eq(true));
    }
    if let Some(ids) = &filter.team_ids {
        query = query.filter(agents::team_id.eq_any(ids.clone()));
    }
    if let Some(ids) = &filter.skill_ids {
        query = query.filter(
            agents::id.eq_any(
                agent_skills::table
                    .filter(agent_skills::organization_id.eq(tenant.org_id()))
                    .filter(agent_skills::skill_id.eq_any(ids.clone()))
                    .select(agent_skills::agent_id),
            ),
        );
    }
    if let Some(values) = &filter.presence {
        query = query.filter(agents::presence.eq_any(values.clone()));
    }
    if let Some(values) = &filter.routing_state {
        query = query.filter(agents::routing_state.eq_any(values.clone()));
    }
    if let Some(term) = filter.search.as_deref() {
        let pattern = like_pattern(term);
        query = query.filter(
            agents::display_name
                .ilike(pattern.clone())
                .or(agents::extension.ilike(pattern)),
        );
    }
    query
}

/// One page of the listing: `limit` rows after skipping `offset`, in `sort` order.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    filter: &AgentListFilter,
    sort: AgentSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> AppResult<Vec<AgentRow>> {
    let mut query = filtered(tenant, filter).select(AgentRow::as_select());
    query = match (sort, descending) {
        (AgentSort::Name, false) => query.order((agents::display_name.asc(), agents::id.asc())),
        (AgentSort::Name, true) => query.order((agents::display_name.desc(), agents::id.desc())),
        (AgentSort::Extension, false) => query.order((agents::extension.asc().nulls_last(), agents::id.asc())),
        (AgentSort::Extension, true) => query.order((agents::extension.desc().nulls_last(), agents::id.desc())),
        (AgentSort::CreatedAt, false) => query.order((agents::created_at.asc(), agents::id.asc())),
        (AgentSort::CreatedAt, true) => query.order((agents::created_at.desc(), agents::id.desc())),
    };
    Ok(query.offset(offset).limit(limit).load(conn).await?)
}

pub async fn count(conn: &mut AsyncPgConnection, tenant: &Tenant, filter: &AgentListFilter) -> AppResult<i64> {
    Ok(filtered(tenant, filter).count().get_result(conn).await?)
}

fn agent_not_found() -> AppError {
    AppError::NotFound("agent not found".into())
}

/// One agent of the tenant; another tenant's id is NOT_FOUND.
pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, agent_id: Uuid) -> AppResult<AgentRow> {
    agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq(agent_id))
        .select(AgentRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(agent_not_found)
}

/// Locks agents of the tenant for a change (`FOR NO KEY UPDATE`, the lock ingest and presence
/// changes take, so they serialize with it). Returns the rows found, by id.
pub async fn lock(conn: &mut AsyncPgConnection, tenant: &Tenant, agent_ids: &[Uuid]) -> AppResult<Vec<AgentRow>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq_any(agent_ids))
        .select(AgentRow::as_select())
        .order(agents::id)
        .for_no_key_update()
        .load(conn)
        .await?)
}

/// Agents of the tenant by id, for the DataLoaders.
pub async fn by_ids(conn: &mut AsyncPgConnection, tenant: &Tenant, agent_ids: &[Uuid]) -> AppResult<Vec<AgentRow>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq_any(agent_ids))
        .select(AgentRow::as_select())
        .load(conn)
        .await?)
}

/// The agents of each of `team_ids` (active or not), by name.
pub async fn members_of_teams(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    team_ids: &[Uuid],
) -> AppResult<Vec<AgentRow>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::team_id.eq_any(team_ids))
        .select(AgentRow::as_select())
        .order((agents::display_name, agents::id))
        .load(conn)
        .await?)
}

/// The agent linked to a user, if any.
pub async fn of_user(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<Option<AgentRow>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::user_id.eq(user_id))
        .select(AgentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// An extension or a user link already taken answers CONFLICT naming what collided.
fn unique_violation(e: diesel::result::Error) -> AppError {
    match &e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, info) => {
            if info.constraint_name().is_some_and(|c| c.contains("user_id")) {
                AppError::Conflict("that user already has an agent profile".into())
            } else {
                AppError::Conflict("another agent of the organization has this extension".into())
            }
        }
        _ => e.into(),
    }
}

/// The profile fields a create or update writes.
#[derive(Clone, Debug)]
pub struct AgentProfile<'a> {
    pub user_id: Option<Uuid>,
    pub display_name: &'a str,
    pub extension: Option<&'a str>,
    pub team_id: Option<Uuid>,
}

/// Creates an agent, OFFLINE and IDLE since now.
pub async fn insert(conn: &mut AsyncPgConnection, tenant: &Tenant, profile: &AgentProfile<'_>) -> AppResult<AgentRow> {
    diesel::insert_into(agents::table)
        .values((
            agents::organization_id.eq(tenant.org_id()),
            agents::user_id.eq(profile.user_id),
            agents::display_name.eq(profile.display_name),
            agents::extension.eq(profile.extension),
            agents::team_id.eq(profile.team_id),
        ))
        .returning(AgentRow::as_returning())
        .get_result(conn)
        .await
        .map_err(unique_violation)
}

/// Writes the profile fields of one agent.
pub async fn update_profile(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    profile: &AgentProfile<'_>,
) -> AppResult<AgentRow> {
    diesel::update(
        agents::table
            .filter(agents::organization_id.eq(tenant.org_id()))
            .filter(agents::id.eq(agent_id)),
    )
    .set((
        agents::user_id.eq(profile.user_id),
        agents::display_name.eq(profile.display_name),
        agents::extension.eq(profile.extension),
        agents::team_id.eq(profile.team_id),
    ))
    .returning(AgentRow::as_returning())
    .get_result(conn)
    .await
    .optional()
    .map_err(unique_violation)?
    .ok_or_else(agent_not_found)
}

pub async fn set_active(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    active: bool,
) -> AppResult<AgentRow> {
    diesel::update(
        agents::table
            .filter(agents::organization_id.eq(tenant.org_id()))
            .filter(agents::id.eq(agent_id)),
    )
    .set(agents::active.eq(active))
    .returning(AgentRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(agent_not_found)
}

/// Moves agents to `team_id` (None: no team); returns how many rows changed.
pub async fn set_team(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_ids: &[Uuid],
    team_id: Option<Uuid>,
) -> AppResult<usize> {
    Ok(diesel::update(
        agents::table
            .filter(agents::organization_id.eq(tenant.org_id()))
            .filter(agents::id.eq_any(agent_ids)),
    )
    .set(agents::team_id.eq(team_id))
    .execute(conn)
    .await?)
}

/// One skill of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct AgentSkillRow {
    pub agent_id: Uuid,
    pub skill_id: Uuid,
    pub skill_name: String,
    pub proficiency: i16,
}

/// The skills of each of `agent_ids`, by skill name.
pub async fn skills_of_agents(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_ids: &[Uuid],
) -> AppResult<Vec<AgentSkillRow>> {
    Ok(agent_skills::table
        .inner_join(
            skills::table.on(skills::id
                .eq(agent_skills::skill_id)
                .and(skills::organization_id.eq(agent_skills::organization_id))),
        )
        .filter(agent_skills::organization_id.eq(tenant.org_id()))
        .filter(agent_skills::agent_id.eq_any(agent_ids))
        .select((
            agent_skills::agent_id,
            agent_skills::skill_id,
            skills::name,
            agent_skills::proficiency,
        ))
        .order((skills::name, agent_skills::agent_id))
        .load(conn)
        .await?)
}

/// Sets (inserts or replaces) skill proficiencies; returns the rows before for the audit
/// record, as (agent, skill, proficiency).
pub async fn upsert_skills(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    rows: &[(Uuid, Uuid, i16)],
) -> AppResult<Vec<(Uuid, Uuid, i16)>> {
    let agent_ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let skill_ids: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    let existing: Vec<(Uuid, Uuid, i16)> = agent_skills::table
        .filter(agent_skills::organization_id.eq(tenant.org_id()))
        .filter(agent_skills::agent_id.eq_any(&agent_ids))
        .filter(agent_skills::skill_id.eq_any(&skill_ids))
        .select((
            agent_skills::agent_id,
            agent_skills::skill_id,
            agent_skills::proficiency,
        ))
        .for_update()
        .load(conn)
        .await?;
    let before: Vec<(Uuid, Uuid, i16)> = existing
        .into_iter()
        .filter(|(a, s, _)| rows.iter().any(|(ra, rs, _)| ra == a && rs == s))
        .collect();
    let values: Vec<_> = rows
        .iter()
        .map(|&(agent_id, skill_id, proficiency)| {
            (
                agent_skills::organization_id.eq(tenant.org_id()),
                agent_skills::agent_id.eq(agent_id),
                agent_skills::skill_id.eq(skill_id),
                agent_skills::proficiency.eq(proficiency),
            )
        })
        .collect();
    for chunk in values.chunks(crate::db::contact_centre::INSERT_CHUNK_ROWS) {
        diesel::insert_into(agent_skills::table)
            .values(chunk.to_vec())
            .on_conflict((agent_skills::agent_id, agent_skills::skill_id))
            .do_update()
            .set(agent_skills::proficiency.eq(diesel::upsert::excluded(agent_skills::proficiency)))
            .execute(conn)
            .await?;
    }
    Ok(before)
}

/// Removes skills from agents; returns the (agent, skill) pairs that were removed.
pub async fn remove_skills(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    pairs: &[(Uuid, Uuid)],
) -> AppResult<Vec<(Uuid, Uuid)>> {
    let mut removed = Vec::new();
    for &(agent_id, skill_id) in pairs {
        let n = diesel::delete(
            agent_skills::table
                .filter(agent_skills::organization_id.eq(tenant.org_id()))
                .filter(agent_skills::agent_id.eq(agent_id))
                .filter(agent_skills::skill_id.eq(skill_id)),
        )
        .execute(conn)
        .await?;
        if n > 0 {
            removed.push((agent_id, skill_id));
        }
    }
    Ok(removed)
}

/// One interval of the agent's state log that overlaps a window.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct StateIntervalRow {
    pub axis: String,
    pub state: String,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The agent's state intervals overlapping `from..to` (both axes), by start; at most `limit`.
pub async fn state_intervals(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<StateIntervalRow>> {
    Ok(agent_state_log::table
        .filter(agent_state_log::organization_id.eq(tenant.org_id()))
        .filter(agent_state_log::agent_id.eq(agent_id))
        .filter(agent_state_log::started_at.lt(to))
        .filter(
            agent_state_log::ended_at
                .is_null()
                .or(agent_state_log::ended_at.gt(from)),
        )
        .select((
            agent_state_log::axis,
            agent_state_log::state,
            agent_state_log::reason,
            agent_state_log::started_at,
            agent_state_log::ended_at,
        ))
        .order((agent_state_log::started_at, agent_state_log::id))
        .limit(limit)
        .load(conn)
        .await?)
}

/// A call of the agent as the timeline shows it (no customer number: the timeline is read by
/// roles that see numbers masked; `interaction(id)` masks per role).
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct AgentCallRow {
    pub id: Uuid,
    pub external_id: String,
    pub direction: String,
    pub campaign_id: Option<Uuid>,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub wrap_ended_at: Option<DateTime<Utc>>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub outcome: String,
    pub disposition_id: Option<Uuid>,
}

/// The agent's calls offered in `from..to`, by offer time; at most `limit`.
pub async fn calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<AgentCallRow>> {
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::agent_id.eq(agent_id))
        .filter(interactions::offered_at.ge(from))
        .filter(interactions::offered_at.lt(to))
        .select((
            interactions::id,
            interactions::external_id,
            interactions::direction,
            interactions::campaign_id,
            interactions::offered_at,
            interactions::answered_at,
            interactions::ended_at,
            interactions::wrap_ended_at,
            interactions::talk_ms,
            interactions::hold_ms,
            interactions::wrap_ms,
            interactions::outcome,
            interactions::disposition_id,
        ))
        .order((interactions::offered_at, interactions::id))
        .limit(limit)
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn search_terms_are_literal() {
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(like_pattern("Ann"), "%Ann%");
    }
}
