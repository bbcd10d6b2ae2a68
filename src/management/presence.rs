//! Agent presence: what the agent chose (available, break, lunch…), kept apart from the routing
//! state the telephony events drive.
//!
//! # Rules of `setAgentPresence`
//! * Who: an AGENT sets their own presence (the agent profile linked to their user); naming
//!   another agent is FORBIDDEN. SUPERVISOR+ may set any agent of the organization; a change of
//!   someone else's presence is audited as `agent.presence_forced`, one's own as
//!   `agent.presence`. A caller without an agent profile who names none gets NOT_FOUND.
//! * A deactivated agent cannot change presence (BAD_USER_INPUT).
//! * `reason`: AVAILABLE and OFFLINE take none. Another presence takes one of the
//!   organization's active reason codes **for that presence**; it is required when the
//!   organization has at least one such code, and must be absent when it has none.
//! * Going OFFLINE is refused while the agent is RINGING, ON_CALL or in WRAP_UP: logging out
//!   mid-call would leave the call without an owner (finish the call and its wrap-up first).
//!   Other presences are accepted during a call: they take effect for routing after it.
//! * The same presence with the same reason is a no-op: nothing is written, logged or
//!   published, and the current state is returned.
//! * A change closes the open PRESENCE interval of the agent state log and opens the new one
//!   (rollups updated), updates the agent row and writes the audit record, in one transaction;
//!   the change is published on the agent-state topic after commit.

use chrono::Utc;
use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::contact_centre::{self as cc, NewStateInterval};
use crate::db::presence::{self as db_presence, ReasonCodeRow};
use crate::domain::{AgentState, Presence};
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::{AgentStateChange, BusEvent};
use crate::state::AppState;

/// What a call to [`set_presence`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    pub agent_id: Uuid,
    /// False for a no-op (same presence and reason).
    pub changed: bool,
}

