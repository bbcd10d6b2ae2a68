//! Downloads of a run's file: `GET /exports/{runId}` with the bearer credentials that may see
//! the run, or with a short-lived signed link (for e-mail, where the reader has no token).
//!
//! A link is `/exports/{runId}?org={orgId}&expires={unix seconds}&signature={hex}`, the
//! signature an HMAC-SHA256 of `runId:orgId:expires` under a key derived from the token secret
//! (`auth::jwt::JwtKeys::sign_link`): any instance that accepts the deployment's tokens accepts
//! its links, and nobody without the secret can make or change one. A link past its expiry or
//! whose any part was changed is FORBIDDEN, saying only that the link is invalid or expired.
//! Links are not stored; what they reach is bounded by their expiry and by the file's
//! retention. Every download writes an audit record (who, or which link, and what).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::report_runs::{self as rows, RunRow, SUCCEEDED};
use crate::error::{AppError, AppResult};
use crate::reports::{files, runs};
use crate::state::AppState;

/// The longest a signed link may live.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The path of a run's download (with bearer credentials).
pub fn path(run_id: Uuid) -> String {
    format!("/exports/{run_id}")
}

fn message(run_id: Uuid, org_id: Uuid, expires: i64) -> String {
    format!("{run_id}:{org_id}:{expires}")
}

/// The base URL links start with: the configured public URL, or this instance's address.
fn base_url(state: &AppState) -> String {
    state
        .settings
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.settings.bind))
}

/// A signed link to a run's file, valid for `ttl` (at most [`MAX_LINK_TTL`]), and when it
/// expires.
pub fn signed_link(state: &AppState, run_id: Uuid, org_id: Uuid, ttl: Duration) -> (String, DateTime<Utc>) {
    let ttl = chrono::Duration::from_std(ttl.min(MAX_LINK_TTL)).unwrap_or(chrono::Duration::hours(1));
    let expires_at = Utc::now() + ttl;
    let expires = expires_at.timestamp();
    let signature = state.jwt.sign_link(&message(run_id, org_id, expires));
    let url = format!(
        "{}{}?org={org_id}&expires={expires}&signature={signature}",
        base_url(state),
        path(run_id)
    );
    (url, expires_at)
}

/// The absolute signed URL of a run's file (for e-mails and webhooks).
pub fn signed_url(state: &AppState, run_id: Uuid, org_id: Uuid, ttl: Duration) -> String {
    signed_link(state, run_id, org_id, ttl).0
}

/// What a link presents.
#[derive(Debug, Clone)]
pub struct LinkParams {
    pub org: String,
    pub expires: String,
    pub signature: String,
}

fn invalid_link() -> AppError {
    AppError::Forbidden("this download link is invalid or has expired".into())
}

/// The organization a link is good for, if it is genuine and unexpired.
pub fn verify_link(state: &AppState, run_id: Uuid, link: &LinkParams, now: DateTime<Utc>) -> AppResult<Uuid> {
    let org_id = Uuid::parse_str(&link.org).map_err(|_| invalid_link())?;
    let expires: i64 = link.expires.parse().map_err(|_| invalid_link())?;
    if !state
        .jwt
        .verify_link(&message(run_id, org_id, expires), &link.signature)
    {
        return Err(invalid_link());
    }
    if now.timestamp() >= expires {
        return Err(invalid_link());
    }
    Ok(org_id)
}

/// How a download is authorized.
pub enum Credential<'a> {
    Caller(&'a Principal),
    Link(&'a LinkParams),
}

/// A run's file ready to stream: its run (for the name and type) and the tenant to read it as.
pub struct Download {
    pub run: RunRow,
    pub tenant: Tenant,
}

/// Checks a download and records it; the chunks are then read with [`files::chunk`].
pub async fn open(
    state: &AppState,
    run_id: Uuid,
    credential: Credential<'_>,
    request_id: Option<String>,
) -> AppResult<Download> {
    let (run, tenant, actor, via) = match credential {
        Credential::Caller(principal) => {
            let run = runs::get(state, principal, run_id).await?;
            let actor = Actor::of(principal);
            (run, Tenant::of(principal), Some(actor), "token")
        }
        Credential::Link(link) => {
            let org_id = verify_link(state, run_id, link, Utc::now())?;
            let tenant = Tenant::for_system(org_id);
            let mut conn = state.db.get(&tenant).await?;
            let run = rows::get(&mut conn, &tenant, run_id)
                .await?
                .ok_or_else(runs::not_found)?;
            (run, tenant, None, "signed link")
        }
    };
    if run.status != SUCCEEDED {
        return Err(AppError::Conflict(format!(
            "the run is {}: there is a file only once it has succeeded",
            run.status
        )));
    }
    if run.expires_at.is_none_or(|at| at <= Utc::now()) {
        return Err(files::missing());
    }
    let event = AuditEvent::new(Some(tenant.org_id()), actor, "report.download")
        .target("report_run", run.id)
        .details(json!({
            "reportId": run.report_id,
            "format": run.format,
            "bytes": run.bytes,
            "via": via,
        }))
        .request_id(request_id);
    let mut conn = state.db.get(&tenant).await?;
    conn.transaction(async |conn| audit::record(conn, event).await).await?;
    Ok(Download { run, tenant })
}

#[cfg(test)]
mod tests {
    use super::message;
    use uuid::Uuid;

    #[test]
    fn the_signed_message_names_run_org_and_expiry() {
        let run = Uuid::from_u128(1);
        let org = Uuid::from_u128(2);
        assert_eq!(message(run, org, 1_800_000_000), format!("{run}:{org}:1800000000"));
    }
}
