//! `me`, `users`, and user management mutations.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::auth::{Permission, Role, Tenant};
use crate::db::models::UserRow;
use crate::db::users as user_rows;
use crate::graphql::context::{parse_id, principal, request_id, settings, state, tenant_for};
use crate::graphql::guards::{PermissionGuard, RoleGuard};
use crate::graphql::pagination::{decode_cursor, encode_cursor, page_size};
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::management::invitations::{self, Issued, NewInvitation};
use crate::management::users::{self as manage, NewUserInput};

/// A person who signs in. Reached only through guarded root fields (`me`, `users`, mutations
/// guarded ADMIN+), so its fields carry no guards of their own.
pub struct User(pub UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn organization_id(&self) -> ID {
        ID(self.0.organization_id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> Role {
        self.0.role
    }
    /// Inactive users cannot sign in; their tokens were revoked when they were deactivated.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Invited and not yet accepted: the user has no password and cannot sign in.
    async fn invitation_pending(&self) -> bool {
        invitations::invitation_pending(&self.0)
    }
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct UserConnectionTotals {
    /// Users of the organization, whatever the page.
    total_count: i64,
}

pub type UserConnection = Connection<String, User, UserConnectionTotals>;

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let caller = principal(ctx)?;
        let mut conn = state(ctx)?.db.get(&Tenant::of(caller)).await?;
        Ok(User(
            user_rows::get(&mut conn, &Tenant::of(caller), caller.user_id).await?,
        ))
    }

    /// The organization's users, oldest first. ADMIN+. `orgId` is for SUPER_ADMIN only.
    #[graphql(
        guard = "PermissionGuard(Permission::Administer)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<UserConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let after_key = after.as_deref().map(decode_cursor).transpose()?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let mut conn = state(ctx)?.db.get(&tenant).await?;
        let mut rows = user_rows::page(&mut conn, &tenant, after_key, limit).await?;
        let total_count = user_rows::count(&mut conn, &tenant).await?;
        let has_next = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, UserConnectionTotals { total_count });
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(encode_cursor(row.created_at, row.id), User(row))),
        );
        Ok(connection)
    }
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub display_name: String,
    /// At most the caller's own role.
    pub role: Role,
    /// At least 10 characters.
    pub password: String,
}

#[derive(InputObject)]
pub struct InviteUserInput {
    pub email: String,
    pub display_name: String,
    /// At most the caller's own role.
    pub role: Role,
}

/// An invitation just issued. The invited person sets their password with
/// `acceptInvitation(token, password)` before `expiresAt`, once.
#[derive(SimpleObject)]
pub struct Invitation {
    user: User,
    expires_at: DateTime<Utc>,
    /// Whether the invitation was e-mailed to the user.
    emailed: bool,
    /// The invitation token, only when it was not e-mailed (no SMTP server configured, or
    /// sending failed): shown this once, to hand over; it is stored only as a digest.
    token: Option<String>,
}

impl From<Issued> for Invitation {
    fn from(issued: Issued) -> Self {
        Self {
            user: User(issued.user),
            expires_at: issued.expires_at,
            emailed: issued.emailed,
            token: issued.token,
        }
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user. ADMIN+; the role may not be above the caller's.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<User> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let input = NewUserInput {
            email: input.email,
            display_name: input.display_name,
            role: input.role,
            password: input.password,
        };
        let row = manage::create(state(ctx)?, principal(ctx)?, &tenant, input, request_id(ctx)).await?;
        Ok(User(row))
    }

    /// Invites a person by e-mail: creates the user without a password and a single-use
    /// invitation token that expires in 7 days. ADMIN+; the role may not be above the caller's;
    /// an e-mail address in use is CONFLICT. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        input: InviteUserInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Invitation> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let input = NewInvitation {
            email: input.email,
            display_name: input.display_name,
            role: input.role,
        };
        let issued = invitations::invite(state(ctx)?, principal(ctx)?, &tenant, input, request_id(ctx)).await?;
        Ok(issued.into())
    }

    /// Issues a new invitation for a user who has not accepted theirs; the previous token
    /// stops working. ADMIN+; CONFLICT when the user already has a password. Audited.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Invitation> {
        let user_id = parse_id(&user_id, "userId")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let issued = invitations::resend(state(ctx)?, principal(ctx)?, &tenant, user_id, request_id(ctx)).await?;
        Ok(issued.into())
    }

    /// Changes a user's role. ADMIN+; nobody grants above their own role, changes a user who
    /// ranks above them, or demotes the organization's last active ADMIN (CONFLICT).
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn update_user_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Role,
        org_id: Option<ID>,
    ) -> async_graphql::Result<User> {
        let user_id = parse_id(&user_id, "userId")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::change_role(state(ctx)?, principal(ctx)?, &tenant, user_id, role, request_id(ctx)).await?;
        Ok(User(row))
    }

    /// Deactivates a user and revokes every token they hold. ADMIN+; the last active ADMIN
    /// cannot be deactivated (CONFLICT).
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn deactivate_user(&self, ctx: &Context<'_>, user_id: ID, org_id: Option<ID>) -> async_graphql::Result<User> {
        let user_id = parse_id(&user_id, "userId")?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let row = manage::deactivate(state(ctx)?, principal(ctx)?, &tenant, user_id, request_id(ctx)).await?;
        Ok(User(row))
    }
}
