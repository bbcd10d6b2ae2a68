//! Coaching sessions: `coachingSessions`, `coachingSession` (AGENT: their own; SUPERVISOR: the
//! agents they coach; ADMIN: all), `createCoachingSession`, `updateCoachingSession`,
//! `completeCoachingSession` (SUPERVISOR+, within their scope), `acknowledgeCoachingSession`
//! (the coached agent). The rules live in `management::coaching` and `management::scope`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::auth::{Permission, Tenant};
use crate::db::coaching::{self as rows, CoachingQuery, CoachingRow};
use crate::domain::ids::parse_id_list;
use crate::error::{AppError, AppResult};
use crate::graphql::context::{parse_id, parse_ids, principal, request_id, settings, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::graphql::interactions::{visible_by_ids, Interaction};
use crate::graphql::pagination::{decode_cursor, encode_cursor, page_size};
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::management::coaching::{self as manage, NewSession, SessionPatch};
use crate::management::scope::{self, AgentScope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CoachingStatus {
    /// Not completed yet.
    Scheduled,
    /// Completed with an outcome.
    Completed,
}

/// A coaching session with one agent. Reached only through guarded root fields that check the
/// caller may read it; its linked calls are filtered and masked per the caller's role exactly
/// as `interactions` does (an AGENT sees only their own calls, numbers masked).
pub struct CoachingSession {
    row: CoachingRow,
    tenant: Tenant,
    interaction_ids: Vec<Uuid>,
}

#[Object]
impl CoachingSession {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn agent_id(&self) -> ID {
        ID(self.row.agent_id.to_string())
    }
    /// The user who scheduled the session.
    async fn coach_user_id(&self) -> Option<ID> {
        self.row.coach_user_id.map(|id| ID(id.to_string()))
    }
    async fn topic(&self) -> &str {
        &self.row.topic
    }
    async fn notes(&self) -> Option<&str> {
        self.row.notes.as_deref()
    }
    async fn scheduled_at(&self) -> DateTime<Utc> {
        self.row.scheduled_at
    }
    async fn status(&self) -> CoachingStatus {
        if self.row.completed_at.is_some() {
            CoachingStatus::Completed
        } else {
            CoachingStatus::Scheduled
        }
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.row.completed_at
    }
    async fn outcome(&self) -> Option<&str> {
        self.row.outcome.as_deref()
    }
    /// The date agreed for a follow-up, if any (organization's calendar).
    async fn follow_up_on(&self) -> Option<NaiveDate> {
        self.row.follow_up_on
    }
    /// When the coached agent acknowledged the completed session.
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.row.acknowledged_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
    /// The calls the session talks about that the caller may see, oldest first, masked as in
    /// `interactions`.
    #[graphql(complexity = "MAX_LINKED * child_complexity")]
    async fn interactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Interaction>> {
        if self.interaction_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = state(ctx)?.db.get(&self.tenant).await?;
        Ok(visible_by_ids(&mut conn, principal(ctx)?, &self.tenant, &self.interaction_ids).await?)
    }
}

/// Complexity weight of a session's linked calls.
pub const MAX_LINKED: usize = manage::MAX_INTERACTIONS;

async fn outputs(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &Tenant,
    rows_in: Vec<CoachingRow>,
) -> AppResult<Vec<CoachingSession>> {
    let ids: Vec<Uuid> = rows_in.iter().map(|r| r.id).collect();
    let mut links = if ids.is_empty() {
        Default::default()
    } else {
        rows::interaction_ids(conn, tenant, &ids).await?
    };
    Ok(rows_in
        .into_iter()
        .map(|row| CoachingSession {
            interaction_ids: links.remove(&row.id).unwrap_or_default(),
            tenant: *tenant,
            row,
        })
        .collect())
}

#[derive(InputObject, Default)]
pub struct CoachingSessionFilter {
    pub agent_ids: Option<Vec<ID>>,
    pub status: Option<CoachingStatus>,
}

#[derive(SimpleObject)]
pub struct CoachingSessionConnectionTotals {
    /// Sessions matching the filter that the caller may read, whatever the page.
    total_count: i64,
}

pub type CoachingSessionConnection = Connection<String, CoachingSession, CoachingSessionConnectionTotals>;

#[derive(Default)]
pub struct CoachingQueries;

#[Object]
impl CoachingQueries {
    /// Coaching sessions, latest scheduled first. AGENT: their own; SUPERVISOR: the agents
    /// they coach; ADMIN+: all.
    #[graphql(
        guard = "PermissionGuard(Permission::ActAsAgent)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn coaching_sessions(
        &self,
        ctx: &Context<'_>,
        filter: Option<CoachingSessionFilter>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSessionConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let after_key = after.as_deref().map(decode_cursor).transpose()?;
        let filter = filter.unwrap_or_default();
        let asked = parse_ids("filter.agentIds", &filter.agent_ids)?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let agent_ids = match scope::coaching_readable(&mut conn, principal(ctx)?, &tenant).await? {
            AgentScope::All => asked,
            AgentScope::Only(own) => Some(match asked {
                Some(asked) => asked.into_iter().filter(|id| own.contains(id)).collect(),
                None => own,
            }),
        };
        let query = CoachingQuery {
            agent_ids,
            completed: filter.status.map(|s| s == CoachingStatus::Completed),
        };
        let mut page = rows::page(&mut conn, &tenant, &query, after_key, limit).await?;
        let total_count = rows::count(&mut conn, &tenant, &query).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_next = page.len() > limit;
        page.truncate(limit);
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            CoachingSessionConnectionTotals { total_count },
        );
        connection.edges.extend(
            outputs(&mut conn, &tenant, page)
                .await?
                .into_iter()
                .map(|s| Edge::new(encode_cursor(s.row.scheduled_at, s.row.id), s)),
        );
        Ok(connection)
    }

    /// One coaching session (NOT_FOUND for one the caller may not read).
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn coaching_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSession> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let row = rows::get(&mut conn, &tenant, id).await?;
        if !scope::coaching_readable(&mut conn, principal(ctx)?, &tenant)
            .await?
            .contains(row.agent_id)
        {
            return Err(AppError::NotFound("coaching session not found".into()).into());
        }
        one(outputs(&mut conn, &tenant, vec![row]).await?)
    }
}

