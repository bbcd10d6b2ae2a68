//! The management surface's rules: business settings, campaigns and dispositions, users and API
//! keys. Each operation validates, checks the role rules of DESIGN.md §4, writes the change and
//! its audit record in one transaction, and publishes after commit. Resolvers call these and only convert.

pub mod api_keys;
pub mod catalog;
pub mod presence;
pub mod settings;
pub mod users;
