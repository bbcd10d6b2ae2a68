//! API keys, the pure half: the secret's format, its digest, the scopes and what each scope
//! lets a key do. Reading and writing keys is [`crate::access::api_key`] and
//! [`crate::management::api_keys`].
//!
//! # Secret format
//! `ovx_<16 hex>_<43 base64url>`: a recognisable prefix (so a leaked key is easy to spot and a
//! key is told from a JWT by its first characters), a public identifier of 64 random bits by
//! which the key is found, and 256 random bits. Only the SHA-256 of the whole secret is stored.
//! A fast hash is the right tool here: argon2 exists to slow down guessing of low-entropy
//! passwords, while guessing 256 random bits is hopeless at any speed — and a key is checked on
//! every request, where argon2's ~20 MiB and tens of milliseconds would be a cost without a
//! benefit. The stored digest is compared in constant time.
//!
//! # Scopes
//! A key's scopes say which root fields it may reach ([`Scope::allows`]); everything else —
//! user, key and settings management, agent actions, `me`, the audit log and its verification
//! — is refused FORBIDDEN, whatever the scopes. Within an allowed root field the ordinary guards apply with the creator's current
//! role, and a scope whose [`Scope::lowest_role`] is above that role is dropped, so a key never
//! does more than its creator could do now.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{Permission, Role};

/// Every API key secret starts with this.
pub const SECRET_PREFIX: &str = "ovx_";
/// Hex characters of the public identifier that follows [`SECRET_PREFIX`].
const ID_HEX_CHARS: usize = 16;
/// Random bytes of the secret part.
const SECRET_BYTES: usize = 32;
/// base64url characters (no padding) of [`SECRET_BYTES`].
const SECRET_CHARS: usize = 43;
/// Total length of a well-formed secret.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + ID_HEX_CHARS + 1 + SECRET_CHARS;

/// What a key may do. On the wire (GraphQL arguments, stored rows) as `area:verb` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// KPI summaries and series, per-agent and per-campaign performance, dispositions,
    /// compliance status (the latter four need a SUPERVISOR+ creator, as for a person).
    KpiRead,
    /// Reports and raw data for BI: ad-hoc analytics, call records, saved reports and their
    /// templates (read, with results), and report exports over plain HTTP.
    ReportsRead,
    /// Subscriptions: live wallboards, agent states, call events, alerts, settings changes.
    RealtimeRead,
    /// The telephony adapter: `recordCallEvents`; and the history import over HTTP.
    IngestWrite,
}

/// The kind of root a field belongs to, or plain HTTP for the endpoints outside GraphQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Query,
    Mutation,
    Subscription,
    /// Plain HTTP endpoints, named by method and route (e.g. [`HTTP_REPORT_EXPORT`]).
    Http,
}

/// `GET /api/reports/{id}.csv` and `.json`: a saved report's export for BI tools.
pub const HTTP_REPORT_EXPORT: &str = "GET /api/reports/{id}";
/// `GET /exports/{runId}`: the file of a report run.
pub const HTTP_RUN_DOWNLOAD: &str = "GET /exports/{runId}";
/// `POST /api/import/calls`: the history import of completed calls.
pub const HTTP_IMPORT_CALLS: &str = "POST /api/import/calls";