/// Checks `reason` against the presence and the organization's codes; the error names the
/// `reason` argument.
pub fn check_reason(presence: Presence, reason: Option<&str>, codes: &[ReasonCodeRow]) -> Result<(), FieldError> {
    let usable: Vec<&ReasonCodeRow> = codes
        .iter()
        .filter(|c| c.active && c.presence == presence.as_str())
        .collect();
    match reason {
        Some(_) if !presence.takes_reason() => Err(FieldError::new(
            "reason",
            format!("{} takes no reason", presence.as_str()),
        )),
        Some(code) if usable.iter().any(|c| c.code == code) => Ok(()),
        Some(_) if usable.is_empty() => Err(FieldError::new(
            "reason",
            format!("the organization has no reason codes for {}", presence.as_str()),
        )),
        Some(_) => Err(FieldError::new(
            "reason",
            format!(
                "unknown reason code for {}; one of: {}",
                presence.as_str(),
                usable.iter().map(|c| c.code.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
        None if presence.takes_reason() && !usable.is_empty() => Err(FieldError::new(
            "reason",
            format!("a reason code is required for {}", presence.as_str()),
        )),
        None => Ok(()),
    }
}

/// `setAgentPresence` (see the module documentation for the rules).
pub async fn set_presence(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    agent_id: Option<Uuid>,
    presence: Presence,
    reason: Option<String>,
    request_id: Option<String>,
) -> AppResult<PresenceChange> {
    let mut conn = state.db.get(tenant).await?;
    let own_agent = cc::agent_of_user(&mut conn, tenant, principal.user_id).await?;
    let target = match (agent_id, own_agent) {
        (Some(id), _) => id,
        (None, Some(own)) => own,
        (None, None) => return Err(AppError::NotFound("you have no agent profile; name an agentId".into())),
    };
    let forced = own_agent != Some(target);
    if forced && principal.role < Role::Supervisor {
        return Err(AppError::Forbidden(
            "requires role SUPERVISOR or higher to set another agent's presence".into(),
        ));
    }
    let codes = if presence.takes_reason() || reason.is_some() {
        db_presence::reason_codes(&mut conn, tenant).await?
    } else {
        Vec::new()
    };
    check_reason(presence, reason.as_deref(), &codes).map_err(|e| AppError::invalid_fields(vec![e]))?;

    let changed = conn
        .transaction(async |conn| -> AppResult<bool> {
            let row = db_presence::lock_agent(conn, tenant, target)
                .await?
                .ok_or_else(|| AppError::NotFound("agent not found".into()))?;
            if !row.active {
                return Err(AppError::invalid_fields(vec![FieldError::new(
                    "agentId",
                    "the agent is deactivated",
                )]));
            }
            if row.presence == presence.as_str() && row.presence_reason == reason {
                return Ok(false);
            }
            if presence == Presence::Offline && row.routing_state != "IDLE" {
                return Err(AppError::invalid_fields(vec![FieldError::new(
                    "presence",
                    format!(
                        "cannot go OFFLINE while {}: finish the call and its wrap-up first",
                        row.routing_state
                    ),
                )]));
            }
            let now = Utc::now();
            let mut intervals = Vec::with_capacity(2);
            if let Some(open) = db_presence::take_open_presence_interval(conn, tenant, target).await? {
                intervals.push(NewStateInterval {
                    agent_id: target,
                    state: AgentState::Presence(Presence::from_stored(&open.state)?),
                    reason: open.reason,
                    // A clock step backwards must not make an interval end before it started.
                    started_at: open.started_at.min(now),
                    ended_at: Some(now),
                });
            }
            intervals.push(NewStateInterval {
                agent_id: target,
                state: AgentState::Presence(presence),
                reason: reason.clone(),
                started_at: now,
                ended_at: None,
            });
            crate::kpi::writer::insert_state_intervals(conn, tenant, &intervals).await?;
            db_presence::set_presence(conn, tenant, target, presence.as_str(), reason.as_deref(), now).await?;
            let event = AuditEvent::new(
                Some(tenant.org_id()),
                Some(Actor::of(principal)),
                if forced {
                    "agent.presence_forced"
                } else {
                    "agent.presence"
                },
            )
            .target("agent", target)
            .details(serde_json::json!({
                "before": { "presence": row.presence, "reason": row.presence_reason },
                "after": { "presence": presence.as_str(), "reason": reason },
                "forced": forced,
            }))
            .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(true)
        })
        .await?;
    if changed {
        state.bus.publish(
            tenant.org_id(),
            BusEvent::AgentState {
                agent_id: target,
                change: AgentStateChange::Presence {
                    state: presence,
                    reason,
                },
            },
        );
    }
    Ok(PresenceChange {
        agent_id: target,
        changed,
    })
}

/// Creates or updates a reason code (ADMIN+; audited). Codes are never deleted — deactivate
/// them — so the state log's reasons keep their meaning.
pub async fn upsert_reason_code(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    row: ReasonCodeRow,
    request_id: Option<String>,
) -> AppResult<ReasonCodeRow> {
    let mut errors = Vec::new();
    let code_ok = (1..=64).contains(&row.code.len())
        && row
            .code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !code_ok {
        errors.push(FieldError::new("code", "1 to 64 characters: A-Z, 0-9 and _"));
    }
    let label_len = row.label.chars().count();
    if !(1..=200).contains(&label_len) {
        errors.push(FieldError::new("label", "1 to 200 characters"));
    }
    match Presence::parse(&row.presence) {
        Some(p) if p.takes_reason() => {}
        _ => errors.push(FieldError::new(
            "presence",
            "AVAILABLE and OFFLINE take no reason codes",
        )),
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| -> AppResult<()> {
        let before = db_presence::upsert_reason_code(conn, tenant, &row).await?;
        let describe =
            |r: &ReasonCodeRow| serde_json::json!({ "presence": r.presence, "label": r.label, "active": r.active });
        let event = AuditEvent::new(
            Some(tenant.org_id()),
            Some(Actor::of(principal)),
            "presence_reason_code.upsert",
        )
        .target("presence_reason_code", &row.code)
        .details(serde_json::json!({ "before": before.as_ref().map(describe), "after": describe(&row) }))
        .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: &str, presence: &str, active: bool) -> ReasonCodeRow {
        ReasonCodeRow {
            code: code.into(),
            presence: presence.into(),
            label: code.into(),
            active,
        }
    }

    #[test]
    fn reasons_follow_the_rules() {
        let codes = vec![code("COFFEE", "BREAK", true), code("OLD", "BREAK", false)];
        assert!(check_reason(Presence::Break, Some("COFFEE"), &codes).is_ok());
        assert!(check_reason(Presence::Break, Some("OLD"), &codes).is_err(), "inactive");
        assert!(check_reason(Presence::Break, None, &codes).is_err(), "required");
        assert!(
            check_reason(Presence::Lunch, Some("COFFEE"), &codes).is_err(),
            "other presence"
        );
        assert!(check_reason(Presence::Lunch, None, &codes).is_ok(), "no LUNCH codes");
        assert!(check_reason(Presence::Available, Some("COFFEE"), &codes).is_err());
        assert!(check_reason(Presence::Offline, None, &codes).is_ok());
    }
}
