//! Reports (issue #12, first slice): saved reports, their relative ranges, the templates that
//! ship with the product, their results and their exports (CSV, JSON) for BI tools.
//!
//! A saved report is a stored analytics query plus a range and a presentation. It is answered
//! by the ONE analytics engine (`kpi::analytics::run_analytics`), validated by that engine's
//! own checks before it is stored (`kpi::analytics::validate_analytics`), so a report's
//! numbers are `analytics`' numbers for the same query and interval, and a definition the
//! engine would refuse is never stored.
//!
//! * [`definition`]: the stored shape (query, range, presentation) and the checks the engine
//!   does not make (range, columns, chart);
//! * [`range`]: relative ranges resolved in the organization's zone (a pure function);
//! * [`templates`]: the templates, in code;
//! * [`saved`]: create, read, update (optimistic), duplicate, delete, all audited;
//! * [`run`]: a report's result, its totals and its exports, audited;
//! * [`table`]: an answer laid out as the presentation asks, for a file;
//! * [`log`]: the interaction detail log, the report of the calls themselves, streamed from
//!   PostgreSQL into a run's file page by page;
//! * [`formats`]: the file writers (CSV per RFC 4180, JSON), fed row by row;
//! * [`jobs`]: runs as jobs — queued in PostgreSQL, claimed and executed by a worker in every
//!   instance, taken over when an instance dies;
//! * [`runs`]: runs as their requesters see them (request, read, list, cancel, follow);
//! * [`files`]: a run's file, stored in PostgreSQL in chunks;
//! * [`downloads`]: `GET /exports/{runId}` with a token or a signed link.
//! * [`schedules`]: report schedules (create, update, pause, resume, delete, fire times),
//!   audited; [`cron`]: the pattern dialect and its daylight-saving rules;
//! * [`scheduler`]: every instance's loop that turns each due fire into exactly one run;
//! * [`delivery`]: every instance's loop that sends finished scheduled runs by e-mail (SMTP)
//!   and signed webhook, with retries and recorded failures.
//!
//! Who may do what (DESIGN §4, with the brief's one exception): SUPERVISOR and above create
//! reports; the owner or an ADMIN changes or deletes one; a report is private to its owner or
//! shared with the organization. A VIEWER (wallboards, BI service accounts) reads the shared
//! reports — their figures included, which is what sharing is for. AGENT is the one role that
//! reads no report at all: agents see their own performance elsewhere, and a report shows
//! everyone's. Another organization's report, or a report the caller may not see, is
//! NOT_FOUND; a visible report the caller may not change is FORBIDDEN.

pub mod cron;
pub mod definition;
pub mod delivery;
pub mod downloads;
pub mod files;
pub mod formats;
pub mod jobs;
pub mod log;
pub mod range;
pub mod run;
pub mod runs;
pub mod saved;
pub mod scheduler;
pub mod schedules;
pub mod table;
pub mod templates;

use crate::auth::{Permission, Principal, Role};

pub use definition::Definition;
pub use range::RelativeRange;
pub use saved::SavedReport;

/// Whether `role` may read reports at all (shared ones, and their own).
pub fn may_read(role: Role) -> bool {
    role == Role::Viewer || role.has(Permission::Supervise)
}

/// Whether `role` may create reports (and copy templates or reports).
pub fn may_create(role: Role) -> bool {
    role.has(Permission::Supervise)
}

/// Whether the caller sees a report: shared, their own (while they may create reports), or
/// any as an ADMIN.
pub fn sees(caller: &Principal, owner_id: uuid::Uuid, shared: bool) -> bool {
    may_read(caller.role)
        && (shared
            || caller.role.has(Permission::Administer)
            || (may_create(caller.role) && owner_id == caller.user_id))
}

/// Whether the caller may change or delete a report: its owner, or an ADMIN.
pub fn may_edit(caller: &Principal, owner_id: uuid::Uuid) -> bool {
    caller.role.has(Permission::Administer) || (may_create(caller.role) && owner_id == caller.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn caller(role: Role) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(9),
            role,
            email: String::new(),
            display_name: String::new(),
            token_expires_at: 0,
            api_key: None,
        }
    }

    #[test]
    fn the_access_rules() {
        let me = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        assert!(!may_read(Role::Agent));
        assert!(may_read(Role::Viewer) && may_read(Role::Supervisor));
        assert!(!may_create(Role::Viewer) && may_create(Role::Supervisor));
        // VIEWER: shared only; AGENT: nothing.
        assert!(sees(&caller(Role::Viewer), other, true));
        assert!(!sees(&caller(Role::Viewer), me, false));
        assert!(!sees(&caller(Role::Agent), other, true));
        // SUPERVISOR: own and shared; ADMIN: all.
        assert!(sees(&caller(Role::Supervisor), me, false));
        assert!(!sees(&caller(Role::Supervisor), other, false));
        assert!(sees(&caller(Role::Admin), other, false));
        assert!(may_edit(&caller(Role::Supervisor), me));
        assert!(!may_edit(&caller(Role::Supervisor), other));
        assert!(may_edit(&caller(Role::Admin), other));
        assert!(!may_edit(&caller(Role::Viewer), me));
    }
}
