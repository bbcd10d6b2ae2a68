//! Coaching sessions and the calls they talk about.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{coaching_session_interactions as links, coaching_sessions as sessions, interactions};
use crate::error::{AppError, AppResult};

fn not_found() -> AppError {
    AppError::NotFound("coaching session not found".into())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct CoachingRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub coach_user_id: Option<Uuid>,
    pub topic: String,
    pub notes: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub follow_up_on: Option<NaiveDate>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Which sessions to list; filters combine with AND. `agent_ids` None = every agent.
#[derive(Debug, Clone, Default)]
pub struct CoachingQuery {
    pub agent_ids: Option<Vec<Uuid>>,
    /// Some(true): completed only; Some(false): not completed only.
    pub completed: Option<bool>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    coach_user_id: Uuid,
    topic: &str,
    notes: Option<&str>,
    scheduled_at: DateTime<Utc>,
) -> AppResult<CoachingRow> {
    Ok(diesel::insert_into(sessions::table)
        .values((
            sessions::organization_id.eq(tenant.org_id()),
            sessions::agent_id.eq(agent_id),
            sessions::coach_user_id.eq(coach_user_id),
            sessions::topic.eq(topic),
            sessions::notes.eq(notes),
            sessions::scheduled_at.eq(scheduled_at),
        ))
        .returning(CoachingRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<CoachingRow> {
    sessions::table
        .filter(sessions::organization_id.eq(tenant.org_id()))
        .filter(sessions::id.eq(id))
        .select(CoachingRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<CoachingRow> {
    sessions::table
        .filter(sessions::organization_id.eq(tenant.org_id()))
        .filter(sessions::id.eq(id))
        .select(CoachingRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The changes of an update; None keeps the stored value.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = sessions)]
pub struct CoachingChanges {
    pub topic: Option<String>,
    /// Some(None) clears the notes.
    pub notes: Option<Option<String>>,
    pub scheduled_at: Option<DateTime<Utc>>,
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    changes: &CoachingChanges,
) -> AppResult<CoachingRow> {
    diesel::update(
        sessions::table
            .filter(sessions::organization_id.eq(tenant.org_id()))
            .filter(sessions::id.eq(id)),
    )
    .set((changes, sessions::updated_at.eq(diesel::dsl::now)))
    .returning(CoachingRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

pub async fn complete(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    outcome: &str,
    follow_up_on: Option<NaiveDate>,
) -> AppResult<CoachingRow> {
    diesel::update(
        sessions::table
            .filter(sessions::organization_id.eq(tenant.org_id()))
            .filter(sessions::id.eq(id)),
    )
    .set((
        sessions::completed_at.eq(diesel::dsl::now),
        sessions::outcome.eq(outcome),
        sessions::follow_up_on.eq(follow_up_on),
        sessions::updated_at.eq(diesel::dsl::now),
    ))
    .returning(CoachingRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

pub async fn acknowledge(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<CoachingRow> {
    diesel::update(
        sessions::table
            .filter(sessions::organization_id.eq(tenant.org_id()))
            .filter(sessions::id.eq(id)),
    )
    .set((
        sessions::acknowledged_at.eq(diesel::dsl::now),
        sessions::updated_at.eq(diesel::dsl::now),
    ))
    .returning(CoachingRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

/// Replaces the calls linked to a session.
pub async fn set_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    session_id: Uuid,
    interaction_ids: &[Uuid],
) -> AppResult<()> {
    diesel::delete(
        links::table
            .filter(links::organization_id.eq(tenant.org_id()))
            .filter(links::session_id.eq(session_id)),
    )
    .execute(conn)
    .await?;
    if interaction_ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = interaction_ids
        .iter()
        .map(|id| {
            (
                links::organization_id.eq(tenant.org_id()),
                links::session_id.eq(session_id),
                links::interaction_id.eq(*id),
            )
        })
        .collect();
    diesel::insert_into(links::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The linked calls of each session (one query for a whole page).
pub async fn interaction_ids(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    session_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<Uuid>>> {
    let rows: Vec<(Uuid, Uuid)> = links::table
        .inner_join(interactions::table.on(interactions::id.eq(links::interaction_id)))
        .filter(links::organization_id.eq(tenant.org_id()))
        .filter(links::session_id.eq_any(session_ids))
        .order((
            links::session_id,
            interactions::offered_at.asc(),
            interactions::id.asc(),
        ))
        .select((links::session_id, links::interaction_id))
        .load(conn)
        .await?;
    let mut map: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (session, interaction) in rows {
        map.entry(session).or_default().push(interaction);
    }
    Ok(map)
}

/// Which of `ids` are calls of the tenant.
pub async fn existing_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    ids: &[Uuid],
) -> AppResult<Vec<Uuid>> {
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::id.eq_any(ids))
        .select(interactions::id)
        .load(conn)
        .await?)
}

fn filtered<'a>(tenant: &Tenant, query: &CoachingQuery) -> sessions::BoxedQuery<'a, diesel::pg::Pg> {
    let mut q = sessions::table
        .filter(sessions::organization_id.eq(tenant.org_id()))
        .into_boxed();
    if let Some(agent_ids) = &query.agent_ids {
        q = q.filter(sessions::agent_id.eq_any(agent_ids.clone()));
    }
    match query.completed {
        Some(true) => q = q.filter(sessions::completed_at.is_not_null()),
        Some(false) => q = q.filter(sessions::completed_at.is_null()),
        None => {}
    }
    q
}

/// One page in (scheduled_at, id) order, newest first, after the keyset `after`; `limit + 1`
/// rows so the caller knows whether another page follows.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &CoachingQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<CoachingRow>> {
    let mut q = filtered(tenant, query);
    if let Some((at, id)) = after {
        q = q.filter(
            sessions::scheduled_at
                .lt(at)
                .or(sessions::scheduled_at.eq(at).and(sessions::id.lt(id))),
        );
    }
    Ok(q.select(CoachingRow::as_select())
        .order((sessions::scheduled_at.desc(), sessions::id.desc()))
        .limit(limit + 1)
        .load(conn)
        .await?)
}

pub async fn count(conn: &mut AsyncPgConnection, tenant: &Tenant, query: &CoachingQuery) -> AppResult<i64> {
    Ok(filtered(tenant, query).count().get_result(conn).await?)
}

/// Seeding: whether an agent already has a session on this topic (keeps the demo idempotent).
pub async fn exists_for_seed(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    topic: &str,
) -> AppResult<bool> {
    let found: Option<Uuid> = sessions::table
        .filter(sessions::organization_id.eq(tenant.org_id()))
        .filter(sessions::agent_id.eq(agent_id))
        .filter(sessions::topic.eq(topic))
        .select(sessions::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Seeding: the latest answered calls of an agent, newest first.
pub async fn recent_answered_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    limit: i64,
) -> AppResult<Vec<Uuid>> {
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::agent_id.eq(agent_id))
        .filter(interactions::answered_at.is_not_null())
        .order(interactions::offered_at.desc())
        .select(interactions::id)
        .limit(limit)
        .load(conn)
        .await?)
}
