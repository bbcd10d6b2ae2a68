//! Organizations for platform staff: a SUPER_ADMIN creates one with its first ADMIN invited,
//! lists them, suspends and resumes them. A suspension bites on the very next request of the
//! organization's users and API keys, on logins and refreshes, and closes their open sockets at
//! once (ORGANIZATION_SUSPENDED; 4403 on a socket). Every action is in the accessed
//! organization's audit chain.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::ws::GRAPHQL_TRANSPORT_WS;
use common::{TestApp, TEST_PASSWORD};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::auth::Role;
use serde_json::{json, Value};

const CREATE: &str = "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) {
    organization { id slug name timezone suspendedAt }
    firstAdmin { emailed token expiresAt user { id email role invitationPending } } } }";
const LIST: &str = "query($first: Int, $after: String) { organizations(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id slug suspendedAt } } } }";
const SUSPEND: &str =
    "mutation($o: ID!, $r: String) { suspendOrganization(orgId: $o, reason: $r) { id suspendedAt suspensionReason } }";
const RESUME: &str = "mutation($o: ID!) { resumeOrganization(orgId: $o) { id suspendedAt } }";
const ACCEPT: &str = "mutation($t: String!, $p: String!) { acceptInvitation(token: $t, password: $p) { accessToken user { email role } } }";
const SETTINGS_CHANGED: &str = "subscription { businessSettingsChanged { version } }";

fn new_org(slug: &str, admin_email: &str) -> Value {
    json!({ "i": {
        "name": "Globex Support", "slug": slug, "timezone": "Europe/Paris",
        "firstAdmin": { "email": admin_email, "displayName": "Gina Globex" } } })
}

#[derive(diesel::QueryableByName)]
struct Audit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    action: String,
}

