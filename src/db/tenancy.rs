//! Tenancy in the database: PostgreSQL enforces, under the application's own checks, that a
//! request reads and writes only its organization's rows.
//!
//! Two pools, two roles (migration `2026-12-07-000031_row_level_security`):
//!
//! * [`TenantPool`] connects as the application's role (`omnivox_app`), which owns nothing and
//!   is subject to row-level security. A connection comes out of it only through
//!   [`TenantPool::get`], which names the [`Tenant`]: the checkout sets the session's
//!   `omnivox.tenant` before anything else runs on it, and every policy compares rows with that
//!   setting. A statement on a connection of that role without a tenant sees no rows and can
//!   write none. The setting lasts for the checkout: no connection leaves the pool without
//!   having it set anew, so a tenant never carries over to the next request.
//! * [`SystemPool`] connects as the tables' owner, which the policies do not restrict. It is
//!   the explicit cross-tenant path, for the few operations that cannot know their
//!   organization before they have read across them or that act for several:
//!   - finding the account behind a sign-in, a refresh token, an invitation or reset token, an
//!     API key or a telephony callback (they find the organization, then work as its tenant);
//!   - the report scheduler's claims of due schedules and the run worker's claims of queued
//!     runs, across organizations;
//!   - the audit queue's batches (denials of many organizations and the platform chain);
//!   - COPY loads (the seeders and the history import: PostgreSQL does not take COPY FROM into
//!     a table with row-level security), each audited where a caller asked for it;
//!   - a SUPER_ADMIN's operations on organizations themselves (create, list, suspend), audited.
//!
//! Both pools get the same connection setup (`db::build_pool`). Why the tenant is set per
//! checkout rather than per transaction: most reads are a single statement outside a
//! transaction, and a `BEGIN`/`set_config`/`COMMIT` around each would cost two more round trips
//! per request; a session setting written at every checkout gives the same guarantee (nothing
//! reaches a connection but through `get`, which always writes it) for one.

use std::ops::{Deref, DerefMut};

use diesel::sql_types::{Bool, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::auth::Tenant;
use crate::db::{DbConn, DbPool};
use crate::error::{AppError, AppResult};

pub use crate::config::APP_DATABASE_ROLE as APP_ROLE;

/// The application's pool: every connection acts for one organization.
#[derive(Clone)]
pub struct TenantPool {
    pool: DbPool,
}

/// A pooled connection of the application's role, acting for one organization.
pub struct TenantConn {
    conn: DbConn,
    tenant: Tenant,
}

impl TenantConn {
    /// The organization this connection acts for.
    pub fn tenant(&self) -> Tenant {
        self.tenant
    }
}

impl Deref for TenantConn {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

#[derive(QueryableByName)]
struct TenantSet {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)] // read by diesel; the value is the one just written
    tenant: String,
}

/// Writes the session's tenant ('' for none, which no row matches).
async fn set_tenant(conn: &mut AsyncPgConnection, tenant: Option<&Tenant>) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT set_config('omnivox.tenant', $1, false) AS tenant")
        .bind::<Text, _>(tenant.map(|t| t.org_id().to_string()).unwrap_or_default())
        .get_result::<TenantSet>(conn)
        .await
        .map(|_| ())
}

/// A checkout with the tenant written, retried once on a fresh connection when the write
/// fails (a connection the server closed while it was idle).
async fn checkout(pool: &DbPool, tenant: Option<&Tenant>) -> AppResult<DbConn> {
    let mut conn = pool.get().await?;
    if let Err(first) = set_tenant(&mut conn, tenant).await {
        tracing::debug!(error = %first, "discarding a pooled connection that could not take its tenant");
        drop(deadpool::managed::Object::take(conn));
        conn = pool.get().await?;
        set_tenant(&mut conn, tenant).await?;
    }
    Ok(conn)
}

/// Makes a connection of the application's pool act for another organization, for one
/// transaction that serves several in turn (the webhook batcher commits the events of many
/// organizations together). The pool writes the tenant again at the next checkout.
pub async fn switch_tenant(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<()> {
    Ok(set_tenant(conn, Some(tenant)).await?)
}

impl TenantPool {
    /// The pool must connect as a role that row-level security restricts: see
    /// [`check_role`](Self::check_role).
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    /// A connection acting for `tenant`. The setting is written on every checkout; a connection
    /// that cannot take it (closed by the server while idle) is discarded and another one tried,
    /// since the pool skips the liveness query this write replaces.
    pub async fn get(&self, tenant: &Tenant) -> AppResult<TenantConn> {
        let conn = checkout(&self.pool, Some(tenant)).await?;
        Ok(TenantConn { conn, tenant: *tenant })
    }

    /// Like [`get`](Self::get), but only when the pool can hand a connection out without
    /// waiting (an idle one, or room to open one); `None` otherwise.
    pub async fn try_get(&self, tenant: &Tenant) -> Option<TenantConn> {
        let status = self.pool.status();
        if status.available == 0 && status.size >= status.max_size {
            return None;
        }
        self.get(tenant).await.ok()
    }

    /// A connection acting for no organization, for statements that read no tenant table
    /// (health probes, the replica's lag): every policy hides every row from it.
    pub async fn get_without_tenant(&self) -> AppResult<DbConn> {
        checkout(&self.pool, None).await
    }

    /// The pool's size, idle connections and waiters (for metrics).
    pub fn status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// True when PostgreSQL hands out a connection that takes a setting.
    pub async fn ping(&self) -> bool {
        self.get_without_tenant().await.is_ok()
    }

    /// Refuses a role that would make the policies moot: a superuser, a role with BYPASSRLS,
    /// or the tables' owner (owners are not subject to their tables' policies).
    pub async fn check_role(&self) -> AppResult<()> {
        #[derive(QueryableByName)]
        struct RoleFacts {
            #[diesel(sql_type = Text)]
            role: String,
            #[diesel(sql_type = Bool)]
            superuser: bool,
            #[diesel(sql_type = Bool)]
            bypasses: bool,
            #[diesel(sql_type = Bool)]
            owns: bool,
        }
        let mut conn = self.pool.get().await?;
        let facts: RoleFacts = diesel::sql_query(
            "SELECT current_user::text AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypasses,
                    EXISTS (SELECT 1 FROM pg_tables t
                             WHERE t.schemaname = 'public' AND t.tableowner = current_user) AS owns
               FROM pg_roles r WHERE r.rolname = current_user",
        )
        .get_result(&mut conn)
        .await?;
        let problem = if facts.superuser {
            Some("is a superuser")
        } else if facts.bypasses {
            Some("bypasses row-level security")
        } else if facts.owns {
            Some("owns the tables")
        } else {
            None
        };
        match problem {
            // Names the role, never the URL (which may hold a password).
            Some(problem) => Err(AppError::bad_input(format!(
                "the application's database role `{}` {problem}: OMNIVOX_APP_DATABASE_URL must connect as \
                 `{APP_ROLE}` (or a role that is a member of it), which row-level security restricts",
                facts.role
            ))),
            None => Ok(()),
        }
    }
}

/// The tables' owner: the cross-tenant paths listed in this module's header, and nothing else.
#[derive(Clone)]
pub struct SystemPool {
    pool: DbPool,
}

impl SystemPool {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    /// The pool itself, for the seeders' bulk loads that take a `DbPool`.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// A connection that sees every organization's rows.
    pub async fn get(&self) -> AppResult<DbConn> {
        Ok(self.pool.get().await?)
    }
}
