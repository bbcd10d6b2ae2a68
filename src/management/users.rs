//! User management with the rules of DESIGN.md §4: nobody grants a role above their own or
//! changes a user who ranks above them, and an organization's last active ADMIN can be neither
//! demoted nor deactivated.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{password, Principal, Role, Tenant};
use crate::db::models::UserRow;
use crate::db::{tokens, users};
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;

pub struct NewUserInput {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
}

fn refuse_grant_above_own(principal: &Principal, role: Role) -> AppResult<()> {
    if role > principal.role {
        return Err(AppError::Forbidden(format!(
            "cannot grant role {role}: it is above your own ({})",
            principal.role
        )));
    }
    Ok(())
}

fn refuse_change_of_higher(principal: &Principal, target: &UserRow) -> AppResult<()> {
    if target.role > principal.role {
        return Err(AppError::Forbidden(format!(
            "cannot change a user whose role ({}) is above your own",
            target.role
        )));
    }
    Ok(())
}

/// Refuses when `target` is the last active ADMIN of the tenant. Locks the admin rows so two
/// concurrent demotions of the last two admins cannot both pass.
async fn refuse_removing_last_admin(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    target: &UserRow,
    what: &str,
) -> AppResult<()> {
    if target.role != Role::Admin || !target.active {
        return Ok(());
    }
    let admins = users::lock_active_admins(conn, tenant).await?;
    if admins.iter().all(|id| *id == target.id) {
        return Err(AppError::Conflict(format!(
            "cannot {what} the last active ADMIN of the organization"
        )));
    }
    Ok(())
}

/// After a commit that changes what a user may do: this instance forgets the cached row, and
/// every instance's sockets of that user check their credentials at once (a deactivated or
/// demoted user's sockets close 4403 within moments, not at the next periodic check).
pub(crate) fn access_changed(state: &AppState, tenant: &Tenant, user_id: Uuid) {
    state.user_cache.evict(user_id);
    state.bus.publish(
        tenant.org_id(),
        crate::realtime::BusEvent::UserAccessChanged { user_id },
    );
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn validate_new_user(input: &NewUserInput) -> Vec<FieldError> {
    let mut errors = validate_identity(&input.email, &input.display_name);
    if let Err(reason) = password::check_strength(&input.password) {
        errors.push(FieldError::new("input.password", reason));
    }
    errors
}

/// The e-mail address and display name of a new user (created or invited).
pub(crate) fn validate_identity(email: &str, display_name: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let email = normalize_email(email);
    let looks_like_email = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    });
    if !looks_like_email || email.len() > 254 || email.chars().any(char::is_whitespace) {
        errors.push(FieldError::new("input.email", "must be an e-mail address"));
    }
    let name = display_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("input.displayName", "must be 1 to 200 characters"));
    }
    errors
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewUserInput,
    request_id: Option<String>,
) -> AppResult<UserRow> {
    refuse_grant_above_own(principal, input.role)?;
    let errors = validate_new_user(&input);
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let email = normalize_email(&input.email);
    let display_name = input.display_name.trim().to_owned();
    let hash = password::hash(input.password).await?;
    let mut conn = state.db.get(tenant).await?;
    conn.transaction(async |conn| {
        let user = users::insert(conn, tenant, &email, &display_name, input.role, &hash).await?;
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "user.create")
            .target("user", user.id)
            .details(serde_json::json!({ "email": user.email, "role": user.role.as_str() }))
            .request_id(request_id);
        audit::record(conn, event).await?;
        Ok(user)
    })
    .await
}

pub async fn change_role(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    user_id: Uuid,
    role: Role,
    request_id: Option<String>,
) -> AppResult<UserRow> {
    refuse_grant_above_own(principal, role)?;
    let mut conn = state.db.get(tenant).await?;
    let user = conn
        .transaction(async |conn| -> AppResult<UserRow> {
            let target = users::get_for_update(conn, tenant, user_id).await?;
            refuse_change_of_higher(principal, &target)?;
            if target.role == role {
                return Ok(target);
            }
            if role != Role::Admin {
                refuse_removing_last_admin(conn, tenant, &target, "demote").await?;
            }
            let updated = users::set_role(conn, tenant, user_id, role).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "user.role_change")
                .target("user", user_id)
                .details(serde_json::json!({ "before": target.role.as_str(), "after": role.as_str() }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(updated)
        })
        .await?;
    access_changed(state, tenant, user_id);
    Ok(user)
}

pub async fn deactivate(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    user_id: Uuid,
    request_id: Option<String>,
) -> AppResult<UserRow> {
    let mut conn = state.db.get(tenant).await?;
    let user = conn
        .transaction(async |conn| -> AppResult<UserRow> {
            let target = users::get_for_update(conn, tenant, user_id).await?;
            refuse_change_of_higher(principal, &target)?;
            if !target.active {
                return Ok(target);
            }
            refuse_removing_last_admin(conn, tenant, &target, "deactivate").await?;
            let updated = users::deactivate(conn, tenant, user_id).await?;
            let revoked = tokens::revoke_all_for_user(conn, user_id).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "user.deactivate")
                .target("user", user_id)
                .details(serde_json::json!({ "refreshTokensRevoked": revoked }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(updated)
        })
        .await?;
    access_changed(state, tenant, user_id);
    Ok(user)
}
