//! Authentication and authorization.
//!
//! * [`jwt`] signs and verifies tokens; [`password`] hashes passwords;
//! * [`principal`] turns a bearer token into the caller ([`Principal`]), re-reading the
//!   `users` row (cached ≤ 5 s) so deactivation and demotion take effect at once;
//! * [`roles`] is the permission table, [`guards`] the field guards built on it;
//! * [`tenant`] is the one place that decides which organization a request may touch;
//! * [`session`] is login, refresh-token rotation and logout.

pub mod guards;
pub mod jwt;
pub mod password;
pub mod principal;
pub mod roles;
pub mod session;
pub mod tenant;

pub use guards::{PermissionGuard, RoleGuard, SelfOrRoleGuard};
pub use principal::{Auth, Principal};
pub use roles::{Permission, Role};
pub use tenant::Tenant;
