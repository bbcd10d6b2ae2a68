//! Campaigns and disposition codes: `campaigns`, `dispositions` (read by every role, as the
//! context that names what KPIs and calls refer to) and their management mutations (ADMIN+).
//! The rules and the re-statement of the rollups are in `management::catalog`.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};

use crate::auth::Permission;
use crate::db::catalog::{self as rows, CampaignRow, DispositionRow};
use crate::domain::{CampaignStatus, DialMode, Direction};
use crate::error::AppResult;
use crate::graphql::context::{parse_id, principal, request_id, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::management::catalog::{
    self as manage, CampaignPatch, DispositionFlags, DispositionPatch, NewCampaignInput, NewDispositionInput,
};

/// A campaign: the calls it groups, how it dials, and its overrides of the organization's
/// business settings (null: the organization's value applies). Reached only through guarded
/// root fields.
pub struct Campaign(pub CampaignRow);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn direction(&self) -> AppResult<Direction> {
        Direction::from_stored(&self.0.direction)
    }
    /// OUTBOUND campaigns only.
    async fn dial_mode(&self) -> AppResult<Option<DialMode>> {
        self.0.dial_mode.as_deref().map(DialMode::from_stored).transpose()
    }
    async fn status(&self) -> AppResult<CampaignStatus> {
        CampaignStatus::from_stored(&self.0.status)
    }
    /// Overrides the organization's service-level threshold for this campaign's calls.
    async fn service_level_threshold_seconds(&self) -> Option<i32> {
        self.0.service_level_threshold_seconds
    }
    async fn service_level_target_percent(&self) -> Option<f64> {
        self.0.service_level_target_percent
    }
    /// The outbound abandon limit of the compliance rules (3 % when null).
    async fn max_abandon_rate_percent(&self) -> Option<f64> {
        self.0.max_abandon_rate_percent
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A disposition (wrap-up) code and the flags that drive metrics: `contact` counts in the
/// contact rate, `success` in the conversion rate. Reached only through guarded root fields.
pub struct Disposition(pub DispositionRow);

#[Object]
impl Disposition {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn label(&self) -> &str {
        &self.0.label
    }
    async fn human_answered(&self) -> bool {
        self.0.human_answered
    }
    async fn contact(&self) -> bool {
        self.0.contact
    }
    async fn success(&self) -> bool {
        self.0.success
    }
    async fn callback(&self) -> bool {
        self.0.callback
    }
    async fn do_not_call(&self) -> bool {
        self.0.do_not_call
    }
    async fn answering_machine(&self) -> bool {
        self.0.answering_machine
    }
    /// Inactive codes keep their calls but are no longer offered to agents.
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The organization's campaigns by name; ARCHIVED ones only with `includeArchived`.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_archived: bool,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Vec<Campaign>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let list = rows::campaigns(&mut conn, &tenant, include_archived).await?;
        Ok(list.into_iter().map(Campaign).collect())
    }

    /// The organization's disposition codes by code; inactive ones only with `includeInactive`.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn dispositions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_inactive: bool,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Vec<Disposition>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let list = rows::dispositions(&mut conn, &tenant, include_inactive).await?;
        Ok(list.into_iter().map(Disposition).collect())
    }
}

#[derive(InputObject)]
pub struct CreateCampaignInput {
    /// 1 to 200 characters, unique in the organization.
    pub name: String,
    /// Fixed once created.
    pub direction: Direction,
    /// OUTBOUND campaigns only.
    pub dial_mode: Option<DialMode>,
    /// ACTIVE (default) or PAUSED.
    pub status: Option<CampaignStatus>,
    /// 1 to 3600; null: the organization's threshold.
    pub service_level_threshold_seconds: Option<i32>,
    /// 0 to 100; null: the organization's target.
    pub service_level_target_percent: Option<f64>,
    /// 0 to 100; null: 3 %, the regulators' limit.
    pub max_abandon_rate_percent: Option<f64>,
}

/// Omitted fields stay as they are; an override set to null is cleared.
#[derive(InputObject)]
pub struct UpdateCampaignInput {
    pub name: Option<String>,
    pub dial_mode: MaybeUndefined<DialMode>,
    /// ACTIVE or PAUSED (`archiveCampaign` archives).
    pub status: Option<CampaignStatus>,
    /// A change re-states the campaign's service-level counters in the rollups.
    pub service_level_threshold_seconds: MaybeUndefined<i32>,
    pub service_level_target_percent: MaybeUndefined<f64>,
    pub max_abandon_rate_percent: MaybeUndefined<f64>,
}

