//! API key management: create (the secret is returned once), list, revoke.
//!
//! SUPERVISOR+ may create keys for their own organization, with scopes their own role holds
//! (never above it: a SUPERVISOR cannot mint `ingest:write`); they see and revoke the keys they
//! created. ADMIN+ see and revoke every key of the organization. A key never manages keys.
//! Creation and revocation are audited in the same transaction (never the secret). A
//! revocation is announced on the bus after commit, so every instance closes the key's open
//! sockets at once; the sockets' periodic re-check catches it anyway should the notice be lost.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::api_key::{self, Scope};
use crate::auth::{Permission, Principal, Tenant};
use crate::db::api_keys::{self as rows, ApiKeyRow, NewApiKey};
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::BusEvent;
use crate::state::AppState;

/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What a caller asks for.
pub struct NewKeyInput {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created key and its secret, which exists nowhere else.
pub struct CreatedKey {
    pub key: ApiKeyRow,
    pub secret: String,
}

/// Keys manage nothing, whatever their scopes (the schema's scope check refuses it first).
fn refuse_keys(principal: &Principal) -> AppResult<()> {
    if principal.api_key.is_some() {
        return Err(AppError::Forbidden("API keys cannot manage API keys".into()));
    }
    Ok(())
}

/// Validates the input; returns the scopes, sorted and without repeats.
fn validate(input: &NewKeyInput, now: DateTime<Utc>) -> AppResult<Vec<Scope>> {
    let mut errors = Vec::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if input.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "name at least one scope"));
    }
    let mut scopes = Vec::new();
    for (i, raw) in input.scopes.iter().enumerate() {
        match raw.trim().parse::<Scope>() {
            Ok(scope) => scopes.push(scope),
            Err(reason) => {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(FieldError::new(
                    format!("scopes[{i}]"),
                    format!("{reason}; known scopes: {}", known.join(", ")),
                ));
            }
        }
    }
    if input.expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new("expiresAt", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// Creates a key for the caller's organization. Returns the secret once.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    input: NewKeyInput,
    request_id: Option<String>,
) -> AppResult<CreatedKey> {
    refuse_keys(principal)?;
    let scopes = validate(&input, Utc::now())?;
    if let Some(scope) = scopes.iter().find(|scope| !principal.role.has(scope.permission())) {
        return Err(AppError::Forbidden(format!(
            "cannot grant scope {scope}: it needs role {} or higher, above your own ({})",
            scope.lowest_role(),
            principal.role
        )));
    }
    let tenant = Tenant::of(principal);
    let minted = api_key::generate();
    let digest = api_key::digest(&minted.secret);
    let name = input.name.trim().to_owned();
    let scope_names: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let mut conn = state.db.get(&tenant).await?;
    let key = conn
        .transaction(async |conn| -> AppResult<ApiKeyRow> {
            let key = rows::insert(
                conn,
                &tenant,
                NewApiKey {
                    created_by: principal.user_id,
                    name: &name,
                    prefix: &minted.prefix,
                    secret_hash: &digest,
                    scopes: scope_names.clone(),
                    expires_at: input.expires_at,
                },
            )
            .await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "api_key.create")
                .target("api_key", key.id)
                .details(serde_json::json!({
                    "name": key.name,
                    "prefix": key.prefix,
                    "scopes": scope_names,
                    "expiresAt": key.expires_at,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(key)
        })
        .await?;
    Ok(CreatedKey {
        key,
        secret: minted.secret,
    })
}

/// The keys the caller may see: ADMIN+ every key of the organization, others their own.
pub async fn list(state: &AppState, principal: &Principal, include_revoked: bool) -> AppResult<Vec<ApiKeyRow>> {
    refuse_keys(principal)?;
    let creator = (!principal.role.has(Permission::Administer)).then_some(principal.user_id);
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    rows::list(&mut conn, &Tenant::of(principal), creator, include_revoked).await
}

/// Revokes a key: refused from the next request on, and its open sockets close. A key of
/// another organization — or, below ADMIN, of another user — is NOT_FOUND. Revoking a revoked
/// key changes nothing.
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    key_id: Uuid,
    request_id: Option<String>,
) -> AppResult<ApiKeyRow> {
    refuse_keys(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let (key, changed) = conn
        .transaction(async |conn| -> AppResult<(ApiKeyRow, bool)> {
            let key = rows::get_for_update(conn, &tenant, key_id).await?;
            if !principal.role.has(Permission::Administer) && key.created_by != principal.user_id {
                return Err(AppError::NotFound("API key not found".into()));
            }
            if key.revoked_at.is_some() {
                return Ok((key, false));
            }
            let key = rows::revoke(conn, &tenant, key_id, principal.user_id).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "api_key.revoke")
                .target("api_key", key.id)
                .details(serde_json::json!({ "name": key.name, "prefix": key.prefix }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((key, true))
        })
        .await?;
    if changed {
        state
            .bus
            .publish(tenant.org_id(), BusEvent::ApiKeyRevoked { key_id: key.id });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, scopes: &[&str], expires_at: Option<DateTime<Utc>>) -> NewKeyInput {
        NewKeyInput {
            name: name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at,
        }
    }

    fn fields(error: AppError) -> Vec<String> {
        match error {
            AppError::BadUserInput { fields, .. } => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let now = Utc::now();
        let Err(error) = validate(
            &input(
                "  ",
                &["kpi:read", "root:all"],
                Some(now - chrono::TimeDelta::seconds(1)),
            ),
            now,
        ) else {
            panic!("accepted bad input");
        };
        assert_eq!(fields(error), vec!["name", "scopes[1]", "expiresAt"]);
        let Err(error) = validate(&input("BI", &[], None), now) else {
            panic!("accepted no scopes");
        };
        assert_eq!(fields(error), vec!["scopes"]);
    }

    #[test]
    fn good_input_gives_sorted_unique_scopes() {
        let now = Utc::now();
        let scopes = validate(
            &input("Wallboard", &["realtime:read", "kpi:read", "realtime:read"], None),
            now,
        );
        assert_eq!(scopes.ok(), Some(vec![Scope::KpiRead, Scope::RealtimeRead]));
    }
}
