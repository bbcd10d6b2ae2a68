//! Calls: `interactions`, `interaction`, `interactionByExternalId` (SUPERVISOR+ every call,
//! AGENT their own, customer numbers masked below SUPERVISOR); call-event ingest
//! (`recordCallEvents`, ADMIN+), `setDisposition` (AGENT own calls, SUPERVISOR+ any), and the
//! organization's Twilio credentials (`telephonySettings`, `updateTelephonySettings`, ADMIN+;
//! the auth token is write-only).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::audit::{Actor, AuditEvent};
use crate::auth::Permission;
use crate::db::calls::{self, TelephonySettingsView};
use crate::db::interactions::{self, InteractionQuery, InteractionRow};
use crate::db::{self, orgs};
use crate::domain::{AnsweredBy, Direction, Outcome};
use crate::domain::{EndReason, EventType};
use crate::error::{AppError, AppResult};
use crate::graphql::context::{client_addr, parse_id, parse_ids, principal, request_id, settings, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::graphql::pagination::{decode_cursor, encode_cursor, page_size};
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::ingest::twilio;
use crate::ingest::{self, CallScope, EventInput, EventStatus};

/// A telephony event type. Events of one call may arrive in any order and more than once;
/// the call is recomputed from all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CallEventType {
    Offered,
    Ringing,
    Answered,
    Held,
    Resumed,
    /// To the agent named by `agentId` (none: out of the contact centre).
    Transferred,
    Ended,
    /// May carry the disposition (`dispositionCode`).
    WrapUpEnded,
}

impl From<CallEventType> for EventType {
    fn from(t: CallEventType) -> Self {
        match t {
            CallEventType::Offered => EventType::Offered,
            CallEventType::Ringing => EventType::Ringing,
            CallEventType::Answered => EventType::Answered,
            CallEventType::Held => EventType::Held,
            CallEventType::Resumed => EventType::Resumed,
            CallEventType::Transferred => EventType::Transferred,
            CallEventType::Ended => EventType::Ended,
            CallEventType::WrapUpEnded => EventType::WrapUpEnded,
        }
    }
}

/// One call event from the telephony layer or the dialler.
#[derive(InputObject)]
pub struct CallEventInput {
    /// The call's id in the telephony layer (e.g. Twilio CallSid), 1–128 characters.
    pub external_id: String,
    #[graphql(name = "type")]
    pub event_type: CallEventType,
    /// When it happened: at most 10 minutes ahead, not before the organization's history
    /// horizon (business settings; by default the organization's creation).
    pub occurred_at: DateTime<Utc>,
    /// The sender's order of events, when it has one (part of the dedupe key).
    pub sequence_number: Option<i64>,
    /// Defaults to the campaign's direction, else INBOUND.
    pub direction: Option<Direction>,
    pub campaign_id: Option<ID>,
    /// RINGING / ANSWERED: the agent; TRANSFERRED: the agent the call goes to.
    pub agent_id: Option<ID>,
    pub customer_number: Option<String>,
    pub answered_by: Option<AnsweredBy>,
    /// WRAP_UP_ENDED only: an active disposition code.
    pub disposition_code: Option<String>,
    /// ENDED only.
    pub end_reason: Option<EndReason>,
}

