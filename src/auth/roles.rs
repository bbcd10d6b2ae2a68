//! Roles and the permission table of DESIGN.md §4.
//!
//! Roles are ordered: a higher role holds every permission of the lower ones, so a permission
//! is simply "the lowest role that holds it". Guards ask [`Role::has`].

use std::fmt;
use std::str::FromStr;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Text;

/// A user's role, low to high. The derived `Ord` follows declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, async_graphql::Enum, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Wallboards and BI service accounts: organization KPIs, live views, agent names and states.
    Viewer,
    /// Takes calls: their own profile, performance, state, dispositions and coaching.
    Agent,
    /// Every agent's performance, interactions, teams, skills, coaching and reports.
    Supervisor,
    /// Business settings, campaigns, dispositions, users up to ADMIN, API keys, the audit log.
    Admin,
    /// Platform staff: organizations and explicit, audited cross-tenant access.
    SuperAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Agent,
        Role::Supervisor,
        Role::Admin,
        Role::SuperAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Agent => "AGENT",
            Role::Supervisor => "SUPERVISOR",
            Role::Admin => "ADMIN",
            Role::SuperAdmin => "SUPER_ADMIN",
        }
    }

    pub fn has(self, permission: Permission) -> bool {
        self >= permission.lowest_role()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

impl ToSql<Text, Pg> for Role {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

impl FromSql<Text, Pg> for Role {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(text.parse::<Role>()?)
    }
}

/// What a caller may do. Each permission names the lowest role that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Organization KPIs, live wallboards, agent names and states, business settings (read).
    ReadOrganization,
    /// Own profile, own performance, own state, own dispositions, own coaching.
    ActAsAgent,
    /// Every agent's performance and activity, unmasked customer numbers, teams, skills,
    /// coaching, reports.
    Supervise,
    /// Business settings, campaigns, dispositions, users up to ADMIN, API keys, audit log.
    Administer,
    /// Call events from the telephony layer (scoped API keys will carry it later).
    Ingest,
    /// Organizations and cross-tenant access.
    ManagePlatform,
}

impl Permission {
    pub fn lowest_role(self) -> Role {
        match self {
            Permission::ReadOrganization => Role::Viewer,
            Permission::ActAsAgent => Role::Agent,
            Permission::Supervise => Role::Supervisor,
            Permission::Administer | Permission::Ingest => Role::Admin,
            Permission::ManagePlatform => Role::SuperAdmin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Agent && Role::Agent < Role::Supervisor);
        assert!(Role::Supervisor < Role::Admin && Role::Admin < Role::SuperAdmin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("ROOT".parse::<Role>().is_err());
    }

    #[test]
    fn higher_roles_hold_lower_permissions() {
        assert!(Role::Admin.has(Permission::Supervise));
        assert!(!Role::Supervisor.has(Permission::Administer));
        assert!(!Role::Viewer.has(Permission::ActAsAgent));
        assert!(Role::SuperAdmin.has(Permission::ManagePlatform));
        assert!(!Role::Admin.has(Permission::ManagePlatform));
    }
}
