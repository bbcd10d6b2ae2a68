//! The management surface's rules: business settings, users, API keys, agents, teams and
//! skills. Each operation validates, checks the role rules of DESIGN.md §4, writes the change
//! and its audit record in one transaction, and publishes after commit. Resolvers call these and only convert.

pub mod agents;
pub mod api_keys;
pub mod presence;
pub mod settings;
pub mod skills;
pub mod teams;
pub mod users;
