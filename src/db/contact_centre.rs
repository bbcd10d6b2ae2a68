//! The contact-centre data: teams, skills, agents, campaigns, dispositions, and the two fact
//! tables (interactions and the agent state log).
//!
//! Callers never pass an organization id: every write stamps `organization_id` from the
//! [`Tenant`], so a caller cannot write into another tenant. The bulk inserts take plain
//! row descriptions so that any generator (the demo seeder, a KPI test-data generator) can
//! reuse them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{agent_skills, agent_state_log, agents, campaigns, dispositions, skills, teams};
use crate::domain::{AgentState, CampaignStatus, DialMode, Direction, Presence, RoutingState};
use crate::error::AppResult;

/// Rows per multi-row INSERT. The widest row written here has 18 columns, so a chunk stays far
/// below PostgreSQL's limit of 65,535 bind parameters per statement.
pub const INSERT_CHUNK_ROWS: usize = 1_000;

/// Whether the organization has any team: the demo seeder's "already seeded" marker.
pub async fn has_any_team(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        teams::table.filter(teams::organization_id.eq(tenant.org_id())),
    ))
    .get_result(conn)
    .await?)
}

pub async fn insert_team(conn: &mut AsyncPgConnection, tenant: &Tenant, name: &str) -> AppResult<Uuid> {
    Ok(diesel::insert_into(teams::table)
        .values((teams::organization_id.eq(tenant.org_id()), teams::name.eq(name)))
        .returning(teams::id)
        .get_result(conn)
        .await?)
}

pub async fn insert_skill(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    name: &str,
    description: Option<&str>,
) -> AppResult<Uuid> {
    Ok(diesel::insert_into(skills::table)
        .values((
            skills::organization_id.eq(tenant.org_id()),
            skills::name.eq(name),
            skills::description.eq(description),
        ))
        .returning(skills::id)
        .get_result(conn)
        .await?)
}

/// An agent to create, with its current state (`state_since` is when that state began).
#[derive(Clone, Debug)]
pub struct NewAgent<'a> {
    pub user_id: Option<Uuid>,
    pub display_name: &'a str,
    pub extension: Option<&'a str>,
    pub team_id: Option<Uuid>,
    pub presence: Presence,
    pub presence_reason: Option<&'a str>,
    pub routing_state: RoutingState,
    pub state_since: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = agents)]
struct AgentRow<'a> {
    organization_id: Uuid,
    user_id: Option<Uuid>,
    display_name: &'a str,
    extension: Option<&'a str>,
    team_id: Option<Uuid>,
    presence: &'static str,
    presence_reason: Option<&'a str>,
    routing_state: &'static str,
    state_since: DateTime<Utc>,
}

pub async fn insert_agent(conn: &mut AsyncPgConnection, tenant: &Tenant, agent: &NewAgent<'_>) -> AppResult<Uuid> {
    let row = AgentRow {
        organization_id: tenant.org_id(),
        user_id: agent.user_id,
        display_name: agent.display_name,
        extension: agent.extension,
        team_id: agent.team_id,
        presence: agent.presence.as_str(),
        presence_reason: agent.presence_reason,
        routing_state: agent.routing_state.as_str(),
        state_since: agent.state_since,
    };
    Ok(diesel::insert_into(agents::table)
        .values(&row)
        .returning(agents::id)
        .get_result(conn)
        .await?)
}

/// A skill of an agent; `proficiency` is 1 (novice) to 5 (expert).
#[derive(Clone, Copy, Debug)]
pub struct NewAgentSkill {
    pub agent_id: Uuid,
    pub skill_id: Uuid,
    pub proficiency: i16,
}

#[derive(Insertable)]
#[diesel(table_name = agent_skills)]
struct AgentSkillRow {
    organization_id: Uuid,
    agent_id: Uuid,
    skill_id: Uuid,
    proficiency: i16,
}

/// Inserts agent skills; returns how many rows were written.
pub async fn insert_agent_skills(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    rows: &[NewAgentSkill],
) -> AppResult<usize> {
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
        let values: Vec<AgentSkillRow> = chunk
            .iter()
            .map(|s| AgentSkillRow {
                organization_id: tenant.org_id(),
                agent_id: s.agent_id,
                skill_id: s.skill_id,
                proficiency: s.proficiency,
            })
            .collect();
        inserted += diesel::insert_into(agent_skills::table)
            .values(&values)
            .execute(conn)
            .await?;
    }
    Ok(inserted)
}

/// A campaign to create. The service-level and abandon fields override the organization's
/// business settings; `None` keeps the organization's value.
#[derive(Clone, Debug)]
pub struct NewCampaign<'a> {
    pub name: &'a str,
    pub direction: Direction,
    pub dial_mode: Option<DialMode>,
    pub status: CampaignStatus,
    pub service_level_threshold_seconds: Option<i32>,
    pub service_level_target_percent: Option<f64>,
    pub max_abandon_rate_percent: Option<f64>,
}

