//! The organization and its business settings.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::Stream;

use crate::auth::{Permission, Tenant};
use crate::db::models::{OrgRow, SettingsRow};
use crate::db::orgs;
use crate::domain::ServiceLevelVariant;
use crate::error::AppResult;
use crate::graphql::context::{principal, request_id, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::management::settings::{self as manage, BusinessHoursInterval, SettingsPatch};
use crate::realtime::bus::Received;
use crate::realtime::Topic;
use crate::state::AppState;

/// A tenant: a contact centre with its time zone and business settings.
pub struct Organization {
    row: OrgRow,
    tenant: Tenant,
    /// Reached through the platform's list: reading its tenant data goes through
    /// `tenant_for`, which audits a cross-tenant access.
    listed: bool,
}

impl Organization {
    pub(crate) fn new(row: OrgRow, tenant: Tenant) -> Self {
        Self {
            row,
            tenant,
            listed: false,
        }
    }

    /// An organization of the platform's list (`organizations`): no access granted yet.
    pub(crate) fn listed(row: OrgRow) -> Self {
        let tenant = Tenant::for_system(row.id);
        Self {
            row,
            tenant,
            listed: true,
        }
    }
}

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn slug(&self) -> &str {
        &self.row.slug
    }
    async fn name(&self) -> &str {
        &self.row.name
    }
    /// IANA time zone; day, week and month buckets of every KPI follow it.
    async fn timezone(&self) -> &str {
        &self.row.timezone
    }
    async fn locale(&self) -> &str {
        &self.row.locale
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// Set while the organization is suspended (its users and keys are then refused with
    /// ORGANIZATION_SUSPENDED, so in practice only platform staff read it).
    async fn suspended_at(&self) -> Option<DateTime<Utc>> {
        self.row.suspended_at
    }
    async fn suspension_reason(&self) -> Option<&str> {
        self.row.suspension_reason.as_deref()
    }
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn business_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<BusinessSettings> {
        let tenant = if self.listed {
            tenant_for(ctx, Some(&ID(self.row.id.to_string()))).await?
        } else {
            self.tenant
        };
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let row = orgs::settings(&mut conn, &tenant).await?;
        Ok(BusinessSettings::new(row, self.row.timezone.clone())?)
    }
}

#[derive(SimpleObject, Clone)]
pub struct BusinessHours {
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    weekday: i32,
    /// `HH:MM`, organization time zone.
    open: String,
    /// `HH:MM` (24:00 = midnight at the end of the day), organization time zone.
    close: String,
}

/// The organization's KPI and operating settings. `version` increases by one on every
/// change; `updateBusinessSettings` must name the version it read.
#[derive(SimpleObject)]
pub struct BusinessSettings {
    version: i32,
    timezone: String,
    /// T of service level: answered within this many seconds counts as "in service".
    service_level_threshold_seconds: i32,
    service_level_target_percent: f64,
    service_level_variant: ServiceLevelVariant,
    /// Abandons that waited less than this are "short" (excluded by the default SL variant).
    short_abandon_seconds: i32,
    max_abandon_rate_percent: f64,
    wrap_up_limit_seconds: i32,
    business_hours: Vec<BusinessHours>,
    holidays: Vec<NaiveDate>,
    data_retention_days: i32,
    /// When true, abandon rate = (abandoned − short abandoned) / (offered − short abandoned).
    exclude_short_abandons_from_abandon_rate: bool,
    /// When true, short abandons leave the service level's numerator and denominator, in the
    /// variants that count abandons and do not already decide (every service-level value
    /// reports what was applied: `KpiValues.serviceLevelExcludesShortAbandons`).
    exclude_short_abandons_from_service_level: bool,
    /// When true, every read of other agents' performance (`agentPerformance` by a
    /// SUPERVISOR or above) leaves an `agent.performance_read` audit record.
    audit_performance_reads: bool,
    /// The earliest time a call or call event may carry (ingest and the history import refuse
    /// anything earlier); null: the organization's creation (`organization.createdAt`). An
    /// earlier horizon lets a contact centre import its history from another system.
    history_horizon: Option<DateTime<Utc>>,
    /// When true, a SUPERVISOR sees and manages every agent of the organization; when false
    /// (the default), only the agents of the teams they supervise.
    supervisors_see_all_agents: bool,
    updated_at: DateTime<Utc>,
}

impl BusinessSettings {
    fn new(row: SettingsRow, timezone: String) -> AppResult<Self> {
        Ok(Self {
            version: row.version,
            timezone,
            service_level_threshold_seconds: row.service_level_threshold_seconds,
            service_level_target_percent: row.service_level_target_percent,
            service_level_variant: ServiceLevelVariant::from_stored(&row.service_level_variant)?,
            short_abandon_seconds: row.short_abandon_seconds,
            max_abandon_rate_percent: row.max_abandon_rate_percent,
            wrap_up_limit_seconds: row.wrap_up_limit_seconds,
            business_hours: manage::business_hours(&row)
                .into_iter()
                .map(|b| BusinessHours {
                    weekday: b.weekday,
                    open: b.open,
                    close: b.close,
                })
                .collect(),
            holidays: manage::holidays(&row),
            data_retention_days: row.data_retention_days,
            exclude_short_abandons_from_abandon_rate: row.exclude_short_abandons_from_abandon_rate,
            exclude_short_abandons_from_service_level: row.exclude_short_abandons_from_service_level,
            audit_performance_reads: row.audit_performance_reads,
            history_horizon: row.history_horizon,
            supervisors_see_all_agents: row.supervisors_see_all_agents,
            updated_at: row.updated_at,
        })
    }
}

#[derive(InputObject)]
pub struct BusinessHoursInput {
    weekday: i32,
    open: String,
    close: String,
}

/// A partial update: omitted fields keep their value. Lists replace the stored list.
#[derive(InputObject, Default)]
pub struct BusinessSettingsInput {
    timezone: Option<String>,
    service_level_threshold_seconds: Option<i32>,
    service_level_target_percent: Option<f64>,
    service_level_variant: Option<ServiceLevelVariant>,
    short_abandon_seconds: Option<i32>,
    max_abandon_rate_percent: Option<f64>,
    wrap_up_limit_seconds: Option<i32>,
    business_hours: Option<Vec<BusinessHoursInput>>,
    holidays: Option<Vec<NaiveDate>>,
    data_retention_days: Option<i32>,
    exclude_short_abandons_from_abandon_rate: Option<bool>,
    /// Refused (BAD_USER_INPUT) as `true` under a variant that already decides: the default
    /// (always excluded) and ANSWERED_WITHIN_OVER_ANSWERED (abandons never count).
    exclude_short_abandons_from_service_level: Option<bool>,
    /// Audit every read of other agents' performance.
    audit_performance_reads: Option<bool>,
    /// Not in the future; null: back to the organization's creation. Calls already stored
    /// stay whatever the horizon.
    history_horizon: MaybeUndefined<DateTime<Utc>>,
    /// Widens a SUPERVISOR's agent scope from the teams they supervise to every agent.
    supervisors_see_all_agents: Option<bool>,
}

impl From<BusinessSettingsInput> for SettingsPatch {
    fn from(input: BusinessSettingsInput) -> Self {
        SettingsPatch {
            timezone: input.timezone,
            service_level_threshold_seconds: input.service_level_threshold_seconds,
            service_level_target_percent: input.service_level_target_percent,
            service_level_variant: input.service_level_variant,
            short_abandon_seconds: input.short_abandon_seconds,
            max_abandon_rate_percent: input.max_abandon_rate_percent,
            wrap_up_limit_seconds: input.wrap_up_limit_seconds,
            business_hours: input.business_hours.map(|hours| {
                hours
                    .into_iter()
                    .map(|h| BusinessHoursInterval {
                        weekday: h.weekday,
                        open: h.open,
                        close: h.close,
                    })
                    .collect()
            }),
            holidays: input.holidays,
            data_retention_days: input.data_retention_days,
            exclude_short_abandons_from_abandon_rate: input.exclude_short_abandons_from_abandon_rate,
            exclude_short_abandons_from_service_level: input.exclude_short_abandons_from_service_level,
            audit_performance_reads: input.audit_performance_reads,
            history_horizon: match input.history_horizon {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(at) => Some(Some(at)),
            },
            supervisors_see_all_agents: input.supervisors_see_all_agents,
        }
    }
}

async fn load_settings(state: &AppState, tenant: &Tenant) -> AppResult<BusinessSettings> {
    let mut conn = state.db.get(tenant).await?;
    let org = orgs::get(&mut conn, tenant).await?;
    let row = orgs::settings(&mut conn, tenant).await?;
    BusinessSettings::new(row, org.timezone)
}

#[derive(Default)]
pub struct OrgQuery;

#[Object]
impl OrgQuery {
    /// The caller's organization (SUPER_ADMIN: any, by `orgId`; audited).
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn organization(&self, ctx: &Context<'_>, org_id: Option<ID>) -> async_graphql::Result<Organization> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let row = orgs::get(&mut conn, &tenant).await?;
        Ok(Organization::new(row, tenant))
    }
}

#[derive(Default)]
pub struct OrgMutation;

#[Object]
impl OrgMutation {
    /// Updates business settings. ADMIN+. Field-level BAD_USER_INPUT for invalid values;
    /// CONFLICT when `expectedVersion` is not the stored version. Audited with before/after.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn update_business_settings(
        &self,
        ctx: &Context<'_>,
        input: BusinessSettingsInput,
        expected_version: i32,
        org_id: Option<ID>,
    ) -> async_graphql::Result<BusinessSettings> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let (org, row) = manage::update(
            state(ctx)?,
            caller,
            &tenant,
            input.into(),
            expected_version,
            request_id(ctx),
        )
        .await?;
        Ok(BusinessSettings::new(row, org.timezone)?)
    }
}

#[derive(Default)]
pub struct OrgSubscription;

#[Subscription]
impl OrgSubscription {
    /// The business settings now, then again after every change (re-read from the database,
    /// so a missed notice never leaves a stale value).
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn business_settings_changed(
        &self,
        ctx: &Context<'_>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<BusinessSettings>>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let state = state(ctx)?.clone();
        let mut events = state.bus.receiver(&[Topic::Settings]);
        Ok(async_stream::stream! {
            yield load_settings(&state, &tenant).await.map_err(Into::into);
            loop {
                match events.recv().await {
                    Received::Event(event) if event.organization_id == tenant.org_id() => {
                        yield load_settings(&state, &tenant).await.map_err(Into::into);
                    }
                    Received::Event(_) => {}
                    // Fell behind or the bus reconnected: the current state is all that matters.
                    Received::Resync => yield load_settings(&state, &tenant).await.map_err(Into::into),
                    Received::Closed => break,
                }
            }
        })
    }
}
