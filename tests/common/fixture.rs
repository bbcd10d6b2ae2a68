//! The one fixture organisation builder of the tests and the benchmarks.
//!
//! Tests and benchmarks all need the same thing before they measure anything: an organization
//! with users, teams, agents, campaigns and dispositions in the real database. Each used to
//! write its own twenty to eighty lines of `insert_*` calls; this builder writes them once:
//!
//! ```ignore
//! let org = FixtureOrg::builder("acme")
//!     .teams(["Blue", "Red"])
//!     .agent(AgentSpec::new("Alice").team(0).user(Role::Agent))
//!     .agents((1..4).map(|i| format!("Agent {i}"))) // spread over the teams
//!     .campaign(CampaignSpec::inbound("Care"))
//!     .disposition(DispositionSpec::new("SALE").contact().success())
//!     .build(&app.state)
//!     .await;
//! let token = org.token(&app.state, Role::Admin).await;
//! ```
//!
//! Why a file under `tests/common/` and not a `testing` module of the library: it is test
//! plumbing (it unwraps, it writes with the system tenant, it backdates rows with raw SQL), and
//! keeping it out of `src/` keeps the production crate and its lints free of it. The tests reach
//! it through `mod common;`; the benchmarks include the same file with
//! `#[path = "../tests/common/fixture.rs"] mod fixture;`, so it depends on nothing but the
//! `omnivox` crate and its dependencies — never on the rest of `tests/common`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl;
use omnivox::access::session;
use omnivox::auth::{password, Role, Tenant};
use omnivox::db::contact_centre::{self as cc, NewAgent, NewCampaign, NewDisposition};
use omnivox::db::{orgs, users};
use omnivox::domain::{CampaignStatus, DialMode, Direction, Presence, RoutingState};
use omnivox::state::AppState;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Every fixture user's password.
pub const FIXTURE_PASSWORD: &str = "correct-horse-battery";

/// The password hash every fixture user shares (argon2 is slow on purpose; hash it once).
async fn shared_password_hash() -> String {
    static HASH: OnceCell<String> = OnceCell::const_new();
    HASH.get_or_init(|| async { password::hash(FIXTURE_PASSWORD.to_owned()).await.unwrap() })
        .await
        .clone()
}

#[derive(Debug, Clone)]
pub struct FixtureUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// An organization as built: every id in the order it was asked for.
#[derive(Debug, Clone)]
pub struct FixtureOrg {
    pub id: Uuid,
    pub slug: String,
    pub tenant: Tenant,
    /// One user per role asked for, `<role>@<slug>.test`.
    pub users: HashMap<Role, FixtureUser>,
    pub teams: Vec<Uuid>,
    pub agents: Vec<Uuid>,
    pub campaigns: Vec<Uuid>,
    pub dispositions: Vec<Uuid>,
}

impl FixtureOrg {
    pub fn builder(slug: &str) -> FixtureOrgBuilder {
        FixtureOrgBuilder {
            slug: slug.to_owned(),
            timezone: "Europe/London".to_owned(),
            created_at: None,
            roles: Role::ALL.to_vec(),
            teams: Vec::new(),
            agents: Vec::new(),
            presence: Presence::Offline,
            state_since: None,
            campaigns: Vec::new(),
            dispositions: Vec::new(),
        }
    }

    pub fn user(&self, role: Role) -> &FixtureUser {
        &self.users[&role]
    }

    /// An access token of the `role` user, minted directly (no login, an hour long). The user
    /// is read afresh, so a token minted after a role change carries the new role.
    pub async fn token(&self, state: &AppState, role: Role) -> String {
        self.token_for(state, role, Duration::from_secs(3_600)).await
    }

    pub async fn token_for(&self, state: &AppState, role: Role, ttl: Duration) -> String {
        let mut conn = state.system_db.get().await.unwrap();
        let user = users::find_by_email(&mut conn, &self.user(role).email)
            .await
            .unwrap()
            .expect("the fixture user exists");
        session::access_token(state, &user, ttl).unwrap().0
    }
}