#[derive(Insertable)]
#[diesel(table_name = campaigns)]
struct CampaignRow<'a> {
    organization_id: Uuid,
    name: &'a str,
    direction: &'static str,
    dial_mode: Option<&'static str>,
    status: &'static str,
    service_level_threshold_seconds: Option<i32>,
    service_level_target_percent: Option<f64>,
    max_abandon_rate_percent: Option<f64>,
}

pub async fn insert_campaign(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    campaign: &NewCampaign<'_>,
) -> AppResult<Uuid> {
    let row = CampaignRow {
        organization_id: tenant.org_id(),
        name: campaign.name,
        direction: campaign.direction.as_str(),
        dial_mode: campaign.dial_mode.map(DialMode::as_str),
        status: campaign.status.as_str(),
        service_level_threshold_seconds: campaign.service_level_threshold_seconds,
        service_level_target_percent: campaign.service_level_target_percent,
        max_abandon_rate_percent: campaign.max_abandon_rate_percent,
    };
    Ok(diesel::insert_into(campaigns::table)
        .values(&row)
        .returning(campaigns::id)
        .get_result(conn)
        .await?)
}

/// A disposition (wrap-up code). The flags drive the metrics and must satisfy the table's
/// CHECKs: `contact` implies `human_answered`, `success` implies `contact`, and
/// `answering_machine` excludes `human_answered`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewDisposition<'a> {
    pub code: &'a str,
    pub label: &'a str,
    pub human_answered: bool,
    pub contact: bool,
    pub success: bool,
    pub callback: bool,
    pub do_not_call: bool,
    pub answering_machine: bool,
}

#[derive(Insertable)]
#[diesel(table_name = dispositions)]
struct DispositionRow<'a> {
    organization_id: Uuid,
    code: &'a str,
    label: &'a str,
    human_answered: bool,
    contact: bool,
    success: bool,
    callback: bool,
    do_not_call: bool,
    answering_machine: bool,
}

pub async fn insert_disposition(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    disposition: &NewDisposition<'_>,
) -> AppResult<Uuid> {
    let row = DispositionRow {
        organization_id: tenant.org_id(),
        code: disposition.code,
        label: disposition.label,
        human_answered: disposition.human_answered,
        contact: disposition.contact,
        success: disposition.success,
        callback: disposition.callback,
        do_not_call: disposition.do_not_call,
        answering_machine: disposition.answering_machine,
    };
    Ok(diesel::insert_into(dispositions::table)
        .values(&row)
        .returning(dispositions::id)
        .get_result(conn)
        .await?)
}

/// One interval of the agent state log; `ended_at: None` is the agent's current state on that
/// axis (the database allows at most one open interval per agent and axis).
#[derive(Clone, Debug)]
pub struct NewStateInterval {
    pub agent_id: Uuid,
    pub state: AgentState,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = agent_state_log)]
struct StateIntervalRow<'a> {
    organization_id: Uuid,
    agent_id: Uuid,
    axis: &'static str,
    state: &'static str,
    reason: Option<&'a str>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

/// Bulk-inserts state-log intervals in chunks of [`INSERT_CHUNK_ROWS`]; returns how many rows
/// were written.
pub async fn insert_state_intervals(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    rows: &[NewStateInterval],
) -> AppResult<usize> {
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
        let values: Vec<StateIntervalRow<'_>> = chunk
            .iter()
            .map(|s| StateIntervalRow {
                organization_id: tenant.org_id(),
                agent_id: s.agent_id,
                axis: s.state.axis(),
                state: s.state.as_str(),
                reason: s.reason.as_deref(),
                started_at: s.started_at,
                ended_at: s.ended_at,
            })
            .collect();
        inserted += diesel::insert_into(agent_state_log::table)
            .values(&values)
            .execute(conn)
            .await?;
    }
    Ok(inserted)
}

/// Which of `ids` are campaigns of the tenant.
pub async fn existing_campaigns(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .filter(campaigns::id.eq_any(ids))
        .select(campaigns::id)
        .load(conn)
        .await?)
}

/// Which of `ids` are agents of the tenant.
pub async fn existing_agents(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq_any(ids))
        .select(agents::id)
        .load(conn)
        .await?)
}

/// Which of `ids` are teams of the tenant.
pub async fn existing_teams(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .filter(teams::id.eq_any(ids))
        .select(teams::id)
        .load(conn)
        .await?)
}