#[derive(InputObject)]
pub struct CreateDispositionInput {
    /// 1 to 64 of A-Z, 0-9 and _ (lower case is raised), unique in the organization; fixed once
    /// created.
    pub code: String,
    pub label: String,
    /// `contact` needs `humanAnswered`, `success` needs `contact`, `answeringMachine` excludes
    /// `humanAnswered`.
    #[graphql(default)]
    pub human_answered: bool,
    #[graphql(default)]
    pub contact: bool,
    #[graphql(default)]
    pub success: bool,
    #[graphql(default)]
    pub callback: bool,
    #[graphql(default)]
    pub do_not_call: bool,
    #[graphql(default)]
    pub answering_machine: bool,
}

/// Omitted fields stay as they are. A change of `contact` or `success` re-states the contacts
/// and successes of the disposition's calls in the rollups.
#[derive(InputObject)]
pub struct UpdateDispositionInput {
    pub label: Option<String>,
    pub human_answered: Option<bool>,
    pub contact: Option<bool>,
    pub success: Option<bool>,
    pub callback: Option<bool>,
    pub do_not_call: Option<bool>,
    pub answering_machine: Option<bool>,
    pub active: Option<bool>,
}

/// A nullable input field: omitted → no change, null → clear, a value → set.
fn patch_of<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates a campaign. ADMIN+. A name in use answers CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CreateCampaignInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Campaign> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let input = NewCampaignInput {
            name: input.name,
            direction: input.direction,
            dial_mode: input.dial_mode,
            status: input.status,
            service_level_threshold_seconds: input.service_level_threshold_seconds,
            service_level_target_percent: input.service_level_target_percent,
            max_abandon_rate_percent: input.max_abandon_rate_percent,
        };
        let row = manage::create_campaign(state(ctx)?, principal(ctx)?, &tenant, input, request_id(ctx)).await?;
        Ok(Campaign(row))
    }

    /// Changes a campaign. ADMIN+. An ARCHIVED campaign answers CONFLICT; a change of the
    /// service-level threshold re-states the rollups of the campaign's calls in the same
    /// transaction.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCampaignInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Campaign> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let patch = CampaignPatch {
            name: input.name,
            dial_mode: patch_of(input.dial_mode),
            status: input.status,
            service_level_threshold_seconds: patch_of(input.service_level_threshold_seconds),
            service_level_target_percent: patch_of(input.service_level_target_percent),
            max_abandon_rate_percent: patch_of(input.max_abandon_rate_percent),
        };
        let row = manage::update_campaign(state(ctx)?, principal(ctx)?, &tenant, id, patch, request_id(ctx)).await?;
        Ok(Campaign(row))
    }

    /// Archives a campaign: its calls and KPIs stay, it leaves `campaigns` (unless
    /// `includeArchived`) and can no longer change. ADMIN+.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn archive_campaign(&self, ctx: &Context<'_>, id: ID, org_id: Option<ID>) -> async_graphql::Result<Campaign> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::archive_campaign(state(ctx)?, principal(ctx)?, &tenant, id, request_id(ctx)).await?;
        Ok(Campaign(row))
    }

    /// Creates a disposition code. ADMIN+. A code in use answers CONFLICT.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn create_disposition(
        &self,
        ctx: &Context<'_>,
        input: CreateDispositionInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Disposition> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let input = NewDispositionInput {
            code: input.code,
            label: input.label,
            flags: DispositionFlags {
                human_answered: input.human_answered,
                contact: input.contact,
                success: input.success,
                callback: input.callback,
                do_not_call: input.do_not_call,
                answering_machine: input.answering_machine,
            },
        };
        let row = manage::create_disposition(state(ctx)?, principal(ctx)?, &tenant, input, request_id(ctx)).await?;
        Ok(Disposition(row))
    }

    /// Changes a disposition's label, flags or `active`. ADMIN+. A change of `contact` or
    /// `success` re-states the rollups of the disposition's calls in the same transaction.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn update_disposition(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateDispositionInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Disposition> {
        let id = parse_id(&id, "id")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let patch = DispositionPatch {
            label: input.label,
            human_answered: input.human_answered,
            contact: input.contact,
            success: input.success,
            callback: input.callback,
            do_not_call: input.do_not_call,
            answering_machine: input.answering_machine,
            active: input.active,
        };
        let row = manage::update_disposition(state(ctx)?, principal(ctx)?, &tenant, id, patch, request_id(ctx)).await?;
        Ok(Disposition(row))
    }
}
