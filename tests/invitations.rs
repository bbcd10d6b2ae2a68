//! Invitations, password change and reset: single-use, expiring tokens stored only as
//! digests; e-mail through a real SMTP server (started by the test) or, without one, the
//! invitation token handed once to the inviting ADMIN; a reset request that answers the same
//! for every address; and access changes (deactivation, role change, reset) that close the
//! user's open sockets at once rather than at the next periodic check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod schedules_support;

use std::time::{Duration, Instant};

use common::{TestApp, TEST_PASSWORD};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::auth::Role;
use schedules_support::{Mail, SmtpServer};
use serde_json::{json, Value};

const INVITE: &str = "mutation($i: InviteUserInput!) { inviteUser(input: $i) {
    emailed token expiresAt user { id email role invitationPending } } }";
const RESEND: &str = "mutation($u: ID!) { resendInvitation(userId: $u) { emailed token } }";
const ACCEPT: &str = "mutation($t: String!, $p: String!) { acceptInvitation(token: $t, password: $p) {
    accessToken refreshToken user { email role invitationPending } } }";
const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, password: $p) { accessToken user { email } } }";
const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { accessToken } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
const SETTINGS_CHANGED: &str = "subscription { businessSettingsChanged { version } }";

fn invitation(email: &str, role: &str) -> Value {
    json!({ "i": { "email": email, "displayName": "Ivy Invited", "role": role } })
}

fn field_of(response: &common::GqlResponse) -> Option<String> {
    response.body["errors"][0]["extensions"]["fields"][0]["field"]
        .as_str()
        .map(str::to_owned)
}

async fn login(app: &TestApp, email: &str, password: &str) -> common::GqlResponse {
    app.gql(None, LOGIN, json!({ "e": email, "p": password })).await
}

async fn db(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.database.url).await.unwrap()
}

/// Moves every token of a user into the past, as if its lifetime had run out.
async fn expire_tokens(app: &TestApp, user_id: &str) {
    diesel::sql_query(format!(
        "UPDATE user_tokens SET created_at = now() - interval '8 days', expires_at = now() - interval '1 second'
         WHERE user_id = '{user_id}'"
    ))
    .execute(&mut db(app).await)
    .await
    .unwrap();
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::Text)]
    whole_row: String,
}

