//! The `interactions` table: one row per call. Two writers — ingest, which upserts the
//! columns it derives from a call's events, and the bulk loader of generated history — and the
//! reads behind the `interactions` listing and lookups.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::INSERT_CHUNK_ROWS;
use crate::db::schema::interactions;
use crate::domain::{AnsweredBy, CallState, Direction, Outcome};
use crate::error::AppResult;

/// An interaction row as stored.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = interactions, check_for_backend(diesel::pg::Pg))]
pub struct InteractionRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub external_id: String,
    pub direction: String,
    pub customer_number: Option<String>,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub wrap_ended_at: Option<DateTime<Utc>>,
    pub wait_ms: Option<i64>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub outcome: String,
    pub disposition_id: Option<Uuid>,
    pub answered_by: Option<String>,
    pub notes: Option<String>,
    pub last_event_sequence: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl InteractionRow {
    /// The derived columns, to compare with a new derivation and to subtract from the rollups.
    pub fn state(&self) -> AppResult<CallState> {
        Ok(CallState {
            direction: Direction::from_stored(&self.direction)?,
            campaign_id: self.campaign_id,
            agent_id: self.agent_id,
            customer_number: self.customer_number.clone(),
            offered_at: self.offered_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            wrap_ended_at: self.wrap_ended_at,
            wait_ms: self.wait_ms,
            talk_ms: self.talk_ms,
            hold_ms: self.hold_ms,
            wrap_ms: self.wrap_ms,
            outcome: Outcome::from_stored(&self.outcome)?,
            disposition_id: self.disposition_id,
            answered_by: self.answered_by.as_deref().map(AnsweredBy::from_stored).transpose()?,
            notes: self.notes.clone(),
            last_event_sequence: self.last_event_sequence,
        })
    }
}

/// One call as the fact table stores it. Durations are whole milliseconds and must agree with
/// the timestamps (`ended_at = answered_at + talk + hold`, `wrap_ended_at = ended_at + wrap`):
/// metrics sum the durations, timelines read the timestamps.
#[derive(Clone, Debug)]
pub struct NewInteraction {
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub external_id: String,
    pub direction: Direction,
    pub customer_number: Option<String>,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub wrap_ended_at: Option<DateTime<Utc>>,
    pub wait_ms: Option<i64>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub outcome: Outcome,
    pub disposition_id: Option<Uuid>,
    pub answered_by: Option<AnsweredBy>,
    pub notes: Option<String>,
}

impl NewInteraction {
    /// A call that was offered and has nothing else recorded yet: no campaign, agent, number,
    /// answer, end, durations, disposition or notes. Writers and fixtures fill in the rest
    /// with struct-update syntax.
    pub fn offered(external_id: String, direction: Direction, offered_at: DateTime<Utc>, outcome: Outcome) -> Self {
        Self {
            campaign_id: None,
            agent_id: None,
            external_id,
            direction,
            customer_number: None,
            offered_at,
            answered_at: None,
            ended_at: None,
            wrap_ended_at: None,
            wait_ms: None,
            talk_ms: 0,
            hold_ms: 0,
            wrap_ms: 0,
            outcome,
            disposition_id: None,
            answered_by: None,
            notes: None,
        }
    }
}

/// The columns of an interaction that its writers set (the id and timestamps are the
/// database's). One shape for both writers: ingest's upsert and the bulk loader's insert.
#[derive(Insertable)]
#[diesel(table_name = interactions)]
struct InteractionValues<'a> {
    organization_id: Uuid,
    campaign_id: Option<Uuid>,
    agent_id: Option<Uuid>,
    external_id: &'a str,
    direction: &'static str,
    customer_number: Option<&'a str>,
    offered_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    wrap_ended_at: Option<DateTime<Utc>>,
    wait_ms: Option<i64>,
    talk_ms: i64,
    hold_ms: i64,
    wrap_ms: i64,
    outcome: &'static str,
    disposition_id: Option<Uuid>,
    answered_by: Option<&'static str>,
    notes: Option<&'a str>,
    last_event_sequence: Option<i64>,
}

impl<'a> InteractionValues<'a> {
    /// A call as ingest derived it from its events.
    fn derived(tenant: &Tenant, external_id: &'a str, c: &'a CallState) -> Self {
        Self {
            organization_id: tenant.org_id(),
            campaign_id: c.campaign_id,
            agent_id: c.agent_id,
            external_id,
            direction: c.direction.as_str(),
            customer_number: c.customer_number.as_deref(),
            offered_at: c.offered_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            wrap_ended_at: c.wrap_ended_at,
            wait_ms: c.wait_ms,
            talk_ms: c.talk_ms,
            hold_ms: c.hold_ms,
            wrap_ms: c.wrap_ms,
            outcome: c.outcome.as_str(),
            disposition_id: c.disposition_id,
            answered_by: c.answered_by.map(AnsweredBy::as_str),
            notes: c.notes.as_deref(),
            last_event_sequence: c.last_event_sequence,
        }
    }

