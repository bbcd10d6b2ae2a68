//! Access: the I/O half of authentication and tenancy. `auth` holds the pure parts (tokens,
//! passwords, the role table, the [`crate::auth::Tenant`] handle); this module reads and writes
//! the database to apply them.
//!
//! * [`principal`] turns a bearer token into the caller, re-reading the `users` row;
//! * [`api_key`] does the same for an API key (see `auth::api_key`);
//! * [`tenant`] decides which organization a request may touch;
//! * [`session`] is login, refresh-token rotation and logout.

pub mod api_key;
pub mod principal;
pub mod session;
pub mod tenant;
