//! The demo contact centre: teams, skills, agents, campaigns, dispositions, and a few days of
//! interactions and agent state history. Written once (skipped when the org already has teams).

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::error::AppResult;

pub async fn ensure(_conn: &mut AsyncPgConnection, _tenant: &Tenant, _agent_user: Option<Uuid>) -> AppResult<()> {
    Ok(())
}