async fn actions(app: &TestApp, org_id: &str) -> Vec<String> {
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    let rows: Vec<Audit> = diesel::sql_query(format!(
        "SELECT action FROM audit_log WHERE organization_id = '{org_id}' ORDER BY chain_seq"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.action).collect()
}

async fn chain_intact(app: &TestApp, org_id: uuid::Uuid) -> bool {
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    omnivox::audit::verify_chain(&mut conn, Some(org_id))
        .await
        .unwrap()
        .intact()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_super_admin_creates_an_organization_whose_first_admin_accepts_the_invitation() {
    let app = TestApp::spawn().await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;

    let created = app
        .gql(Some(&staff), CREATE, new_org("globex", "Gina@Globex.test"))
        .await;
    let created = &created.ok()["createOrganization"];
    let org_id = created["organization"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["organization"]["slug"], "globex");
    assert_eq!(created["organization"]["timezone"], "Europe/Paris");
    assert!(created["organization"]["suspendedAt"].is_null());
    let invitation = &created["firstAdmin"];
    assert_eq!(invitation["emailed"], false, "no SMTP server in this test");
    assert_eq!(invitation["user"]["email"], "gina@globex.test");
    assert_eq!(invitation["user"]["role"], "ADMIN");
    assert_eq!(invitation["user"]["invitationPending"], true);
    let token = invitation["token"].as_str().unwrap();

    // The first admin sets a password and runs their organization.
    let accepted = app
        .gql(None, ACCEPT, json!({ "t": token, "p": "globex-first-password" }))
        .await;
    let admin = accepted.ok()["acceptInvitation"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = app
        .gql(
            Some(&admin),
            "{ organization { id slug businessSettings { version } } }",
            json!({}),
        )
        .await;
    assert_eq!(own.ok()["organization"]["id"], org_id.as_str());
    assert_eq!(own.ok()["organization"]["businessSettings"]["version"], 1);
    // ...but not the platform's.
    assert_eq!(
        app.gql(Some(&admin), LIST, json!({})).await.error_code(),
        Some("FORBIDDEN")
    );

    // The creation is in the new organization's chain, before the invitation.
    let audit = actions(&app, &org_id).await;
    assert_eq!(
        audit[..3],
        ["organization.create", "user.invite", "user.invitation_accept"]
    );
    assert!(chain_intact(&app, org_id.parse().unwrap()).await);

    // The list pages through every organization.
    let first = app.gql(Some(&staff), LIST, json!({ "first": 1 })).await;
    let first = &first.ok()["organizations"];
    assert_eq!(first["totalCount"], 2);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let second = app
        .gql(
            Some(&staff),
            LIST,
            json!({ "first": 1, "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    let slugs = [
        first["edges"][0]["node"]["slug"].clone(),
        second.ok()["organizations"]["edges"][0]["node"]["slug"].clone(),
    ];
    assert_eq!(slugs, [json!("platform"), json!("globex")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn organization_creation_refuses_bad_input_and_duplicates_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;

    let bad = app
        .gql(
            Some(&staff),
            CREATE,
            json!({ "i": { "name": " ", "slug": "Not A Slug", "timezone": "Mars/Olympus",
                "firstAdmin": { "email": "nobody", "displayName": "" } } }),
        )
        .await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let fields: Vec<&str> = bad.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "input.name",
            "input.slug",
            "input.timezone",
            "input.firstAdmin.email",
            "input.firstAdmin.displayName"
        ]
    );

    // A slug in use, and an e-mail address in use (the whole creation is undone).
    let slug_taken = app
        .gql(Some(&staff), CREATE, new_org("platform", "new@globex.test"))
        .await;
    assert_eq!(slug_taken.error_code(), Some("CONFLICT"));
    let email_taken = app
        .gql(
            Some(&staff),
            CREATE,
            new_org("globex", &platform.user(Role::Admin).email),
        )
        .await;
    assert_eq!(email_taken.error_code(), Some("CONFLICT"));
    let list = app.gql(Some(&staff), LIST, json!({})).await;
    assert_eq!(list.ok()["organizations"]["totalCount"], 1, "nothing half-created");

    // Only platform staff.
    for role in [Role::Viewer, Role::Agent, Role::Supervisor, Role::Admin] {
        let token = app.token(&platform, role).await;
        let refused = app.gql(Some(&token), CREATE, new_org("other", "x@other.test")).await;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspension_refuses_the_next_request_logins_keys_and_open_sockets() {
    // The default 30 s re-check would be far too late: the socket must close on the notice.
    let app = TestApp::spawn().await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;
    let acme = app.create_org("acme").await;
    let other = app.create_org("other").await;
    let admin = app.token(&acme, Role::Admin).await;
    let other_admin = app.token(&other, Role::Admin).await;
    let (_, refresh) = app.login(&acme.user(Role::Viewer).email).await;
    let key = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(name: \"wallboard\", scopes: [\"kpi:read\", \"realtime:read\"]) { secret } }",
            json!({}),
        )
        .await;
    let key = key.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let viewer = app.token(&acme, Role::Viewer).await;
    let mut socket = app.subscribe(&viewer, SETTINGS_CHANGED, json!({})).await;
    assert!(socket
        .next_data("businessSettingsChanged", Duration::from_secs(5))
        .await
        .is_some());
    let mut key_socket = app.subscribe(&key, SETTINGS_CHANGED, json!({})).await;
    assert!(key_socket
        .next_data("businessSettingsChanged", Duration::from_secs(5))
        .await
        .is_some());
    assert!(app.gql(Some(&admin), "{ me { id } }", json!({})).await.body["errors"].is_null());

    let suspended = app
        .gql(Some(&staff), SUSPEND, json!({ "o": acme.id, "r": "unpaid invoices" }))
        .await;
    let suspended = &suspended.ok()["suspendOrganization"];
    assert!(suspended["suspendedAt"].is_string());
    assert_eq!(suspended["suspensionReason"], "unpaid invoices");

    // Open sockets close at once, a user's and a key's.
    assert_eq!(socket.expect_close(Duration::from_secs(3)).await, Some(4403));
    assert_eq!(key_socket.expect_close(Duration::from_secs(3)).await, Some(4403));
    // The next request, with a token or a key: a clear code, HTTP 403.
    for credential in [&admin, &key] {
        let refused = app.gql(Some(credential), "{ organization { id } }", json!({})).await;
        assert_eq!(refused.error_code(), Some("ORGANIZATION_SUSPENDED"));
        assert_eq!(refused.status, 403);
    }
    // Logins and refreshes too (a wrong password still says nothing more).
    let login = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            json!({ "e": acme.user(Role::Agent).email, "p": TEST_PASSWORD }),
        )
        .await;
    assert_eq!(login.error_code(), Some("ORGANIZATION_SUSPENDED"));
    let wrong = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            json!({ "e": acme.user(Role::Agent).email, "p": "not-the-password" }),
        )
        .await;
    assert_eq!(wrong.error_code(), Some("UNAUTHENTICATED"));
    let refreshed = app
        .gql(
            None,
            "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }",
            json!({ "r": refresh }),
        )
        .await;
    assert_eq!(refreshed.error_code(), Some("ORGANIZATION_SUSPENDED"));
    // A new socket is refused at init.
    let mut late = app.ws(GRAPHQL_TRANSPORT_WS).await;
    late.send_init(&viewer).await;
    assert_eq!(late.expect_close(Duration::from_secs(3)).await, Some(4403));
    // Other organizations are untouched; staff still reach the suspended one.
    assert!(app.gql(Some(&other_admin), "{ me { id } }", json!({})).await.body["errors"].is_null());
    let looked = app
        .gql(
            Some(&staff),
            "query($o: ID) { organization(orgId: $o) { slug suspendedAt } }",
            json!({ "o": acme.id }),
        )
        .await;
    assert_eq!(looked.ok()["organization"]["slug"], "acme");

    // Resumed: the same token works again, and so does the refresh token (it was not spent).
    let resumed = app.gql(Some(&staff), RESUME, json!({ "o": acme.id })).await;
    assert!(resumed.ok()["resumeOrganization"]["suspendedAt"].is_null());
    assert!(app.gql(Some(&admin), "{ me { id } }", json!({})).await.body["errors"].is_null());
    assert!(app.gql(Some(&key), "{ organization { id } }", json!({})).await.body["errors"].is_null());
    let refreshed = app
        .gql(
            None,
            "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }",
            json!({ "r": refresh }),
        )
        .await;
    assert!(refreshed.ok()["refreshSession"]["accessToken"].is_string());

    // Both actions are in acme's chain, next to the cross-tenant accesses; the chain holds.
    let audit = actions(&app, &acme.id.to_string()).await;
    let ours: Vec<&str> = audit
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("organization."))
        .collect();
    assert_eq!(ours, ["organization.suspend", "organization.resume"]);
    assert!(audit.iter().any(|a| a == "tenant.cross_access"));
    assert!(chain_intact(&app, acme.id).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn suspension_refuses_unknown_ids_own_organization_and_non_staff() {
    let app = TestApp::spawn().await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;
    let acme = app.create_org("acme").await;

    let unknown = app
        .gql(Some(&staff), SUSPEND, json!({ "o": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(unknown.error_code(), Some("NOT_FOUND"));
    let malformed = app.gql(Some(&staff), SUSPEND, json!({ "o": "nope" })).await;
    assert_eq!(malformed.error_code(), Some("NOT_FOUND"));
    let own = app.gql(Some(&staff), SUSPEND, json!({ "o": platform.id })).await;
    assert_eq!(own.error_code(), Some("CONFLICT"));
    let long = app
        .gql(Some(&staff), SUSPEND, json!({ "o": acme.id, "r": "x".repeat(501) }))
        .await;
    assert_eq!(long.error_code(), Some("BAD_USER_INPUT"));
    // An ADMIN cannot suspend, not even their own organization.
    let admin = app.token(&acme, Role::Admin).await;
    for op in [SUSPEND, RESUME] {
        let refused = app.gql(Some(&admin), op, json!({ "o": acme.id })).await;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    }
    // Idempotent: suspending twice records one suspension.
    app.gql(Some(&staff), SUSPEND, json!({ "o": acme.id })).await.ok();
    app.gql(Some(&staff), SUSPEND, json!({ "o": acme.id })).await.ok();
    let audit = actions(&app, &acme.id.to_string()).await;
    assert_eq!(audit.iter().filter(|a| *a == "organization.suspend").count(), 1);
    let still = app.gql(Some(&admin), "{ me { id } }", json!({})).await;
    assert_eq!(still.error_code(), Some("ORGANIZATION_SUSPENDED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspension_on_one_instance_closes_sockets_on_another() {
    // Two instances of one deployment, the bus through Redis.
    let app = TestApp::spawn_with(|s| s.redis_url = Some(common::REDIS_URL.into())).await;
    let peer = app.spawn_peer(|s| s.redis_url = Some(common::REDIS_URL.into())).await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;
    let acme = app.create_org("acme").await;
    let viewer = app.token(&acme, Role::Viewer).await;
    let mut socket = peer.subscribe(&viewer, SETTINGS_CHANGED, json!({})).await;
    assert!(socket
        .next_data("businessSettingsChanged", Duration::from_secs(5))
        .await
        .is_some());
    app.gql(Some(&staff), SUSPEND, json!({ "o": acme.id })).await.ok();
    assert_eq!(socket.expect_close(Duration::from_secs(3)).await, Some(4403));
    // The peer's next request is refused too (its cache forgot the organization's users).
    let refused = peer.gql(Some(&viewer), "{ me { id } }", json!({})).await;
    assert_eq!(refused.error_code(), Some("ORGANIZATION_SUSPENDED"));
}
