//! Seeded organizations: the demo (idempotent, so `omnivox demo` can run on every start) and
//! synthetic traffic at scale for benchmarks (`omnivox seed --calls …`). Both simulate their
//! history with one model of a contact-centre day, so that it holds together the way real data
//! does, and write it through the KPI engine's one writer.
//!
//! * this module — organization `demo`, (re)created with one login per role;
//! * [`dashboards`] — the demo's supervisor and wall dashboards, added when missing;
//! * [`demo_data`] — once, a small contact centre with a few days of history, fixed seed; and
//!   a few coaching sessions, added when missing;
//! * [`generator`] — millions of calls, planned at scale and bulk-loaded with their rollups;
//! * [`live`]      — the demo's live simulator: further days of the demo model, played in
//!   (compressed) real time through the ingest, disposition and presence code of the API;
//! * [`sim`]       — the model both use: agents' shifts and breaks, who takes which call, how
//!   it ends, the state log derived from the calls. Pure and deterministic.

pub mod dashboards;
pub mod demo_data;
pub mod generator;
pub mod live;
pub mod sim;

use crate::auth::{password, Role, Tenant};
use crate::db::contact_centre::NewDisposition;
use crate::db::{orgs, users};
use crate::error::AppResult;
use crate::state::AppState;

pub const DEMO_SLUG: &str = "demo";
pub const DEMO_NAME: &str = "Demo Contact Centre";
pub const DEMO_TIMEZONE: &str = "Europe/London";

/// The demo logins: (e-mail, display name, role).
pub const DEMO_USERS: [(&str, &str, Role); 5] = [
    ("superadmin@demo.example", "Sam Super", Role::SuperAdmin),
    ("admin@demo.example", "Ada Admin", Role::Admin),
    ("supervisor@demo.example", "Sol Supervisor", Role::Supervisor),
    ("agent@demo.example", "Alex Agent", Role::Agent),
    ("viewer@demo.example", "Val Viewer", Role::Viewer),
];

pub struct DemoSummary {
    pub created_organization: bool,
    pub logins: Vec<(String, Role)>,
}

/// Creates the demo organization if missing, and (re)sets every demo login's password, role
/// and active flag, so the printed logins always work.
pub async fn seed_demo(state: &AppState, password_text: &str) -> AppResult<DemoSummary> {
    password::check_strength(password_text)
        .map_err(|reason| crate::error::AppError::bad_input(format!("--password {reason}")))?;
    // A seeder (`db::tenancy`): it creates the organization it then fills.
    let mut conn = state.system_db.get().await?;
    let (org, created) = match orgs::find_by_slug(&mut conn, DEMO_SLUG).await? {
        Some(org) => (org, false),
        None => (
            orgs::create(&mut conn, DEMO_SLUG, DEMO_NAME, DEMO_TIMEZONE, "en-GB").await?,
            true,
        ),
    };
    let tenant = Tenant::for_system(org.id);
    let hash = password::hash(password_text.to_owned()).await?;
    let mut logins = Vec::new();
    let mut agent_user = None;
    let mut supervisor = None;
    let mut admin = None;
    for (email, name, role) in DEMO_USERS {
        let user = users::upsert_for_seed(&mut conn, &tenant, email, name, role, &hash).await?;
        match role {
            Role::Agent => agent_user = Some(user.id),
            Role::Supervisor => supervisor = Some(user.id),
            Role::Admin => admin = Some(user.id),
            _ => {}
        }
        logins.push((email.to_owned(), role));
    }
    demo_data::ensure(&mut conn, &tenant, agent_user).await?;
    if let Some(supervisor) = supervisor {
        // Its own step, so a demo seeded before teams had supervisors gains one on the next run.
        crate::db::teams::ensure_supervisor_by_team_name(&mut conn, &tenant, demo_data::SUPERVISED_TEAM, supervisor)
            .await?;
        demo_data::ensure_coaching(&mut conn, &tenant, supervisor).await?;
        if let Some(admin) = admin {
            drop(conn);
            dashboards::ensure(state, &tenant, supervisor, admin).await?;
        }
    }
    Ok(DemoSummary {
        created_organization: created,
        logins,
    })
}

/// Index of NO_ANSWER in [`dispositions`].
const NO_ANSWER: usize = 7;
/// Index of BUSY, the last of [`dispositions`] (the demo has no BUSY code).
const BUSY: usize = 8;

/// The dispositions of a seeded organization, with the flags the metrics read, in the order of
/// [`sim::DispositionIds`]' fields.
fn dispositions() -> [NewDisposition<'static>; 9] {
    let human = NewDisposition {
        human_answered: true,
        ..NewDisposition::default()
    };
    let contact = NewDisposition { contact: true, ..human };
    [
        NewDisposition {
            code: "RESOLVED",
            label: "Resolved",
            ..contact
        },
        NewDisposition {
            code: "SALE",
            label: "Sale",
            success: true,
            ..contact
        },
        NewDisposition {
            code: "CALLBACK",
            label: "Callback requested",
            callback: true,
            ..contact
        },
        NewDisposition {
            code: "NOT_INTERESTED",
            label: "Not interested",
            ..contact
        },
        NewDisposition {
            code: "WRONG_PARTY",
            label: "Wrong party",
            ..human
        },
        NewDisposition {
            code: "DO_NOT_CALL",
            label: "Do not call",
            do_not_call: true,
            ..contact
        },
        NewDisposition {
            code: "ANSWERING_MACHINE",
            label: "Answering machine",
            answering_machine: true,
            ..NewDisposition::default()
        },
        NewDisposition {
            code: "NO_ANSWER",
            label: "No answer",
            ..NewDisposition::default()
        },
        NewDisposition {
            code: "BUSY",
            label: "Busy",
            ..NewDisposition::default()
        },
    ]
}