fn one(mut sessions: Vec<CoachingSession>) -> async_graphql::Result<CoachingSession> {
    sessions
        .pop()
        .ok_or_else(|| AppError::NotFound("coaching session not found".into()).into())
}

async fn load_one(ctx: &Context<'_>, tenant: &Tenant, row: CoachingRow) -> async_graphql::Result<CoachingSession> {
    let mut conn = state(ctx)?.db.get(tenant).await?;
    one(outputs(&mut conn, tenant, vec![row]).await?)
}

fn id_list(field: &str, ids: &[ID]) -> AppResult<Vec<Uuid>> {
    parse_id_list(field, ids).map_err(AppError::invalid_fields)
}

#[derive(InputObject)]
pub struct CreateCoachingSessionInput {
    pub agent_id: ID,
    pub scheduled_at: DateTime<Utc>,
    /// 1–500 characters.
    pub topic: String,
    /// At most 10,000 characters.
    pub notes: Option<String>,
    /// Calls of the organization the session talks about (at most 50).
    #[graphql(default)]
    pub interaction_ids: Vec<ID>,
}

/// A partial update: omitted fields keep their value.
#[derive(InputObject, Default)]
pub struct UpdateCoachingSessionInput {
    pub scheduled_at: Option<DateTime<Utc>>,
    pub topic: Option<String>,
    /// An empty string clears the notes.
    pub notes: Option<String>,
    /// Replaces the linked calls.
    pub interaction_ids: Option<Vec<ID>>,
}

#[derive(Default)]
pub struct CoachingMutations;

#[Object]
impl CoachingMutations {
    /// Schedules a coaching session with an agent the caller coaches (SUPERVISOR+). Unknown
    /// agents and calls, or another organization's, are NOT_FOUND. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn create_coaching_session(
        &self,
        ctx: &Context<'_>,
        input: CreateCoachingSessionInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSession> {
        let agent_id = parse_id(&input.agent_id, "input.agentId")?;
        let interaction_ids = id_list("input.interactionIds", &input.interaction_ids)?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (row, _) = manage::create(
            state(ctx)?,
            principal(ctx)?,
            &tenant,
            NewSession {
                agent_id,
                scheduled_at: input.scheduled_at,
                topic: input.topic,
                notes: input.notes,
                interaction_ids,
            },
            request_id(ctx),
        )
        .await?;
        load_one(ctx, &tenant, row).await
    }

    /// Changes an open session (SUPERVISOR+, within their scope); a completed one is
    /// CONFLICT. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn update_coaching_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCoachingSessionInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSession> {
        let id = parse_id(&id, "id")?;
        let interaction_ids = input
            .interaction_ids
            .as_deref()
            .map(|ids| id_list("input.interactionIds", ids))
            .transpose()?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let patch = SessionPatch {
            scheduled_at: input.scheduled_at,
            topic: input.topic,
            notes: input.notes,
            interaction_ids,
        };
        let row = manage::update(state(ctx)?, principal(ctx)?, &tenant, id, patch, request_id(ctx)).await?;
        load_one(ctx, &tenant, row).await
    }

    /// Completes a session with its outcome and an optional follow-up date (SUPERVISOR+,
    /// within their scope); CONFLICT when already completed. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Supervise)")]
    async fn complete_coaching_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        outcome: String,
        follow_up_on: Option<NaiveDate>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSession> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::complete(
            state(ctx)?,
            principal(ctx)?,
            &tenant,
            id,
            &outcome,
            follow_up_on,
            request_id(ctx),
        )
        .await?;
        load_one(ctx, &tenant, row).await
    }

    /// The coached agent acknowledges a completed session (idempotent). Anyone else who may
    /// read it: FORBIDDEN; an open session: CONFLICT. Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn acknowledge_coaching_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        org_id: Option<ID>,
    ) -> async_graphql::Result<CoachingSession> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::acknowledge(state(ctx)?, principal(ctx)?, &tenant, id, request_id(ctx)).await?;
        load_one(ctx, &tenant, row).await
    }
}
