//! Authentication and authorization.
//!
//! The pure half: nothing here reads the database (that is [`crate::access`]), so the data
//! layer can take a [`Tenant`] without a cycle.
//!
//! * [`api_key`] is the API keys' secret format, digest and scopes;
//! * [`jwt`] signs and verifies tokens; [`password`] hashes passwords; [`one_time`] is the
//!   invitation and password-reset tokens;
//! * [`principal`] is the caller ([`Principal`]), what credentials amount to ([`Auth`]) and the
//!   short-lived cache of `users` rows;
//! * [`roles`] is the permission table (the GraphQL field guards are built on it);
//! * [`tenant`] is the handle every tenant-data function takes.

pub mod api_key;
pub mod jwt;
pub mod one_time;
pub mod password;
pub mod principal;
pub mod roles;
pub mod tenant;

pub use principal::{Auth, Principal};
pub use roles::{Permission, Role};
pub use tenant::Tenant;