impl From<CallEventInput> for EventInput {
    fn from(i: CallEventInput) -> Self {
        EventInput {
            external_id: i.external_id,
            event_type: i.event_type.into(),
            occurred_at: i.occurred_at,
            sequence: i.sequence_number,
            direction: i.direction,
            campaign_id: i.campaign_id.map(|id| id.0),
            agent_id: i.agent_id.map(|id| id.0),
            customer_number: i.customer_number,
            answered_by: i.answered_by,
            disposition_code: i.disposition_code,
            end_reason: i.end_reason,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CallEventStatus {
    /// Stored; its call was brought up to date.
    Accepted,
    /// Already stored: nothing changed.
    Duplicate,
    /// Not stored; `reason` says why.
    Rejected,
}

#[derive(SimpleObject)]
pub struct CallEventResult {
    /// Position of the event in the request.
    index: i32,
    external_id: String,
    status: CallEventStatus,
    reason: Option<String>,
    /// The call's interaction (absent for a rejected event).
    interaction_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct RecordCallEventsPayload {
    accepted: i32,
    duplicates: i32,
    rejected: i32,
    /// One per event, in request order.
    results: Vec<CallEventResult>,
}

/// One call. Reached only through guarded root fields that check the caller may see it.
pub struct Interaction {
    row: InteractionRow,
    unmasked: bool,
    disposition_code: Option<String>,
}

#[Object]
impl Interaction {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The telephony layer's id (Twilio CallSid).
    async fn external_id(&self) -> &str {
        &self.row.external_id
    }
    async fn direction(&self) -> async_graphql::Result<Direction> {
        Ok(Direction::from_stored(&self.row.direction)?)
    }
    async fn campaign_id(&self) -> Option<ID> {
        self.row.campaign_id.map(|id| ID(id.to_string()))
    }
    async fn agent_id(&self) -> Option<ID> {
        self.row.agent_id.map(|id| ID(id.to_string()))
    }
    /// Masked (e.g. `+44******1234`) below SUPERVISOR.
    async fn customer_number(&self) -> Option<String> {
        let number = self.row.customer_number.as_deref()?;
        Some(if self.unmasked {
            number.to_owned()
        } else {
            ingest::mask_number(number)
        })
    }
    async fn offered_at(&self) -> DateTime<Utc> {
        self.row.offered_at
    }
    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.row.answered_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.row.ended_at
    }
    async fn wrap_ended_at(&self) -> Option<DateTime<Utc>> {
        self.row.wrap_ended_at
    }
    /// Offer to answer; for an abandoned call, offer to hang-up. Milliseconds.
    async fn wait_ms(&self) -> Option<i64> {
        self.row.wait_ms
    }
    /// Answer to end, minus hold. Milliseconds.
    async fn talk_ms(&self) -> i64 {
        self.row.talk_ms
    }
    async fn hold_ms(&self) -> i64 {
        self.row.hold_ms
    }
    /// End to wrap-up end. Milliseconds.
    async fn wrap_ms(&self) -> i64 {
        self.row.wrap_ms
    }
    async fn outcome(&self) -> async_graphql::Result<Outcome> {
        Ok(Outcome::from_stored(&self.row.outcome)?)
    }
    async fn answered_by(&self) -> async_graphql::Result<Option<AnsweredBy>> {
        Ok(self
            .row
            .answered_by
            .as_deref()
            .map(AnsweredBy::from_stored)
            .transpose()?)
    }
    async fn disposition_code(&self) -> Option<&str> {
        self.disposition_code.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.row.notes.as_deref()
    }
    /// The highest sequence number among the call's events.
    async fn last_event_sequence(&self) -> Option<i64> {
        self.row.last_event_sequence
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
}

/// Output rows with their disposition codes (one query for the whole page).
async fn to_output(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &crate::auth::Tenant,
    scope: CallScope,
    rows: Vec<InteractionRow>,
) -> AppResult<Vec<Interaction>> {
    let ids: Vec<uuid::Uuid> = rows.iter().filter_map(|r| r.disposition_id).collect();
    let codes = if ids.is_empty() {
        Default::default()
    } else {
        calls::disposition_codes(conn, tenant, &ids).await?
    };
    Ok(rows
        .into_iter()
        .map(|row| Interaction {
            disposition_code: row.disposition_id.and_then(|d| codes.get(&d).cloned()),
            unmasked: scope.unmasked(),
            row,
        })
        .collect())
}

/// Audits a read of customer numbers in full (SUPERVISOR+): one record per request naming the
/// calls, queued off the request path (`state::audit_queue`). Only when the numbers were
/// asked for and at least one call has one.
fn audit_unmasked(ctx: &Context<'_>, tenant: &crate::auth::Tenant, rows: &[Interaction], selected: bool) {
    if !selected {
        return;
    }
    let ids: Vec<String> = rows
        .iter()
        .filter(|i| i.unmasked && i.row.customer_number.is_some())
        .map(|i| i.row.id.to_string())
        .collect();
    let (Some(first), Ok(caller), Ok(state)) = (ids.first(), principal(ctx), state(ctx)) else {
        return;
    };
    let event = AuditEvent::new(
        Some(tenant.org_id()),
        Some(Actor::of(caller)),
        "interaction.read_unmasked",
    )
    .target("interaction", first)
    .details(serde_json::json!({ "interactionIds": ids, "count": ids.len() }))
    .request_id(request_id(ctx))
    .client_addr(client_addr(ctx));
    state.audit_queue.record_read(event);
}

/// The calls of `ids` the caller may see, in the order of `ids`, masked for the caller's role
/// exactly as `interactions` masks them; the others are left out (for a linked list such as a
/// coaching session's calls, where NOT_FOUND for one would hide the rest).
pub(crate) async fn visible_by_ids(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &crate::auth::Principal,
    tenant: &crate::auth::Tenant,
    ids: &[uuid::Uuid],
) -> AppResult<Vec<Interaction>> {
    let scope = CallScope::of(conn, principal, tenant).await?;
    let mut rows: Vec<InteractionRow> = interactions::interactions_by_ids(conn, tenant, ids)
        .await?
        .into_iter()
        .filter(|row| scope.sees(row))
        .collect();
    rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    to_output(conn, tenant, scope, rows).await
}

fn one(mut rows: Vec<Interaction>) -> async_graphql::Result<Interaction> {
    rows.pop()
        .ok_or_else(|| AppError::NotFound("interaction not found".into()).into())
}

/// Which calls to list; all filters combine with AND.
#[derive(InputObject, Default)]
pub struct InteractionFilter {
    /// Offered at or after.
    pub offered_from: Option<DateTime<Utc>>,
    /// Offered before.
    pub offered_to: Option<DateTime<Utc>>,
    pub campaign_ids: Option<Vec<ID>>,
    pub agent_ids: Option<Vec<ID>>,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
}

#[derive(SimpleObject)]
pub struct InteractionConnectionTotals {
    /// Calls matching the filter, whatever the page.
    total_count: i64,
}

pub type InteractionConnection = Connection<String, Interaction, InteractionConnectionTotals>;

/// The organization's Twilio account. The auth token is write-only: only whether one is set.
#[derive(SimpleObject)]
pub struct TelephonySettings {
    twilio_account_sid: Option<String>,
    auth_token_set: bool,
    updated_at: Option<DateTime<Utc>>,
    /// Where to point Twilio's voice status callbacks, relative to this service.
    voice_status_callback_path: String,
    /// The same as an absolute URL; null unless `OMNIVOX_PUBLIC_BASE_URL` is configured.
    voice_status_callback_url: Option<String>,
}

async fn telephony_output(
    ctx: &Context<'_>,
    tenant: &crate::auth::Tenant,
    view: TelephonySettingsView,
) -> async_graphql::Result<TelephonySettings> {
    let mut conn = state(ctx)?.db.get(tenant).await?;
    let slug = orgs::get(&mut conn, tenant).await?.slug;
    let path = twilio::voice_status_path(&slug);
    let url = settings(ctx)?
        .public_base_url
        .as_ref()
        .map(|base| format!("{base}{path}"));
    Ok(TelephonySettings {
        twilio_account_sid: view.twilio_account_sid,
        auth_token_set: view.auth_token_set,
        updated_at: view.updated_at,
        voice_status_callback_path: path,
        voice_status_callback_url: url,
    })
}

#[derive(Default)]
pub struct InteractionsQuery;

#[Object]
impl InteractionsQuery {
    /// Calls, newest offer first. SUPERVISOR+: every call; AGENT: their own.
    #[graphql(
        guard = "PermissionGuard(Permission::ActAsAgent)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        filter: Option<InteractionFilter>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<InteractionConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let after_key = after.as_deref().map(decode_cursor).transpose()?;
        let filter = filter.unwrap_or_default();
        let mut query = InteractionQuery {
            offered_from: filter.offered_from,
            offered_to: filter.offered_to,
            campaign_ids: parse_ids("filter.campaignIds", &filter.campaign_ids)?,
            agent_ids: parse_ids("filter.agentIds", &filter.agent_ids)?,
            direction: filter.direction,
            outcome: filter.outcome,
        };
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let scope = CallScope::of(&mut conn, principal(ctx)?, &tenant).await?;
        if let CallScope::OwnAgent(own) = scope {
            let own: Vec<uuid::Uuid> = own.into_iter().collect();
            query.agent_ids = Some(match query.agent_ids {
                Some(asked) => asked.into_iter().filter(|id| own.contains(id)).collect(),
                None => own,
            });
        }
        let mut rows = db::interactions::page_interactions(&mut conn, &tenant, &query, after_key, limit).await?;
        let total_count = interactions::count_interactions(&mut conn, &tenant, &query).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, InteractionConnectionTotals { total_count });
        let rows = to_output(&mut conn, &tenant, scope, rows).await?;
        let selected = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("customerNumber")
            .exists()
            || ctx.look_ahead().field("nodes").field("customerNumber").exists();
        audit_unmasked(ctx, &tenant, &rows, selected);
        connection.edges.extend(
            rows.into_iter()
                .map(|i| Edge::new(encode_cursor(i.row.offered_at, i.row.id), i)),
        );
        Ok(connection)
    }

    /// One call by id (NOT_FOUND for a call the caller may not see).
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn interaction(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<Interaction> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let scope = CallScope::of(&mut conn, principal(ctx)?, &tenant).await?;
        let row = ingest::visible_interaction(&mut conn, scope, &tenant, id).await?;
        let rows = to_output(&mut conn, &tenant, scope, vec![row]).await?;
        audit_unmasked(ctx, &tenant, &rows, ctx.look_ahead().field("customerNumber").exists());
        one(rows)
    }

    /// One call by the telephony layer's id (NOT_FOUND for a call the caller may not see).
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn interaction_by_external_id(
        &self,
        ctx: &Context<'_>,
        external_id: String,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Interaction> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let scope = CallScope::of(&mut conn, principal(ctx)?, &tenant).await?;
        let row = interactions::interaction_by_external_id(&mut conn, &tenant, &external_id)
            .await?
            .filter(|row| scope.sees(row))
            .ok_or_else(|| AppError::NotFound("interaction not found".into()))?;
        let rows = to_output(&mut conn, &tenant, scope, vec![row]).await?;
        audit_unmasked(ctx, &tenant, &rows, ctx.look_ahead().field("customerNumber").exists());
        one(rows)
    }

    /// The organization's Twilio account (never the auth token). ADMIN+.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn telephony_settings(
        &self,
        ctx: &Context<'_>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<TelephonySettings> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let view = ingest::telephony_settings(state(ctx)?, &tenant).await?;
        telephony_output(ctx, &tenant, view).await
    }
}

/// New Twilio credentials; an omitted field keeps its value.
#[derive(InputObject)]
pub struct TelephonySettingsInput {
    /// `AC` and 32 hexadecimal digits. Callbacks naming another AccountSid are refused.
    pub twilio_account_sid: Option<String>,
    /// Write-only: stored to verify callback signatures, never returned or logged.
    pub twilio_auth_token: Option<String>,
}

#[derive(Default)]
pub struct InteractionsMutation;

#[Object]
impl InteractionsMutation {
    /// Records up to 1,000 call events. Each event is validated on its own: an invalid one is
    /// REJECTED with its reason and the others are stored. Repeats are DUPLICATE. All stored
    /// events, their calls, agents' states and KPIs commit in one transaction. ADMIN+.
    #[graphql(guard = "PermissionGuard(Permission::Ingest)")]
    async fn record_call_events(
        &self,
        ctx: &Context<'_>,
        events: Vec<CallEventInput>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<RecordCallEventsPayload> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let inputs: Vec<EventInput> = events.into_iter().map(Into::into).collect();
        let results = ingest::record_events(state(ctx)?, principal(ctx)?, &tenant, inputs, request_id(ctx)).await?;
        let count = |f: fn(&EventStatus) -> bool| {
            i32::try_from(results.iter().filter(|r| f(&r.status)).count()).unwrap_or(i32::MAX)
        };
        Ok(RecordCallEventsPayload {
            accepted: count(|s| *s == EventStatus::Accepted),
            duplicates: count(|s| *s == EventStatus::Duplicate),
            rejected: count(|s| matches!(s, EventStatus::Rejected(_))),
            results: results
                .into_iter()
                .map(|r| {
                    let (status, reason) = match r.status {
                        EventStatus::Accepted => (CallEventStatus::Accepted, None),
                        EventStatus::Duplicate => (CallEventStatus::Duplicate, None),
                        EventStatus::Rejected(reason) => (CallEventStatus::Rejected, Some(reason)),
                    };
                    CallEventResult {
                        index: i32::try_from(r.index).unwrap_or(i32::MAX),
                        external_id: r.external_id,
                        status,
                        reason,
                        interaction_id: r.interaction_id.map(|id| ID(id.to_string())),
                    }
                })
                .collect(),
        })
    }