    /// A generated call (no events behind it, so no event sequence).
    fn generated(tenant: &Tenant, i: &'a NewInteraction) -> Self {
        Self {
            organization_id: tenant.org_id(),
            campaign_id: i.campaign_id,
            agent_id: i.agent_id,
            external_id: &i.external_id,
            direction: i.direction.as_str(),
            customer_number: i.customer_number.as_deref(),
            offered_at: i.offered_at,
            answered_at: i.answered_at,
            ended_at: i.ended_at,
            wrap_ended_at: i.wrap_ended_at,
            wait_ms: i.wait_ms,
            talk_ms: i.talk_ms,
            hold_ms: i.hold_ms,
            wrap_ms: i.wrap_ms,
            outcome: i.outcome.as_str(),
            disposition_id: i.disposition_id,
            answered_by: i.answered_by.map(AnsweredBy::as_str),
            notes: i.notes.as_deref(),
            last_event_sequence: None,
        }
    }
}

/// The interactions of the calls, by external id.
pub async fn interactions_by_external_ids(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    external_ids: &[String],
) -> AppResult<HashMap<String, InteractionRow>> {
    let rows: Vec<InteractionRow> = interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::external_id.eq_any(external_ids))
        .select(InteractionRow::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.external_id.clone(), r)).collect())
}

/// Writes derived interactions (one per external id), inserting new calls and replacing the
/// derived columns of known ones. Returns each call's interaction id.
pub async fn upsert_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    calls: &[(&str, &CallState)],
) -> AppResult<HashMap<String, Uuid>> {
    use diesel::upsert::excluded;
    use interactions::dsl as i;
    let mut ids = HashMap::with_capacity(calls.len());
    for chunk in calls.chunks(INSERT_CHUNK_ROWS) {
        let rows: Vec<InteractionValues<'_>> = chunk
            .iter()
            .map(|(external_id, c)| InteractionValues::derived(tenant, external_id, c))
            .collect();
        let written: Vec<(Uuid, String)> = diesel::insert_into(interactions::table)
            .values(&rows)
            .on_conflict((i::organization_id, i::external_id))
            .do_update()
            .set((
                i::campaign_id.eq(excluded(i::campaign_id)),
                i::agent_id.eq(excluded(i::agent_id)),
                i::direction.eq(excluded(i::direction)),
                i::customer_number.eq(excluded(i::customer_number)),
                i::offered_at.eq(excluded(i::offered_at)),
                i::answered_at.eq(excluded(i::answered_at)),
                i::ended_at.eq(excluded(i::ended_at)),
                i::wrap_ended_at.eq(excluded(i::wrap_ended_at)),
                i::wait_ms.eq(excluded(i::wait_ms)),
                i::talk_ms.eq(excluded(i::talk_ms)),
                i::hold_ms.eq(excluded(i::hold_ms)),
                i::wrap_ms.eq(excluded(i::wrap_ms)),
                i::outcome.eq(excluded(i::outcome)),
                i::disposition_id.eq(excluded(i::disposition_id)),
                i::answered_by.eq(excluded(i::answered_by)),
                i::notes.eq(excluded(i::notes)),
                i::last_event_sequence.eq(excluded(i::last_event_sequence)),
                i::updated_at.eq(diesel::dsl::now),
            ))
            .returning((i::id, i::external_id))
            .get_results(conn)
            .await?;
        ids.extend(written.into_iter().map(|(id, external_id)| (external_id, id)));
    }
    Ok(ids)
}

/// Bulk-inserts calls in chunks of [`INSERT_CHUNK_ROWS`]; returns how many rows were written.
/// An `external_id` the organization already has fails the whole statement (it is the
/// idempotency key of ingest, so a duplicate here is a generator bug).
pub async fn insert_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    rows: &[NewInteraction],
) -> AppResult<usize> {
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
        let values: Vec<InteractionValues<'_>> =
            chunk.iter().map(|i| InteractionValues::generated(tenant, i)).collect();
        inserted += diesel::insert_into(interactions::table)
            .values(&values)
            .execute(conn)
            .await?;
    }
    Ok(inserted)
}

/// Which interactions a listing covers.
#[derive(Debug, Clone, Default)]
pub struct InteractionQuery {
    pub offered_from: Option<DateTime<Utc>>,
    pub offered_to: Option<DateTime<Utc>>,
    pub campaign_ids: Option<Vec<Uuid>>,
    /// Already narrowed to the caller's own agent for callers below SUPERVISOR.
    pub agent_ids: Option<Vec<Uuid>>,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
}

type BoxedInteractions<'a> = interactions::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered<'a>(tenant: &Tenant, query: &InteractionQuery) -> BoxedInteractions<'a> {
    use interactions::dsl as i;
    let mut q = interactions::table
        .filter(i::organization_id.eq(tenant.org_id()))
        .into_boxed();
    if let Some(from) = query.offered_from {
        q = q.filter(i::offered_at.ge(from));
    }
    if let Some(to) = query.offered_to {
        q = q.filter(i::offered_at.lt(to));
    }
    if let Some(ids) = &query.campaign_ids {
        q = q.filter(i::campaign_id.eq_any(ids.clone()));
    }
    if let Some(ids) = &query.agent_ids {
        q = q.filter(i::agent_id.eq_any(ids.clone()));
    }
    if let Some(direction) = query.direction {
        q = q.filter(i::direction.eq(direction.as_str()));
    }
    if let Some(outcome) = query.outcome {
        q = q.filter(i::outcome.eq(outcome.as_str()));
    }
    q
}

