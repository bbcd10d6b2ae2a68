//! Whose coaching a caller may manage and read: the one place that answers it.
//!
//! ADMIN and above: every agent of the organization. SUPERVISOR: the agents of the teams they
//! supervise, or every agent when the organization's `supervisorsSeeAllAgents` says so — the
//! same scope as agent management ([`crate::management::agents::scope_of`]), so whoever a
//! supervisor manages they coach. AGENT: only their own agent profile, and only to read and
//! acknowledge. VIEWER: nothing.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::{Principal, Role, Tenant};
use crate::db::agents as agent_rows;
use crate::db::contact_centre as cc;
use crate::error::AppResult;
use crate::management::agents;

/// The agents a caller's coaching rights reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentScope {
    /// Every agent of the organization.
    All,
    /// These agents only (possibly none).
    Only(Vec<Uuid>),
}

impl AgentScope {
    pub fn contains(&self, agent_id: Uuid) -> bool {
        match self {
            AgentScope::All => true,
            AgentScope::Only(ids) => ids.contains(&agent_id),
        }
    }
}

/// The agents a SUPERVISOR (or above) supervises: agent management's scope, as agent ids.
async fn supervised(conn: &mut AsyncPgConnection, principal: &Principal, tenant: &Tenant) -> AppResult<AgentScope> {
    Ok(match agents::scope_of(conn, tenant, principal).await? {
        agents::AgentScope::All => AgentScope::All,
        agents::AgentScope::Teams(teams) => AgentScope::Only(
            agent_rows::members_of_teams(conn, tenant, &teams)
                .await?
                .into_iter()
                .map(|agent| agent.id)
                .collect(),
        ),
        agents::AgentScope::Own(own) => AgentScope::Only(own.into_iter().collect()),
    })
}

/// Whose sessions the caller may create, change and complete (SUPERVISOR+).
pub async fn coaching_managed(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    tenant: &Tenant,
) -> AppResult<AgentScope> {
    if principal.role >= Role::Admin {
        return Ok(AgentScope::All);
    }
    if principal.role >= Role::Supervisor {
        return supervised(conn, principal, tenant).await;
    }
    Ok(AgentScope::Only(Vec::new()))
}

/// Whose sessions the caller may read: those they manage, and an AGENT their own.
pub async fn coaching_readable(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    tenant: &Tenant,
) -> AppResult<AgentScope> {
    if principal.role >= Role::Supervisor {
        return coaching_managed(conn, principal, tenant).await;
    }
    if principal.role >= Role::Agent {
        let own = cc::agent_of_user(conn, tenant, principal.user_id).await?;
        return Ok(AgentScope::Only(own.into_iter().collect()));
    }
    Ok(AgentScope::Only(Vec::new()))
}

/// Whether the caller may coach `agent_id` (create, change, complete its sessions).
pub async fn can_coach(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    tenant: &Tenant,
    agent_id: Uuid,
) -> AppResult<bool> {
    Ok(coaching_managed(conn, principal, tenant).await?.contains(agent_id))
}
