//! Login, refresh-token rotation, reuse detection and logout, through GraphQL over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{TestApp, TEST_PASSWORD};
use omnivox::auth::Role;
use serde_json::json;

const ME: &str = "{ me { email role } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test(flavor = "multi_thread")]
async fn login_returns_tokens_that_work() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let response = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken expiresAt user { email role active } } }",
            json!({ "e": "  ADMIN@acme.test ", "p": TEST_PASSWORD }),
        )
        .await;
    let login = &response.ok()["login"];
    assert_eq!(login["user"]["email"], "admin@acme.test");
    assert_eq!(login["user"]["role"], "ADMIN");
    assert!(login["expiresAt"].as_str().is_some());
    let me = app.gql(login["accessToken"].as_str(), ME, json!({})).await;
    assert_eq!(me.ok()["me"]["email"], "admin@acme.test");
    let _ = org;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_unknown_email_and_inactive_user_fail_alike_and_are_audited() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let agent = org.user(Role::Agent);
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { deactivateUser(userId: $id) { active } }",
        json!({ "id": agent.id }),
    )
    .await
    .ok();
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    let mut messages = Vec::new();
    for (email, password) in [
        ("admin@acme.test", "wrong-password-123"),
        ("nobody@acme.test", TEST_PASSWORD),
        (agent.email.as_str(), TEST_PASSWORD),
    ] {
        let response = app.gql(None, login, json!({ "e": email, "p": password })).await;
        assert_eq!(response.error_code(), Some("UNAUTHENTICATED"), "{email}");
        assert!(response.data().is_null() || response.data()["login"].is_null());
        messages.push(response.error_message().map(str::to_owned));
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "failure messages differ: {messages:?}"
    );

    let mut conn = app.state.system_db.get().await.unwrap();
    let org_chain = omnivox::audit::recent(&mut conn, Some(org.id), 50).await.unwrap();
    let failed_in_org = org_chain.iter().filter(|r| r.action == "auth.login_failed").count();
    assert_eq!(
        failed_in_org, 2,
        "wrong password and inactive user are audited in the org chain"
    );
    let platform = omnivox::audit::recent(&mut conn, None, 50).await.unwrap();
    assert!(platform
        .iter()
        .any(|r| r.action == "auth.login_failed" && r.details["email"] == "nobody@acme.test"));
    assert!(omnivox::audit::verify_chain(&mut conn, Some(org.id))
        .await
        .unwrap()
        .intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let (_, first_refresh) = app.login(&org.user(Role::Supervisor).email).await;

    let rotated = app.gql(None, REFRESH, json!({ "t": first_refresh })).await;
    let second_refresh = rotated.ok()["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let access = rotated.ok()["refreshSession"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(
        app.gql(Some(&access), ME, json!({})).await.ok()["me"]["role"],
        "SUPERVISOR"
    );

    // The first token was used: presenting it again is theft or replay.
    let reuse = app.gql(None, REFRESH, json!({ "t": first_refresh })).await;
    assert_eq!(reuse.error_code(), Some("UNAUTHENTICATED"));
    // ... and the whole family is gone, including the legitimately rotated token.
    let after = app.gql(None, REFRESH, json!({ "t": second_refresh })).await;
    assert_eq!(after.error_code(), Some("UNAUTHENTICATED"));

    let mut conn = app.state.system_db.get().await.unwrap();
    let chain = omnivox::audit::recent(&mut conn, Some(org.id), 20).await.unwrap();
    assert!(chain.iter().any(|r| r.action == "auth.refresh_reuse"));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refreshes_with_one_token_yield_at_most_one_session() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let (_, refresh) = app.login(&org.user(Role::Agent).email).await;
    let attempts =
        futures_util::future::join_all((0..4).map(|_| app.gql(None, REFRESH, json!({ "t": refresh.clone() })))).await;
    let successes = attempts.iter().filter(|r| r.body.get("errors").is_none()).count();
    assert!(successes <= 1, "{successes} refreshes succeeded with one token");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_refresh_family() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let (_, refresh) = app.login(&org.user(Role::Viewer).email).await;
    let out = app
        .gql(
            None,
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(out.ok()["logout"], true);
    let again = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(again.error_code(), Some("UNAUTHENTICATED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_everywhere_revokes_access_tokens_at_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let (access, refresh) = app.login(&org.user(Role::Agent).email).await;
    let (other_device, _) = app.login(&org.user(Role::Agent).email).await;
    assert_eq!(
        app.gql(Some(&access), "mutation { logoutEverywhere }", json!({}))
            .await
            .ok()["logoutEverywhere"],
        true
    );
    for token in [&access, &other_device] {
        assert_eq!(
            app.gql(Some(token), ME, json!({})).await.error_code(),
            Some("UNAUTHENTICATED")
        );
    }
    assert_eq!(
        app.gql(None, REFRESH, json!({ "t": refresh })).await.error_code(),
        Some("UNAUTHENTICATED")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_is_not_a_refresh_token() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let (access, _) = app.login(&org.user(Role::Admin).email).await;
    let response = app.gql(None, REFRESH, json!({ "t": access })).await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
}