/// One page, newest offer first; keyset `(offered_at, id)` strictly before `after`. Fetches
/// `limit + 1` rows so the caller can tell whether another page follows.
pub async fn page_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &InteractionQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<InteractionRow>> {
    use interactions::dsl as i;
    let mut q = filtered(tenant, query);
    if let Some((offered_at, id)) = after {
        q = q.filter(
            i::offered_at
                .lt(offered_at)
                .or(i::offered_at.eq(offered_at).and(i::id.lt(id))),
        );
    }
    Ok(q.order((i::offered_at.desc(), i::id.desc()))
        .limit(limit + 1)
        .select(InteractionRow::as_select())
        .load(conn)
        .await?)
}

pub async fn count_interactions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &InteractionQuery,
) -> AppResult<i64> {
    Ok(filtered(tenant, query).count().get_result(conn).await?)
}

pub async fn interaction_by_id(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
) -> AppResult<Option<InteractionRow>> {
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::id.eq(id))
        .select(InteractionRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Calls of the tenant by id, in no particular order (unknown ids are left out).
pub async fn interactions_by_ids(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    ids: &[Uuid],
) -> AppResult<Vec<InteractionRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::id.eq_any(ids))
        .select(InteractionRow::as_select())
        .load(conn)
        .await?)
}

pub async fn interaction_by_external_id(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    external_id: &str,
) -> AppResult<Option<InteractionRow>> {
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::external_id.eq(external_id))
        .select(InteractionRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Calls of the tenant offered since `since` whose external id starts with `prefix` and that
/// have not run their course: not ended, or answered by an agent who has not wrapped up. Oldest
/// first, at most `limit`. (The live demo simulator closes the calls a stopped run left open.)
pub async fn open_calls_with_prefix(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    prefix: &str,
    since: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<InteractionRow>> {
    let pattern = format!(
        "{}%",
        prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
    );
    Ok(interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::offered_at.ge(since))
        .filter(interactions::external_id.like(pattern))
        .filter(
            interactions::ended_at.is_null().or(interactions::agent_id
                .is_not_null()
                .and(interactions::answered_at.is_not_null())
                .and(interactions::wrap_ended_at.is_null())),
        )
        .order(interactions::offered_at)
        .limit(limit)
        .select(InteractionRow::as_select())
        .load(conn)
        .await?)
}

/// One call as the interaction detail log (`reports::log`) lists it: the columns it shows, and
/// the keyset `(offered_at, id)` it pages by.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = interactions, check_for_backend(diesel::pg::Pg))]
pub struct LogRow {
    pub id: Uuid,
    pub external_id: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub direction: String,
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub customer_number: Option<String>,
    pub outcome: String,
    pub disposition_id: Option<Uuid>,
    pub wait_ms: Option<i64>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
}

/// One page of the detail log, oldest offer first: at most `limit` calls strictly after the
/// keyset `after`. Each page is its own short statement (no cursor held open across pages),
/// and `offered_at >= after` bounds the index range scan of `(organization_id, offered_at)`.
pub async fn log_page(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &InteractionQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<LogRow>> {
    use interactions::dsl as i;
    let mut q = filtered(tenant, query);
    if let Some((offered_at, id)) = after {
        q = q.filter(i::offered_at.ge(offered_at)).filter(
            i::offered_at
                .gt(offered_at)
                .or(i::offered_at.eq(offered_at).and(i::id.gt(id))),
        );
    }
    Ok(q.order((i::offered_at.asc(), i::id.asc()))
        .limit(limit)
        .select(LogRow::as_select())
        .load(conn)
        .await?)
}

/// The names a detail log shows for ids: campaigns, agents and dispositions (labels) of the
/// tenant, inactive ones included (old calls name them). Small tables, read once per run.
#[derive(Debug, Default)]
pub struct LogNames {
    pub campaigns: HashMap<Uuid, String>,
    pub agents: HashMap<Uuid, String>,
    pub dispositions: HashMap<Uuid, String>,
}

pub async fn log_names(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<LogNames> {
    use crate::db::schema::{agents, campaigns, dispositions};
    let org = tenant.org_id();
    let campaigns: Vec<(Uuid, String)> = campaigns::table
        .filter(campaigns::organization_id.eq(org))
        .select((campaigns::id, campaigns::name))
        .load(conn)
        .await?;
    let agents: Vec<(Uuid, String)> = agents::table
        .filter(agents::organization_id.eq(org))
        .select((agents::id, agents::display_name))
        .load(conn)
        .await?;
    let dispositions: Vec<(Uuid, String)> = dispositions::table
        .filter(dispositions::organization_id.eq(org))
        .select((dispositions::id, dispositions::label))
        .load(conn)
        .await?;
    Ok(LogNames {
        campaigns: campaigns.into_iter().collect(),
        agents: agents.into_iter().collect(),
        dispositions: dispositions.into_iter().collect(),
    })
}