/// The one-time token in a message's body.
fn token_in(mail: &Mail) -> String {
    let start = mail.data.find("ovt_").expect("a token in the message");
    mail.data[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn wait_for_mail(smtp: &SmtpServer, to: &str) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(mail) = smtp.mails().into_iter().rev().find(|m| m.to == [to]) {
            return mail;
        }
        assert!(Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_smtp(smtp: &SmtpServer) -> impl FnOnce(&mut omnivox::config::Settings) + '_ {
    move |settings| {
        settings.smtp_url = Some(smtp.url());
        settings.smtp_from = "Omnivox <accounts@omnivox.test>".into();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_smtp_the_admin_gets_the_token_once_and_it_works_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;

    let invited = app
        .gql(Some(&admin), INVITE, invitation("Ivy@Acme.test", "SUPERVISOR"))
        .await;
    let invited = &invited.ok()["inviteUser"];
    assert_eq!(invited["emailed"], false);
    assert_eq!(invited["user"]["email"], "ivy@acme.test");
    assert_eq!(invited["user"]["invitationPending"], true);
    let token = invited["token"].as_str().unwrap().to_owned();
    // Only a digest is stored: the token appears nowhere in the database row.
    let rows: Vec<Stored> = diesel::sql_query("SELECT row_to_json(t)::text AS whole_row FROM user_tokens t")
        .load(&mut db(&app).await)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].whole_row.contains(&token[4..]), "the token is stored in clear");
    // The invited user cannot sign in before accepting, whatever they try.
    assert_eq!(
        login(&app, "ivy@acme.test", "").await.error_code(),
        Some("UNAUTHENTICATED")
    );

    // A weak password is refused and the token stays usable.
    let weak = app.gql(None, ACCEPT, json!({ "t": token, "p": "short" })).await;
    assert_eq!(weak.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_of(&weak).as_deref(), Some("password"));
    let accepted = app
        .gql(None, ACCEPT, json!({ "t": token, "p": "ivy-chose-this-one" }))
        .await;
    let accepted = &accepted.ok()["acceptInvitation"];
    assert_eq!(accepted["user"]["role"], "SUPERVISOR");
    assert_eq!(accepted["user"]["invitationPending"], false);
    let me = app
        .gql(accepted["accessToken"].as_str(), "{ me { email } }", json!({}))
        .await;
    assert_eq!(me.ok()["me"]["email"], "ivy@acme.test");
    assert!(login(&app, "ivy@acme.test", "ivy-chose-this-one").await.body["errors"].is_null());

    // Single use: the same token again is refused, and cannot change the password.
    let again = app
        .gql(None, ACCEPT, json!({ "t": token, "p": "someone-elses-password" }))
        .await;
    assert_eq!(again.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_of(&again).as_deref(), Some("token"));
    assert_eq!(
        login(&app, "ivy@acme.test", "someone-elses-password")
            .await
            .error_code(),
        Some("UNAUTHENTICATED")
    );
    // A forged token is refused the same way.
    let forged = app
        .gql(None, ACCEPT, json!({ "t": "ovt_forged", "p": "whatever-long-enough" }))
        .await;
    assert_eq!(field_of(&forged).as_deref(), Some("token"));
    // Accepted: nothing to resend.
    let user_id = invited["user"]["id"].as_str().unwrap();
    let resend = app.gql(Some(&admin), RESEND, json!({ "u": user_id })).await;
    assert_eq!(resend.error_code(), Some("CONFLICT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_invitation_is_refused_and_a_resent_one_replaces_it() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let invited = app
        .gql(Some(&admin), INVITE, invitation("late@acme.test", "AGENT"))
        .await;
    let user_id = invited.ok()["inviteUser"]["user"]["id"].as_str().unwrap().to_owned();
    let first = invited.ok()["inviteUser"]["token"].as_str().unwrap().to_owned();

    expire_tokens(&app, &user_id).await;
    let expired = app
        .gql(None, ACCEPT, json!({ "t": first, "p": "a-long-enough-password" }))
        .await;
    assert_eq!(expired.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_of(&expired).as_deref(), Some("token"));

    let resent = app.gql(Some(&admin), RESEND, json!({ "u": user_id })).await;
    let second = resent.ok()["resendInvitation"]["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let third = app.gql(Some(&admin), RESEND, json!({ "u": user_id })).await;
    let third = third.ok()["resendInvitation"]["token"].as_str().unwrap().to_owned();
    // Only the newest invitation works.
    let superseded = app
        .gql(None, ACCEPT, json!({ "t": second, "p": "a-long-enough-password" }))
        .await;
    assert_eq!(field_of(&superseded).as_deref(), Some("token"));
    let accepted = app
        .gql(None, ACCEPT, json!({ "t": third, "p": "a-long-enough-password" }))
        .await;
    assert_eq!(accepted.ok()["acceptInvitation"]["user"]["role"], "AGENT");

    // A deactivated invitee's token is refused.
    let invited = app
        .gql(Some(&admin), INVITE, invitation("gone@acme.test", "VIEWER"))
        .await;
    let gone = invited.ok()["inviteUser"].clone();
    app.gql(
        Some(&admin),
        "mutation($u: ID!) { deactivateUser(userId: $u) { active } }",
        json!({ "u": gone["user"]["id"] }),
    )
    .await
    .ok();
    let refused = app
        .gql(
            None,
            ACCEPT,
            json!({ "t": gone["token"], "p": "a-long-enough-password" }),
        )
        .await;
    assert_eq!(field_of(&refused).as_deref(), Some("token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_follow_the_role_rules_and_refuse_bad_input() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let other = app.create_org("other").await;
    let admin = app.token(&org, Role::Admin).await;
    let above = app
        .gql(Some(&admin), INVITE, invitation("boss@acme.test", "SUPER_ADMIN"))
        .await;
    assert_eq!(above.error_code(), Some("FORBIDDEN"));
    let taken = app
        .gql(Some(&admin), INVITE, invitation(&org.user(Role::Agent).email, "AGENT"))
        .await;
    assert_eq!(taken.error_code(), Some("CONFLICT"));
    let bad = app
        .gql(
            Some(&admin),
            INVITE,
            json!({ "i": { "email": "not-an-address", "displayName": " ", "role": "AGENT" } }),
        )
        .await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let fields: Vec<&str> = bad.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.email", "input.displayName"]);
    for role in [Role::Viewer, Role::Agent, Role::Supervisor] {
        let token = app.token(&org, role).await;
        let refused = app.gql(Some(&token), INVITE, invitation("x@acme.test", "VIEWER")).await;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{role}");
    }
    // Another tenant's user is unknown here.
    let foreign = app
        .gql(Some(&admin), RESEND, json!({ "u": other.user(Role::Viewer).id }))
        .await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    // Nothing was stored by the refusals.
    let users = app.gql(Some(&admin), "{ users { totalCount } }", json!({})).await;
    assert_eq!(users.ok()["users"]["totalCount"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_smtp_the_invitation_is_e_mailed_and_never_shown() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(with_smtp(&smtp)).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let invited = app
        .gql(Some(&admin), INVITE, invitation("mail@acme.test", "AGENT"))
        .await;
    let invited = &invited.ok()["inviteUser"];
    assert_eq!(invited["emailed"], true);
    assert!(invited["token"].is_null(), "an e-mailed token is not shown");
    let mail = wait_for_mail(&smtp, "mail@acme.test").await;
    assert!(mail.data.contains("Subject: Your invitation to"), "{}", mail.data);
    let token = token_in(&mail);
    let accepted = app
        .gql(None, ACCEPT, json!({ "t": token, "p": "from-the-mail-box" }))
        .await;
    assert_eq!(accepted.ok()["acceptInvitation"]["user"]["email"], "mail@acme.test");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_answers_the_same_for_every_address_and_its_token_works_once() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(with_smtp(&smtp)).await;
    let org = app.create_org("acme").await;
    let agent_email = org.user(Role::Agent).email.clone();
    let (old_access, old_refresh) = app.login(&agent_email).await;

    let known = app
        .gql(None, REQUEST_RESET, json!({ "e": agent_email.to_uppercase() }))
        .await;
    let unknown = app.gql(None, REQUEST_RESET, json!({ "e": "nobody@acme.test" })).await;
    assert_eq!(known.body, unknown.body, "the answers must not differ");
    assert_eq!(known.ok()["requestPasswordReset"], true);
    let mail = wait_for_mail(&smtp, &agent_email).await;
    let token = token_in(&mail);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.mails().iter().all(|m| m.to != ["nobody@acme.test"]),
        "no mail to an unknown address"
    );

    let weak = app.gql(None, RESET, json!({ "t": token, "p": "short" })).await;
    assert_eq!(field_of(&weak).as_deref(), Some("password"));
    let reset = app
        .gql(None, RESET, json!({ "t": token, "p": "a-brand-new-password" }))
        .await;
    assert_eq!(reset.ok()["resetPassword"]["user"]["email"], agent_email.as_str());
    // Every earlier credential is dead; the new password works, the old one does not.
    let old = app.gql(Some(&old_access), "{ me { id } }", json!({})).await;
    assert_eq!(old.error_code(), Some("UNAUTHENTICATED"));
    let refreshed = app
        .gql(
            None,
            "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }",
            json!({ "r": old_refresh }),
        )
        .await;
    assert_eq!(refreshed.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        login(&app, &agent_email, TEST_PASSWORD).await.error_code(),
        Some("UNAUTHENTICATED")
    );
    assert!(login(&app, &agent_email, "a-brand-new-password").await.body["errors"].is_null());
    // Single use.
    let again = app
        .gql(None, RESET, json!({ "t": token, "p": "yet-another-password" }))
        .await;
    assert_eq!(field_of(&again).as_deref(), Some("token"));

    // An expired reset token is refused.
    app.gql(None, REQUEST_RESET, json!({ "e": agent_email })).await.ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while smtp.mails().iter().filter(|m| m.to == [agent_email.clone()]).count() < 2 {
        assert!(Instant::now() < deadline, "no second mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = token_in(&wait_for_mail(&smtp, &agent_email).await);
    assert_ne!(late, token);
    expire_tokens(&app, &org.user(Role::Agent).id.to_string()).await;
    let expired = app
        .gql(None, RESET, json!({ "t": late, "p": "yet-another-password" }))
        .await;
    assert_eq!(field_of(&expired).as_deref(), Some("token"));
    // An invitation token is not a reset token (nor the reverse).
    let admin = app.token(&org, Role::Admin).await;
    let invited = app
        .gql(Some(&admin), INVITE, invitation("new@acme.test", "VIEWER"))
        .await;
    assert_eq!(invited.ok()["inviteUser"]["emailed"], true);
    let invitation_token = token_in(&wait_for_mail(&smtp, "new@acme.test").await);
    let crossed = app
        .gql(
            None,
            RESET,
            json!({ "t": invitation_token, "p": "yet-another-password" }),
        )
        .await;
    assert_eq!(field_of(&crossed).as_deref(), Some("token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_a_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let email = org.user(Role::Viewer).email.clone();
    let (access, _) = app.login(&email).await;
    let (other_device, _) = app.login(&email).await;

    let wrong = app
        .gql(
            Some(&access),
            CHANGE,
            json!({ "c": "not-my-password", "n": "a-better-password" }),
        )
        .await;
    assert_eq!(wrong.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_of(&wrong).as_deref(), Some("currentPassword"));
    let weak = app
        .gql(Some(&access), CHANGE, json!({ "c": TEST_PASSWORD, "n": "short" }))
        .await;
    assert_eq!(field_of(&weak).as_deref(), Some("newPassword"));
    let anonymous = app
        .gql(None, CHANGE, json!({ "c": TEST_PASSWORD, "n": "a-better-password" }))
        .await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));

    let changed = app
        .gql(
            Some(&access),
            CHANGE,
            json!({ "c": TEST_PASSWORD, "n": "a-better-password" }),
        )
        .await;
    let fresh = changed.ok()["changePassword"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(app.gql(Some(&fresh), "{ me { id } }", json!({})).await.body["errors"].is_null());
    let stale = app.gql(Some(&other_device), "{ me { id } }", json!({})).await;
    assert_eq!(stale.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        login(&app, &email, TEST_PASSWORD).await.error_code(),
        Some("UNAUTHENTICATED")
    );
    assert!(login(&app, &email, "a-better-password").await.body["errors"].is_null());

    // An API key cannot change its creator's password.
    let admin = app.token(&org, Role::Admin).await;
    let key = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(name: \"bi\", scopes: [\"kpi:read\"]) { secret } }",
            json!({}),
        )
        .await;
    let key = key.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let by_key = app
        .gql(
            Some(&key),
            CHANGE,
            json!({ "c": TEST_PASSWORD, "n": "a-better-password" }),
        )
        .await;
    assert_eq!(by_key.error_code(), Some("FORBIDDEN"));
}

/// With the default 30 s periodic check, only the bus notice can close these sockets in time.
#[tokio::test(flavor = "multi_thread")]
async fn deactivation_role_change_and_reset_close_the_users_sockets_at_once() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(with_smtp(&smtp)).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;

    let cases: [(Role, &str); 3] = [
        (Role::Viewer, "deactivate"),
        (Role::Agent, "role"),
        (Role::Supervisor, "reset"),
    ];
    for (role, change) in cases {
        let user = org.user(role);
        let token = app.token(&org, role).await;
        let mut socket = app.subscribe(&token, SETTINGS_CHANGED, json!({})).await;
        assert!(socket
            .next_data("businessSettingsChanged", Duration::from_secs(5))
            .await
            .is_some());
        match change {
            "deactivate" => {
                app.gql(
                    Some(&admin),
                    "mutation($u: ID!) { deactivateUser(userId: $u) { active } }",
                    json!({ "u": user.id }),
                )
                .await
                .ok();
            }
            "role" => {
                app.gql(
                    Some(&admin),
                    "mutation($u: ID!) { updateUserRole(userId: $u, role: VIEWER) { role } }",
                    json!({ "u": user.id }),
                )
                .await
                .ok();
            }
            _ => {
                app.gql(None, REQUEST_RESET, json!({ "e": user.email })).await.ok();
                let reset_token = token_in(&wait_for_mail(&smtp, &user.email).await);
                app.gql(None, RESET, json!({ "t": reset_token, "p": "after-the-reset-1" }))
                    .await
                    .ok();
            }
        }
        assert_eq!(
            socket.expect_close(Duration::from_secs(3)).await,
            Some(4403),
            "{change} should close the socket at once"
        );
    }
}
