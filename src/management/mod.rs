//! The management surface's rules: business settings, campaigns and dispositions, users,
//! invitations and passwords, API keys, organizations, agents, teams, skills and coaching. Each
//! operation validates, checks the role rules of DESIGN.md §4, writes the change and its audit
//! record in one transaction, and publishes after commit. Resolvers call these and only convert.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod catalog;
pub mod coaching;
pub mod invitations;
pub mod mail;
pub mod organizations;
pub mod presence;
pub mod scope;
pub mod settings;
pub mod skills;
pub mod teams;
pub mod users;
