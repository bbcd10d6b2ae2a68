//! Platform staff's view of the tenants (SUPER_ADMIN): `organizations`, `createOrganization`
//! (with its first ADMIN invited), `suspendOrganization`, `resumeOrganization`. The rules and
//! what a suspension does live in `management::organizations`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use crate::auth::{Permission, Tenant};
use crate::db::orgs;
use crate::graphql::context::{principal, request_id, settings, state};
use crate::graphql::guards::PermissionGuard;
use crate::graphql::org::Organization;
use crate::graphql::pagination::{decode_cursor, encode_cursor, page_size};
use crate::graphql::users::Invitation;
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::management::organizations::{self as manage, NewOrganization};

#[derive(SimpleObject)]
pub struct OrganizationConnectionTotals {
    /// Every organization of the platform, whatever the page.
    total_count: i64,
}

pub type OrganizationConnection = Connection<String, Organization, OrganizationConnectionTotals>;

#[derive(InputObject)]
pub struct FirstAdminInput {
    pub email: String,
    pub display_name: String,
}

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    /// 1–200 characters.
    pub name: String,
    /// 2–63 characters: lower-case letters, digits and '-'; unique (CONFLICT otherwise).
    pub slug: String,
    /// IANA time zone, e.g. Europe/London.
    pub timezone: String,
    /// BCP 47 tag; default en-GB.
    pub locale: Option<String>,
    /// Invited as the organization's first ADMIN.
    pub first_admin: FirstAdminInput,
}

#[derive(SimpleObject)]
pub struct CreateOrganizationPayload {
    organization: Organization,
    /// The first ADMIN's invitation (its token only when it was not e-mailed).
    first_admin: Invitation,
}

fn uuid_or_not_found(id: &ID) -> async_graphql::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str()).map_err(|_| crate::access::tenant::organization_not_found().into())
}

#[derive(Default)]
pub struct OrganizationQueries;

#[Object]
impl OrganizationQueries {
    /// Every organization, oldest first. SUPER_ADMIN.
    #[graphql(
        guard = "PermissionGuard(Permission::ManagePlatform)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<OrganizationConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let after_key = after.as_deref().map(decode_cursor).transpose()?;
        // Cross-tenant (`db::tenancy`): the platform's list of organizations.
        let mut conn = state(ctx)?.system_db.get().await?;
        let mut rows = orgs::page_all(&mut conn, after_key, limit).await?;
        let total_count = orgs::count_all(&mut conn).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, OrganizationConnectionTotals { total_count });
        // Listing is not access: a listed organization's tenant data (business settings) is
        // read through an audited cross-tenant access.
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(encode_cursor(row.created_at, row.id), Organization::listed(row))),
        );
        Ok(connection)
    }
}

#[derive(Default)]
pub struct OrganizationMutations;

#[Object]
impl OrganizationMutations {
    /// Creates an organization with default business settings and invites its first ADMIN.
    /// SUPER_ADMIN. A slug or e-mail address in use: CONFLICT, nothing stored. Audited in the
    /// new organization's chain.
    #[graphql(guard = "PermissionGuard(Permission::ManagePlatform)")]
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> async_graphql::Result<CreateOrganizationPayload> {
        let input = NewOrganization {
            name: input.name,
            slug: input.slug,
            timezone: input.timezone,
            locale: input.locale,
            first_admin_email: input.first_admin.email,
            first_admin_display_name: input.first_admin.display_name,
        };
        let (row, issued) = manage::create(state(ctx)?, principal(ctx)?, input, request_id(ctx)).await?;
        let tenant = Tenant::for_system(row.id);
        Ok(CreateOrganizationPayload {
            organization: Organization::new(row, tenant),
            first_admin: issued.into(),
        })
    }

    /// Suspends an organization: from the next request on, every request and socket of its
    /// users and API keys is refused with ORGANIZATION_SUSPENDED (sockets close 4403). Data is
    /// kept. SUPER_ADMIN; not their own organization (CONFLICT). Idempotent; audited in the
    /// suspended organization's chain.
    #[graphql(guard = "PermissionGuard(Permission::ManagePlatform)")]
    async fn suspend_organization(
        &self,
        ctx: &Context<'_>,
        org_id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<Organization> {
        let id = uuid_or_not_found(&org_id)?;
        let row = manage::set_suspended(
            state(ctx)?,
            principal(ctx)?,
            id,
            Some(reason.unwrap_or_default()),
            request_id(ctx),
        )
        .await?;
        let tenant = Tenant::for_system(row.id);
        Ok(Organization::new(row, tenant))
    }

    /// Lifts a suspension. SUPER_ADMIN. Idempotent; audited in the organization's chain.
    #[graphql(guard = "PermissionGuard(Permission::ManagePlatform)")]
    async fn resume_organization(&self, ctx: &Context<'_>, org_id: ID) -> async_graphql::Result<Organization> {
        let id = uuid_or_not_found(&org_id)?;
        let row = manage::set_suspended(state(ctx)?, principal(ctx)?, id, None, request_id(ctx)).await?;
        let tenant = Tenant::for_system(row.id);
        Ok(Organization::new(row, tenant))
    }
}
