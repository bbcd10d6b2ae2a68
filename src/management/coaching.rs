//! Coaching sessions: a SUPERVISOR (of the agent, see [`crate::management::scope`]) or an
//! ADMIN schedules a session with an agent on a topic, with notes and the calls it talks
//! about; changes it while it is open; completes it with an outcome and an optional follow-up
//! date. The coached agent then acknowledges it. Each step writes its audit record in the
//! same transaction.
//!
//! A session or an agent outside the caller's scope is NOT_FOUND (as unknown as another
//! tenant's), so ids cannot be probed; a call of another organization is NOT_FOUND too.

use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::coaching::{self as rows, CoachingChanges, CoachingRow};
use crate::db::contact_centre as cc;
use crate::error::{AppError, AppResult, FieldError};
use crate::management::scope;

/// Calls one session may link.
pub const MAX_INTERACTIONS: usize = 50;
const MAX_TOPIC_CHARS: usize = 500;
const MAX_NOTES_CHARS: usize = 10_000;
const MAX_OUTCOME_CHARS: usize = 5_000;

pub struct NewSession {
    pub agent_id: Uuid,
    pub scheduled_at: DateTime<Utc>,
    pub topic: String,
    pub notes: Option<String>,
    pub interaction_ids: Vec<Uuid>,
}

/// A partial update: None keeps the stored value.
#[derive(Default)]
pub struct SessionPatch {
    pub scheduled_at: Option<DateTime<Utc>>,
    pub topic: Option<String>,
    /// Some("") clears the notes.
    pub notes: Option<String>,
    /// Replaces the linked calls.
    pub interaction_ids: Option<Vec<Uuid>>,
}

fn session_not_found() -> AppError {
    AppError::NotFound("coaching session not found".into())
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, text: &str, max: usize, required: bool) {
    let chars = text.trim().chars().count();
    if required && chars == 0 {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if chars > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
}

fn check_interactions(errors: &mut Vec<FieldError>, field: &str, ids: &[Uuid]) {
    if ids.len() > MAX_INTERACTIONS {
        errors.push(FieldError::new(field, format!("at most {MAX_INTERACTIONS} calls")));
    }
}

fn fail_on(errors: Vec<FieldError>) -> AppResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

fn dedup(ids: &[Uuid]) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

fn some_text(text: Option<&str>) -> Option<String> {
    text.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// Every id must be a call of the tenant; the first unknown one is NOT_FOUND.
async fn require_interactions(conn: &mut AsyncPgConnection, tenant: &Tenant, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = rows::existing_interactions(conn, tenant, ids).await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(AppError::NotFound(format!("interaction {missing} not found"))),
        None => Ok(()),
    }
}

/// A session the caller may manage, locked.
async fn managed_for_update(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
) -> AppResult<CoachingRow> {
    let row = rows::get_for_update(conn, tenant, id).await?;
    if !scope::can_coach(conn, principal, tenant, row.agent_id).await? {
        return Err(session_not_found());
    }
    Ok(row)
}

pub async fn create(
    state: &crate::state::AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewSession,
    request_id: Option<String>,
) -> AppResult<(CoachingRow, Vec<Uuid>)> {
    let mut errors = Vec::new();
    check_text(&mut errors, "input.topic", &input.topic, MAX_TOPIC_CHARS, true);
    if let Some(notes) = &input.notes {
        check_text(&mut errors, "input.notes", notes, MAX_NOTES_CHARS, false);
    }
    check_interactions(&mut errors, "input.interactionIds", &input.interaction_ids);
    fail_on(errors)?;
    let interaction_ids = dedup(&input.interaction_ids);
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let known = cc::existing_agents(conn, tenant, &[input.agent_id]).await?;
        if known.is_empty() || !scope::can_coach(conn, principal, tenant, input.agent_id).await? {
            return Err(AppError::NotFound("agent not found".into()));
        }
        require_interactions(conn, tenant, &interaction_ids).await?;
        let row = rows::insert(
            conn,
            tenant,
            input.agent_id,
            principal.user_id,
            input.topic.trim(),
            some_text(input.notes.as_deref()).as_deref(),
            input.scheduled_at,
        )
        .await?;
        rows::set_interactions(conn, tenant, row.id, &interaction_ids).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "coaching.create")
            .target("coaching_session", row.id)
            .details(serde_json::json!({
                "agentId": row.agent_id,
                "topic": row.topic,
                "scheduledAt": row.scheduled_at,
                "interactionIds": interaction_ids,
            }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok((row, interaction_ids.clone()))
    })
    .await
}

