//! Row structs as diesel reads and writes them. GraphQL output types live in `graphql/` and are
//! built from these; a row never reaches a client directly (the password hash, for one).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::auth::Role;
use crate::db::schema::{audit_log, business_settings, organizations, refresh_tokens, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg))]
pub struct OrgRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub timezone: String,
    pub locale: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the organization is suspended: its users and keys are refused.
    pub suspended_at: Option<DateTime<Utc>>,
    pub suspension_reason: Option<String>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = business_settings, check_for_backend(diesel::pg::Pg))]
pub struct SettingsRow {
    pub organization_id: Uuid,
    pub version: i32,
    pub service_level_threshold_seconds: i32,
    pub service_level_target_percent: f64,
    pub service_level_variant: String,
    pub short_abandon_seconds: i32,
    pub max_abandon_rate_percent: f64,
    pub wrap_up_limit_seconds: i32,
    pub business_hours: serde_json::Value,
    pub holidays: Vec<Option<NaiveDate>>,
    pub data_retention_days: i32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    pub exclude_short_abandons_from_abandon_rate: bool,
    pub exclude_short_abandons_from_service_level: bool,
    pub audit_performance_reads: bool,
    /// The earliest time a call or event may carry; None: the organization's creation.
    pub history_horizon: Option<DateTime<Utc>>,
    pub supervisors_see_all_agents: bool,
}

/// The settings columns an update writes (everything but keys and bookkeeping). `None` writes
/// NULL (the history horizon back to the organization's creation).
#[derive(Clone, Debug, AsChangeset, serde::Serialize)]
#[diesel(table_name = business_settings, treat_none_as_null = true)]
pub struct SettingsChanges {
    pub service_level_threshold_seconds: i32,
    pub service_level_target_percent: f64,
    pub service_level_variant: String,
    pub short_abandon_seconds: i32,
    pub max_abandon_rate_percent: f64,
    pub wrap_up_limit_seconds: i32,
    pub business_hours: serde_json::Value,
    pub holidays: Vec<Option<NaiveDate>>,
    pub data_retention_days: i32,
    pub exclude_short_abandons_from_abandon_rate: bool,
    pub exclude_short_abandons_from_service_level: bool,
    pub audit_performance_reads: bool,
    pub history_horizon: Option<DateTime<Utc>>,
    pub supervisors_see_all_agents: bool,
}

impl SettingsRow {
    pub fn changes(&self) -> SettingsChanges {
        SettingsChanges {
            service_level_threshold_seconds: self.service_level_threshold_seconds,
            service_level_target_percent: self.service_level_target_percent,
            service_level_variant: self.service_level_variant.clone(),
            short_abandon_seconds: self.short_abandon_seconds,
            max_abandon_rate_percent: self.max_abandon_rate_percent,
            wrap_up_limit_seconds: self.wrap_up_limit_seconds,
            business_hours: self.business_hours.clone(),
            holidays: self.holidays.clone(),
            data_retention_days: self.data_retention_days,
            exclude_short_abandons_from_abandon_rate: self.exclude_short_abandons_from_abandon_rate,
            exclude_short_abandons_from_service_level: self.exclude_short_abandons_from_service_level,
            audit_performance_reads: self.audit_performance_reads,
            history_horizon: self.history_horizon,
            supervisors_see_all_agents: self.supervisors_see_all_agents,
        }
    }
}

/// A user row. Deliberately not `Debug`: it carries the password hash.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub active: bool,
    pub token_version: i32,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub organization_id: Uuid,
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: Vec<u8>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: i64,
    pub organization_id: Option<Uuid>,
    pub chain_seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
    pub client_addr: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditRow {
    pub organization_id: Option<Uuid>,
    pub chain_seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
    pub client_addr: Option<String>,
}