/// An agent to create: a name, optionally a team (by index into the builder's teams) and a login.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    name: String,
    team: Option<usize>,
    user: Option<Role>,
}

impl AgentSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            team: None,
            user: None,
        }
    }
    /// The team, as an index into the teams of the builder.
    pub fn team(mut self, index: usize) -> Self {
        self.team = Some(index);
        self
    }
    /// The agent profile of the organization's user of this role.
    pub fn user(mut self, role: Role) -> Self {
        self.user = Some(role);
        self
    }
}

impl From<&str> for AgentSpec {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for AgentSpec {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

/// A campaign to create: active; an outbound one dials predictively.
#[derive(Debug, Clone)]
pub struct CampaignSpec {
    name: String,
    direction: Direction,
    service_level_threshold_seconds: Option<i32>,
    max_abandon_rate_percent: Option<f64>,
}

impl CampaignSpec {
    pub fn inbound(name: &str) -> Self {
        Self::new(name, Direction::Inbound)
    }
    pub fn outbound(name: &str) -> Self {
        Self::new(name, Direction::Outbound)
    }
    pub fn new(name: &str, direction: Direction) -> Self {
        Self {
            name: name.to_owned(),
            direction,
            service_level_threshold_seconds: None,
            max_abandon_rate_percent: None,
        }
    }
    pub fn service_level_threshold(mut self, seconds: i32) -> Self {
        self.service_level_threshold_seconds = Some(seconds);
        self
    }
    pub fn max_abandon_rate(mut self, percent: f64) -> Self {
        self.max_abandon_rate_percent = Some(percent);
        self
    }
}

/// A disposition to create; the label is the code unless given, every flag off unless set. The
/// table's CHECKs hold by construction: a success is a contact, a contact a human answer.
#[derive(Debug, Clone, Copy)]
pub struct DispositionSpec(NewDisposition<'static>);

impl DispositionSpec {
    pub fn new(code: &'static str) -> Self {
        Self(NewDisposition {
            code,
            label: code,
            ..NewDisposition::default()
        })
    }
    pub fn label(mut self, label: &'static str) -> Self {
        self.0.label = label;
        self
    }
    pub fn human(mut self) -> Self {
        self.0.human_answered = true;
        self
    }
    /// A contact is a human answer too.
    pub fn contact(mut self) -> Self {
        self.0.human_answered = true;
        self.0.contact = true;
        self
    }
    pub fn success(mut self) -> Self {
        self.0.success = true;
        self.contact()
    }
    pub fn callback(mut self) -> Self {
        self.0.callback = true;
        self
    }
    pub fn machine(mut self) -> Self {
        self.0.answering_machine = true;
        self
    }
}

pub struct FixtureOrgBuilder {
    slug: String,
    timezone: String,
    created_at: Option<DateTime<Utc>>,
    roles: Vec<Role>,
    teams: Vec<String>,
    agents: Vec<AgentSpec>,
    presence: Presence,
    state_since: Option<DateTime<Utc>>,
    campaigns: Vec<CampaignSpec>,
    dispositions: Vec<DispositionSpec>,
}

impl FixtureOrgBuilder {
    /// The organization's IANA time zone (default Europe/London).
    pub fn timezone(mut self, timezone: &str) -> Self {
        self.timezone = timezone.to_owned();
        self
    }
    /// Backdates the organization, so that calls before today are plausible.
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = Some(at);
        self
    }
    /// The roles that get a user (default: every role).
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles = roles.into_iter().collect();
        self
    }
    pub fn teams<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.teams.extend(names.into_iter().map(Into::into));
        self
    }
    pub fn agent(mut self, agent: impl Into<AgentSpec>) -> Self {
        self.agents.push(agent.into());
        self
    }
    /// Agents without a team of their own are spread over the teams in turn.
    pub fn agents<A: Into<AgentSpec>>(mut self, agents: impl IntoIterator<Item = A>) -> Self {
        self.agents.extend(agents.into_iter().map(Into::into));
        self
    }
    /// Every agent's presence (routing IDLE), default OFFLINE.
    pub fn presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }
    /// When every agent's state began (default: now).
    pub fn state_since(mut self, at: DateTime<Utc>) -> Self {
        self.state_since = Some(at);
        self
    }
    pub fn campaign(mut self, campaign: CampaignSpec) -> Self {
        self.campaigns.push(campaign);
        self
    }
    pub fn disposition(mut self, disposition: DispositionSpec) -> Self {
        self.dispositions.push(disposition);
        self
    }
    pub fn dispositions(mut self, dispositions: impl IntoIterator<Item = DispositionSpec>) -> Self {
        self.dispositions.extend(dispositions);
        self
    }

    pub async fn build(self, state: &AppState) -> FixtureOrg {
        let slug = self.slug;
        let mut conn = state.system_db.get().await.unwrap();
        let org = orgs::create(&mut conn, &slug, &format!("Org {slug}"), &self.timezone, "en-GB")
            .await
            .unwrap();
        if let Some(created_at) = self.created_at {
            diesel::sql_query("UPDATE organizations SET created_at = $2 WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(org.id)
                .bind::<diesel::sql_types::Timestamptz, _>(created_at)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let tenant = Tenant::for_system(org.id);
        let hash = shared_password_hash().await;
        let mut by_role = HashMap::new();
        for role in self.roles {
            let email = format!("{}@{slug}.test", role.as_str().to_lowercase().replace('_', "-"));
            let name = format!("{role} of {slug}");
            let user = users::upsert_for_seed(&mut conn, &tenant, &email, &name, role, &hash)
                .await
                .unwrap();
            let id = user.id;
            by_role.insert(role, FixtureUser { id, email, role });
        }
        let mut teams = Vec::new();
        for name in &self.teams {
            teams.push(cc::insert_team(&mut conn, &tenant, name).await.unwrap());
        }
        let state_since = self.state_since.unwrap_or_else(Utc::now);
        let mut agents = Vec::new();
        let mut in_turn = 0;
        for spec in &self.agents {
            let team = match spec.team {
                Some(index) => Some(teams[index]),
                None if teams.is_empty() => None,
                None => {
                    in_turn += 1;
                    Some(teams[(in_turn - 1) % teams.len()])
                }
            };
            let agent = NewAgent {
                user_id: spec.user.map(|role| by_role[&role].id),
                display_name: &spec.name,
                extension: None,
                team_id: team,
                presence: self.presence,
                presence_reason: None,
                routing_state: RoutingState::Idle,
                state_since,
            };
            agents.push(cc::insert_agent(&mut conn, &tenant, &agent).await.unwrap());
        }
        let mut campaigns = Vec::new();
        for spec in &self.campaigns {
            let campaign = NewCampaign {
                name: &spec.name,
                direction: spec.direction,
                dial_mode: (spec.direction == Direction::Outbound).then_some(DialMode::Predictive),
                status: CampaignStatus::Active,
                service_level_threshold_seconds: spec.service_level_threshold_seconds,
                service_level_target_percent: None,
                max_abandon_rate_percent: spec.max_abandon_rate_percent,
            };
            campaigns.push(cc::insert_campaign(&mut conn, &tenant, &campaign).await.unwrap());
        }
        let mut dispositions = Vec::new();
        for spec in &self.dispositions {
            dispositions.push(cc::insert_disposition(&mut conn, &tenant, &spec.0).await.unwrap());
        }
        FixtureOrg {
            id: org.id,
            slug,
            tenant,
            users: by_role,
            teams,
            agents,
            campaigns,
            dispositions,
        }
    }
}
