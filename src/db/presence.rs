//! Agent presence and the live agent view: reason codes, the presence axis of the state log,
//! and the one query that reads agents as wallboards show them (state, since, current call).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{agents, presence_reason_codes};
use crate::error::AppResult;

/// One reason code of an organization.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct ReasonCodeRow {
    pub code: String,
    pub presence: String,
    pub label: String,
    pub active: bool,
}

pub async fn reason_codes(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Vec<ReasonCodeRow>> {
    Ok(presence_reason_codes::table
        .filter(presence_reason_codes::organization_id.eq(tenant.org_id()))
        .select((
            presence_reason_codes::code,
            presence_reason_codes::presence,
            presence_reason_codes::label,
            presence_reason_codes::active,
        ))
        .order(presence_reason_codes::code)
        .load(conn)
        .await?)
}

/// Creates or replaces a reason code; returns the row before (None when new).
pub async fn upsert_reason_code(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    row: &ReasonCodeRow,
) -> AppResult<Option<ReasonCodeRow>> {
    let before: Option<ReasonCodeRow> = presence_reason_codes::table
        .filter(presence_reason_codes::organization_id.eq(tenant.org_id()))
        .filter(presence_reason_codes::code.eq(&row.code))
        .select((
            presence_reason_codes::code,
            presence_reason_codes::presence,
            presence_reason_codes::label,
            presence_reason_codes::active,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    diesel::insert_into(presence_reason_codes::table)
        .values((
            presence_reason_codes::organization_id.eq(tenant.org_id()),
            presence_reason_codes::code.eq(&row.code),
            presence_reason_codes::presence.eq(&row.presence),
            presence_reason_codes::label.eq(&row.label),
            presence_reason_codes::active.eq(row.active),
        ))
        .on_conflict((presence_reason_codes::organization_id, presence_reason_codes::code))
        .do_update()
        .set((
            presence_reason_codes::presence.eq(&row.presence),
            presence_reason_codes::label.eq(&row.label),
            presence_reason_codes::active.eq(row.active),
        ))
        .execute(conn)
        .await?;
    Ok(before)
}

/// An agent's row as a presence change needs it (locked).
#[derive(Clone, Debug, Queryable)]
pub struct AgentPresenceRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub active: bool,
    pub presence: String,
    pub presence_reason: Option<String>,
    pub presence_since: DateTime<Utc>,
    pub routing_state: String,
}

/// Locks one agent of the tenant (`FOR NO KEY UPDATE`, the lock ingest takes too, so a presence
/// change and a call event on the same agent are serialized).
pub async fn lock_agent(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
) -> AppResult<Option<AgentPresenceRow>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq(agent_id))
        .select((
            agents::id,
            agents::user_id,
            agents::active,
            agents::presence,
            agents::presence_reason,
            agents::presence_since,
            agents::routing_state,
        ))
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?)
}

#[derive(QueryableByName)]
pub struct OpenInterval {
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
}

/// Removes the agent's open PRESENCE interval and returns it (the caller writes it again,
/// closed, through the rollup writer, so its time reaches the rollups).
pub async fn take_open_presence_interval(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
) -> AppResult<Option<OpenInterval>> {
    let mut rows: Vec<OpenInterval> = diesel::sql_query(
        "DELETE FROM agent_state_log
         WHERE organization_id = $1 AND agent_id = $2 AND axis = 'PRESENCE' AND ended_at IS NULL
         RETURNING state, reason, started_at",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<SqlUuid, _>(agent_id)
    .load(conn)
    .await?;
    Ok(rows.pop())
}

pub async fn set_presence(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_id: Uuid,
    presence: &str,
    reason: Option<&str>,
    since: DateTime<Utc>,
) -> AppResult<usize> {
    Ok(diesel::update(
        agents::table
            .filter(agents::organization_id.eq(tenant.org_id()))
            .filter(agents::id.eq(agent_id)),
    )
    .set((
        agents::presence.eq(presence),
        agents::presence_reason.eq(reason),
        agents::presence_since.eq(since),
    ))
    .execute(conn)
    .await?)
}

/// An agent as the live views show it, with the call it is on (ringing, talking or wrapping
/// up), if any.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct LiveAgentRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub team_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub team_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub presence: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub presence_reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub presence_since: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub routing_state: String,
    #[diesel(sql_type = Timestamptz)]
    pub routing_since: DateTime<Utc>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub call_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub call_external_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub call_direction: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub call_campaign_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub call_customer_number: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub call_offered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub call_answered_at: Option<DateTime<Utc>>,
}

/// Active agents of the tenant (all, or those of `agent_ids`), by name.
pub async fn live_agents(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    agent_ids: Option<&[Uuid]>,
) -> AppResult<Vec<LiveAgentRow>> {
    Ok(diesel::sql_query(
        "SELECT a.id, a.display_name, a.team_id, t.name AS team_name, a.presence, a.presence_reason,
                a.presence_since, a.routing_state, a.state_since AS routing_since,
                c.id AS call_id, c.external_id AS call_external_id, c.direction AS call_direction,
                c.campaign_id AS call_campaign_id, c.customer_number AS call_customer_number,
                c.offered_at AS call_offered_at, c.answered_at AS call_answered_at
         FROM agents a
         LEFT JOIN teams t ON t.organization_id = a.organization_id AND t.id = a.team_id
         LEFT JOIN LATERAL (
             SELECT i.id, i.external_id, i.direction, i.campaign_id, i.customer_number, i.offered_at, i.answered_at
             FROM interactions i
             WHERE i.organization_id = a.organization_id AND i.agent_id = a.id
               AND a.routing_state <> 'IDLE' AND i.wrap_ended_at IS NULL
             ORDER BY i.offered_at DESC
             LIMIT 1
         ) c ON true
         WHERE a.organization_id = $1 AND a.active AND ($2::uuid[] IS NULL OR a.id = ANY($2))
         ORDER BY a.display_name, a.id",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Nullable<Array<SqlUuid>>, _>(agent_ids)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    waiting: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

/// Calls offered and neither answered nor ended yet, within the scope (campaigns, agents —
/// a call ringing an agent — and direction), and the offer time of the oldest.
pub async fn waiting_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    campaign_ids: Option<&[Uuid]>,
    agent_ids: Option<&[Uuid]>,
    direction: Option<&str>,
) -> AppResult<(i64, Option<DateTime<Utc>>)> {
    let row: Waiting = diesel::sql_query(
        "SELECT count(*) AS waiting, min(offered_at) AS oldest
         FROM interactions
         WHERE organization_id = $1 AND outcome = 'IN_PROGRESS' AND answered_at IS NULL AND ended_at IS NULL
           AND ($2::uuid[] IS NULL OR campaign_id = ANY($2))
           AND ($3::uuid[] IS NULL OR agent_id = ANY($3))
           AND ($4::text IS NULL OR direction = $4)
           -- Calls older than a day are stale data (a lost end event), not a caller waiting.
           AND offered_at > now() - interval '1 day'",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Nullable<Array<SqlUuid>>, _>(campaign_ids)
    .bind::<Nullable<Array<SqlUuid>>, _>(agent_ids)
    .bind::<Nullable<Text>, _>(direction)
    .get_result(conn)
    .await?;
    Ok((row.waiting, row.oldest))
}