/// Root fields that every read scope may reach: context a client needs to present what it
/// reads (the organization's time zone and settings, the presence reason codes, the campaigns
/// and disposition codes that calls and KPIs refer to by id).
const CONTEXT_QUERIES: &[&str] = &["organization", "presenceReasonCodes", "campaigns", "dispositions"];

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::KpiRead,
        Scope::ReportsRead,
        Scope::RealtimeRead,
        Scope::IngestWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::KpiRead => "kpi:read",
            Scope::ReportsRead => "reports:read",
            Scope::RealtimeRead => "realtime:read",
            Scope::IngestWrite => "ingest:write",
        }
    }

    /// The permission a creator must hold to grant this scope (and keep it working).
    pub fn permission(self) -> Permission {
        match self {
            Scope::KpiRead | Scope::RealtimeRead => Permission::ReadOrganization,
            Scope::ReportsRead => Permission::Supervise,
            Scope::IngestWrite => Permission::Ingest,
        }
    }

    /// The lowest role that may grant this scope.
    pub fn lowest_role(self) -> Role {
        self.permission().lowest_role()
    }

    /// The root fields this scope lets a key reach (the field guards still apply).
    pub fn root_fields(self, root: Root) -> &'static [&'static str] {
        match (self, root) {
            (Scope::KpiRead, Root::Query) => &[
                "kpiSummary",
                "kpiSeries",
                "agentPerformance",
                "campaignPerformance",
                "dispositionBreakdown",
                "complianceStatus",
                // The directory that names KPI rows: BI tools join agents to their teams and
                // skills. The field guards and the creator's scope still apply; no key
                // reaches the agent, team or skill mutations.
                "agents",
                "agent",
                "teams",
                "team",
                "skills",
                // Dashboards are layouts of KPI widgets: wallboards and BI tools read them
                // (as the key's creator sees them). Writing them is for people.
                "dashboards",
                "dashboard",
                "defaultDashboard",
            ],
            (Scope::ReportsRead, Root::Query) => &[
                "analytics",
                "interactions",
                "interaction",
                "interactionByExternalId",
                "reports",
                "report",
                "reportTemplates",
                "reportRun",
                "reportRuns",
            ],
            // Running a report is how a BI tool reads it as a file: no report changes.
            (Scope::ReportsRead, Root::Mutation) => &["runReport", "createReportDownloadLink"],
            (Scope::ReportsRead, Root::Subscription) => &["reportRunUpdated"],
            (Scope::ReportsRead, Root::Http) => &[HTTP_REPORT_EXPORT, HTTP_RUN_DOWNLOAD],
            (Scope::RealtimeRead, Root::Subscription) => &[
                "agentStates",
                "liveKpis",
                "interactionEvents",
                "complianceAlerts",
                "businessSettingsChanged",
                "dashboardUpdated",
            ],
            (Scope::IngestWrite, Root::Mutation) => &["recordCallEvents"],
            (Scope::IngestWrite, Root::Http) => &[HTTP_IMPORT_CALLS],
            // Reached by no scope, on purpose: people and tenants are managed by people.
            // Coaching (`coachingSessions`, `coachingSession`, `createCoachingSession`,
            // `updateCoachingSession`, `completeCoachingSession`, `acknowledgeCoachingSession`)
            // holds private notes about a person; invitations and passwords (`inviteUser`,
            // `resendInvitation`, `changePassword`) act on a person's credentials; and
            // organizations (`organizations`, `createOrganization`, `suspendOrganization`,
            // `resumeOrganization`) are platform staff's, who never act through a key.
            _ => &[],
        }
    }

    /// Whether this scope lets a key reach root field `field` of `root`.
    pub fn allows(self, root: Root, field: &str) -> bool {
        let read_scope = self != Scope::IngestWrite;
        (read_scope && root == Root::Query && CONTEXT_QUERIES.contains(&field))
            || self.root_fields(root).contains(&field)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{}`", s.chars().take(40).collect::<String>()))
    }
}

/// What a request authenticated with an API key may do: the key, and its scopes that the
/// creator's current role still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub key_id: uuid::Uuid,
    /// Sorted, without repeats.
    pub scopes: Vec<Scope>,
}

impl KeyGrant {
    /// The grant of a key with `scopes` created by a user whose role is now `creator_role`.
    pub fn new(key_id: uuid::Uuid, scopes: impl IntoIterator<Item = Scope>, creator_role: Role) -> Self {
        let mut scopes: Vec<Scope> = scopes
            .into_iter()
            .filter(|scope| creator_role.has(scope.permission()))
            .collect();
        scopes.sort();
        scopes.dedup();
        Self { key_id, scopes }
    }

    /// Whether any of the grant's scopes lets it reach `field` of `root`.
    pub fn allows(&self, root: Root, field: &str) -> bool {
        self.scopes.iter().any(|scope| scope.allows(root, field))
    }
}

/// A freshly minted secret: shown to its creator once, then only its digest exists.
pub struct NewSecret {
    /// `ovx_<16 hex>`: stored, shown in listings, and how a presented secret is found.
    pub prefix: String,
    /// The whole secret.
    pub secret: String,
}

/// Mints a new secret from the operating system's random source.
pub fn generate() -> NewSecret {
    let mut rng = rand::rngs::OsRng;
    let mut id = [0u8; ID_HEX_CHARS / 2];
    rng.fill_bytes(&mut id);
    let mut random = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut random);
    let prefix = format!("{SECRET_PREFIX}{}", hex::encode(id));
    let secret = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random));
    NewSecret { prefix, secret }
}

/// Whether a bearer token claims to be an API key (rather than a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(SECRET_PREFIX)
}

/// The public prefix of a well-formed secret; None for anything malformed.
pub fn parse(secret: &str) -> Option<&str> {
    if secret.len() != SECRET_LEN || !secret.is_ascii() {
        return None;
    }
    let prefix = &secret[..SECRET_PREFIX.len() + ID_HEX_CHARS];
    let rest = &secret[prefix.len()..];
    let id_ok = prefix[SECRET_PREFIX.len()..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let random = rest.strip_prefix('_')?;
    let random_ok = random
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (secret.starts_with(SECRET_PREFIX) && id_ok && random_ok).then_some(prefix)
}

/// The digest stored for a secret.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two digests in time that depends only on their length.
pub fn digests_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape_and_parse_back() {
        let minted = generate();
        assert_eq!(minted.secret.len(), SECRET_LEN);
        assert!(minted.secret.starts_with(&minted.prefix));
        assert_eq!(parse(&minted.secret), Some(minted.prefix.as_str()));
        assert_ne!(generate().secret, minted.secret);
    }

    #[test]
    fn malformed_secrets_do_not_parse() {
        let good = generate().secret;
        for bad in [
            "",
            "ovx_",
            "ovx_zzzzzzzzzzzzzzzz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &good[..good.len() - 1],
            &format!("{good}A"),
            &good.replace("ovx_", "ovy_"),
            &format!("{}.{}", &good[..20], &good[21..]),
            &format!("{}é", &good[..good.len() - 2]),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn digests_compare_exactly() {
        let a = digest("one");
        assert!(digests_match(&a, &digest("one")));
        assert!(!digests_match(&a, &digest("two")));
        assert!(!digests_match(&a, &a[..31]));
    }

    #[test]
    fn scopes_round_trip_and_unknown_ones_are_refused() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("admin:write".parse::<Scope>().is_err());
    }

    #[test]
    fn a_grant_never_exceeds_the_creators_current_role() {
        let id = uuid::Uuid::new_v4();
        let grant = KeyGrant::new(id, Scope::ALL, Role::Supervisor);
        assert_eq!(
            grant.scopes,
            vec![Scope::KpiRead, Scope::ReportsRead, Scope::RealtimeRead]
        );
        assert!(!grant.allows(Root::Mutation, "recordCallEvents"));
        let viewer = KeyGrant::new(id, Scope::ALL, Role::Viewer);
        assert_eq!(viewer.scopes, vec![Scope::KpiRead, Scope::RealtimeRead]);
        assert!(viewer.allows(Root::Subscription, "liveKpis"));
        assert!(!viewer.allows(Root::Query, "analytics"));
    }

    #[test]
    fn report_exports_need_the_reports_scope() {
        let id = uuid::Uuid::new_v4();
        let reports = KeyGrant::new(id, [Scope::ReportsRead], Role::Supervisor);
        assert!(reports.allows(Root::Http, HTTP_REPORT_EXPORT));
        assert!(reports.allows(Root::Query, "report"));
        assert!(!reports.allows(Root::Mutation, "createReport"));
        let kpi = KeyGrant::new(id, [Scope::KpiRead, Scope::RealtimeRead], Role::Admin);
        assert!(!kpi.allows(Root::Http, HTTP_REPORT_EXPORT));
        assert!(!kpi.allows(Root::Query, "reports"));
    }

    #[test]
    fn management_fields_are_never_reachable() {
        let grant = KeyGrant::new(uuid::Uuid::new_v4(), Scope::ALL, Role::SuperAdmin);
        for (root, field) in [
            (Root::Mutation, "createApiKey"),
            (Root::Mutation, "revokeApiKey"),
            (Root::Query, "apiKeys"),
            (Root::Mutation, "createUser"),
            (Root::Mutation, "updateBusinessSettings"),
            (Root::Mutation, "logoutEverywhere"),
            (Root::Query, "me"),
            (Root::Query, "users"),
            (Root::Query, "auditLog"),
            (Root::Query, "verifyAuditChain"),
        ] {
            assert!(!grant.allows(root, field), "{field}");
        }
    }
}