/// Changes an open session; a completed one is CONFLICT (its record stands as completed).
pub async fn update(
    state: &crate::state::AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    patch: SessionPatch,
    request_id: Option<String>,
) -> AppResult<CoachingRow> {
    let mut errors = Vec::new();
    if let Some(topic) = &patch.topic {
        check_text(&mut errors, "input.topic", topic, MAX_TOPIC_CHARS, true);
    }
    if let Some(notes) = &patch.notes {
        check_text(&mut errors, "input.notes", notes, MAX_NOTES_CHARS, false);
    }
    if let Some(ids) = &patch.interaction_ids {
        check_interactions(&mut errors, "input.interactionIds", ids);
    }
    fail_on(errors)?;
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let before = managed_for_update(conn, principal, tenant, id).await?;
        if before.completed_at.is_some() {
            return Err(AppError::Conflict("a completed coaching session cannot be changed".into()));
        }
        let changes = CoachingChanges {
            topic: patch.topic.as_deref().map(|t| t.trim().to_owned()),
            notes: patch.notes.as_deref().map(|n| some_text(Some(n))),
            scheduled_at: patch.scheduled_at,
        };
        let after = rows::update(conn, tenant, id, &changes).await?;
        let mut details = serde_json::json!({
            "before": { "topic": before.topic, "scheduledAt": before.scheduled_at, "notesChanged": false },
            "after": { "topic": after.topic, "scheduledAt": after.scheduled_at, "notesChanged": before.notes != after.notes },
        });
        if let Some(ids) = &patch.interaction_ids {
            let ids = dedup(ids);
            require_interactions(conn, tenant, &ids).await?;
            rows::set_interactions(conn, tenant, id, &ids).await?;
            details["after"]["interactionIds"] = serde_json::json!(ids);
        }
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "coaching.update")
            .target("coaching_session", id)
            .details(details)
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(after)
    })
    .await
}

/// Completes a session with its outcome and an optional follow-up date; CONFLICT when it is
/// completed already.
pub async fn complete(
    state: &crate::state::AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    outcome: &str,
    follow_up_on: Option<NaiveDate>,
    request_id: Option<String>,
) -> AppResult<CoachingRow> {
    let mut errors = Vec::new();
    check_text(&mut errors, "outcome", outcome, MAX_OUTCOME_CHARS, true);
    fail_on(errors)?;
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let before = managed_for_update(conn, principal, tenant, id).await?;
        if before.completed_at.is_some() {
            return Err(AppError::Conflict("this coaching session is already completed".into()));
        }
        if let Some(date) = follow_up_on {
            if date < before.scheduled_at.date_naive() {
                return Err(AppError::invalid_fields(vec![FieldError::new(
                    "followUpOn",
                    "must not be before the session",
                )]));
            }
        }
        let after = rows::complete(conn, tenant, id, outcome.trim(), follow_up_on).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "coaching.complete")
            .target("coaching_session", id)
            .details(serde_json::json!({ "agentId": after.agent_id, "followUpOn": after.follow_up_on }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(after)
    })
    .await
}

/// The coached agent acknowledges a completed session (idempotent). Only that agent may:
/// anyone else who can read the session is FORBIDDEN, anyone who cannot is NOT_FOUND; an
/// open session is CONFLICT.
pub async fn acknowledge(
    state: &crate::state::AppState,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<CoachingRow> {
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let row = rows::get_for_update(conn, tenant, id).await?;
        let own = cc::agent_of_user(conn, tenant, principal.user_id).await?;
        if own != Some(row.agent_id) {
            let readable = scope::coaching_readable(conn, principal, tenant).await?;
            return Err(if readable.contains(row.agent_id) {
                AppError::Forbidden("only the coached agent acknowledges a coaching session".into())
            } else {
                session_not_found()
            });
        }
        if row.completed_at.is_none() {
            return Err(AppError::Conflict(
                "a coaching session is acknowledged once it is completed".into(),
            ));
        }
        if row.acknowledged_at.is_some() {
            return Ok(row);
        }
        let after = rows::acknowledge(conn, tenant, id).await?;
        let event = AuditEvent::new(
            Some(tenant.org_id()),
            Some(Actor::of(principal)),
            "coaching.acknowledge",
        )
        .target("coaching_session", id)
        .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(after)
    })
    .await
}