/// The agents currently in any of the teams (team filters use today's team membership).
pub async fn agents_in_teams(conn: &mut AsyncPgConnection, tenant: &Tenant, team_ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::team_id.eq_any(team_ids))
        .select(agents::id)
        .load(conn)
        .await?)
}

/// An agent as KPI views name it: display name and current team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentDirectoryEntry {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub team_id: Option<Uuid>,
    pub team_name: Option<String>,
    pub active: bool,
}

/// Every agent of the tenant with its current team (two indexed reads, joined here).
pub async fn agent_directory(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Vec<AgentDirectoryEntry>> {
    let team_rows: Vec<(Uuid, String)> = teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .select((teams::id, teams::name))
        .load(conn)
        .await?;
    let team_names: std::collections::HashMap<Uuid, String> = team_rows.into_iter().collect();
    type Row = (Uuid, Option<Uuid>, String, Option<Uuid>, bool);
    let rows: Vec<Row> = agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .select((
            agents::id,
            agents::user_id,
            agents::display_name,
            agents::team_id,
            agents::active,
        ))
        .order((agents::display_name, agents::id))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id, display_name, team_id, active)| AgentDirectoryEntry {
            id,
            user_id,
            display_name,
            team_name: team_id.and_then(|t| team_names.get(&t).cloned()),
            team_id,
            active,
        })
        .collect())
}

/// The agent profile of a user of the tenant, if they have one.
pub async fn agent_of_user(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<Option<Uuid>> {
    Ok(agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::user_id.eq(user_id))
        .select(agents::id)
        .first(conn)
        .await
        .optional()?)
}

/// A campaign as KPI and compliance views need it.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignDirectoryEntry {
    pub id: Uuid,
    pub name: String,
    /// `INBOUND` or `OUTBOUND`.
    pub direction: String,
    pub status: String,
    pub max_abandon_rate_percent: Option<f64>,
}

/// Every campaign of the tenant, by name.
pub async fn campaign_directory(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
) -> AppResult<Vec<CampaignDirectoryEntry>> {
    let rows: Vec<(Uuid, String, String, String, Option<f64>)> = campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .select((
            campaigns::id,
            campaigns::name,
            campaigns::direction,
            campaigns::status,
            campaigns::max_abandon_rate_percent,
        ))
        .order((campaigns::name, campaigns::id))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, direction, status, max_abandon_rate_percent)| CampaignDirectoryEntry {
                id,
                name,
                direction,
                status,
                max_abandon_rate_percent,
            },
        )
        .collect())
}

/// A disposition with the flags that drive metrics and breakdowns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispositionDirectoryEntry {
    pub id: Uuid,
    pub code: String,
    pub label: String,
    pub human_answered: bool,
    pub contact: bool,
    pub success: bool,
    pub callback: bool,
    pub do_not_call: bool,
    pub answering_machine: bool,
    pub active: bool,
}

/// Every disposition of the tenant, by code.
pub async fn disposition_directory(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
) -> AppResult<Vec<DispositionDirectoryEntry>> {
    type Row = (Uuid, String, String, bool, bool, bool, bool, bool, bool, bool);
    let rows: Vec<Row> = dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .select((
            dispositions::id,
            dispositions::code,
            dispositions::label,
            dispositions::human_answered,
            dispositions::contact,
            dispositions::success,
            dispositions::callback,
            dispositions::do_not_call,
            dispositions::answering_machine,
            dispositions::active,
        ))
        .order(dispositions::code)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, code, label, human_answered, contact, success, callback, do_not_call, answering_machine, active)| {
                DispositionDirectoryEntry {
                    id,
                    code,
                    label,
                    human_answered,
                    contact,
                    success,
                    callback,
                    do_not_call,
                    answering_machine,
                    active,
                }
            },
        )
        .collect())
}

/// Names of the organization's teams that start with `prefix` (the generator numbers its runs
/// by them).
pub async fn team_names_starting_with(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    prefix: &str,
) -> AppResult<Vec<String>> {
    Ok(teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .filter(teams::name.like(format!("{prefix}%")))
        .select(teams::name)
        .load(conn)
        .await?)
}

/// The campaign with this name: (id, stored direction).
pub async fn campaign_by_name(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    name: &str,
) -> AppResult<Option<(Uuid, String)>> {
    Ok(campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .filter(campaigns::name.eq(name))
        .select((campaigns::id, campaigns::direction))
        .first(conn)
        .await
        .optional()?)
}

/// The disposition with this code, active or not.
pub async fn disposition_by_code(conn: &mut AsyncPgConnection, tenant: &Tenant, code: &str) -> AppResult<Option<Uuid>> {
    Ok(dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .filter(dispositions::code.eq(code))
        .select(dispositions::id)
        .first(conn)
        .await
        .optional()?)
}