    /// Sets a call's disposition (and notes); KPIs follow. AGENT: their own calls;
    /// SUPERVISOR+: any call. Audited.
    #[graphql(guard = "PermissionGuard(Permission::ActAsAgent)")]
    async fn set_disposition(
        &self,
        ctx: &Context<'_>,
        interaction_id: ID,
        disposition_code: String,
        notes: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Interaction> {
        let interaction_id = parse_id(&interaction_id, "interactionId")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let app = state(ctx)?;
        let row = ingest::set_disposition(
            app,
            caller,
            &tenant,
            interaction_id,
            &disposition_code,
            notes,
            request_id(ctx),
        )
        .await?;
        let mut conn = app.db.get(&tenant).await?;
        let scope = CallScope::of(&mut conn, caller, &tenant).await?;
        one(to_output(&mut conn, &tenant, scope, vec![row]).await?)
    }

    /// Sets the organization's Twilio Account SID and/or auth token. ADMIN+. Audited (the
    /// record says whether the token changed, never what it is).
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn update_telephony_settings(
        &self,
        ctx: &Context<'_>,
        input: TelephonySettingsInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<TelephonySettings> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let view = ingest::update_telephony_settings(
            state(ctx)?,
            principal(ctx)?,
            &tenant,
            input.twilio_account_sid,
            input.twilio_auth_token,
            request_id(ctx),
        )
        .await?;
        telephony_output(ctx, &tenant, view).await
    }
}
