//! The JWT attack set: forged, tampered, expired, premature, mis-addressed, wrong-kind and
//! revoked tokens, and garbage `Authorization` headers. Every one must make `me` answer
//! UNAUTHENTICATED, while a correctly minted token for the same user works (the control each
//! test asserts first, so a refusal is never an artefact of a broken setup).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::fixture::FixtureOrg;
use common::{GqlResponse, TestApp, TEST_JWT_SECRET, TEST_PASSWORD};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use omnivox::auth::Role;
use serde_json::{json, Value};

const ME: &str = "{ me { id } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";

/// A 40-byte secret that is not the server's.
const WRONG_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef01234567";

/// One user's genuine session: the app, the organization, the user, and a real access token
/// whose payload is the template for every forgery.
struct Fixture {
    app: TestApp,
    org: FixtureOrg,
    user_id: String,
    email: String,
    access: String,
    refresh: String,
}

impl Fixture {
    /// Starts an app, logs in as `role`, and asserts the genuine token works (the control).
    async fn new(role: Role) -> Self {
        let app = TestApp::spawn().await;
        let org = app.create_org("acme").await;
        let user = org.user(role).clone();
        let (access, refresh) = app.login(&user.email).await;
        let fixture = Self {
            app,
            user_id: user.id.to_string(),
            email: user.email,
            org,
            access,
            refresh,
        };
        let access = fixture.access.clone();
        fixture.assert_works(&access).await;
        fixture
    }

    /// The decoded payload of the genuine access token.
    fn claims(&self) -> Value {
        payload(&self.access)
    }

    /// `me` with a raw `Authorization` header value (or none).
    async fn me_with_header(&self, authorization: Option<&str>) -> GqlResponse {
        post_with_header(&self.app, authorization, ME, json!({})).await
    }

    async fn assert_works(&self, token: &str) {
        let response = self.me_with_header(Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.ok()["me"]["id"], self.user_id.as_str(), "{}", response.body);
    }

    /// The token, as a bearer token, must be refused: UNAUTHENTICATED and no `me`.
    async fn assert_refused(&self, token: &str, case: &str) {
        self.assert_header_refused(&format!("Bearer {token}"), case).await;
    }

    async fn assert_header_refused(&self, authorization: &str, case: &str) {
        let response = self.me_with_header(Some(authorization)).await;
        assert_refused(&response, case);
    }
}

#[track_caller]
fn assert_refused(response: &GqlResponse, case: &str) {
    assert_eq!(
        response.error_code(),
        Some("UNAUTHENTICATED"),
        "{case}: {}",
        response.body
    );
    assert!(
        response.data().is_null() || response.data()["me"].is_null(),
        "{case}: `me` answered: {}",
        response.body
    );
}

/// POSTs a GraphQL request with a raw `Authorization` header value.
async fn post_with_header(app: &TestApp, authorization: Option<&str>, query: &str, variables: Value) -> GqlResponse {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("sending the request: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    GqlResponse { status, body }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The decoded payload (middle segment) of a JWT.
fn payload(token: &str) -> Value {
    let segment = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("payload is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("payload is not JSON: {e}"))
}

/// Signs `claims` with `alg` and `secret`.
fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .unwrap_or_else(|e| panic!("signing a test token: {e}"))
}

/// Signs `claims` the way the server does (HS256, its secret).
fn sign_right(claims: &Value) -> String {
    sign(claims, Algorithm::HS256, TEST_JWT_SECRET.as_bytes())
}

/// A copy of `claims` without `claim`.
fn without(claims: &Value, claim: &str) -> Value {
    let mut copy = claims.clone();
    let removed = copy.as_object_mut().and_then(|map| map.remove(claim));
    assert!(removed.is_some(), "the genuine token has no `{claim}`: {claims}");
    copy
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("not an integer: {value}"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_signed_copy_of_a_genuine_token_is_accepted() {
    // Validates the forging helpers themselves: decoding the payload of a real token and
    // re-signing it with the server's secret yields a working token, so every refusal below is
    // due to the one thing each test changes.
    let f = Fixture::new(Role::Agent).await;
    let resigned = sign_right(&f.claims());
    f.assert_works(&resigned).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alg_none_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    let body = b64(f.claims().to_string().as_bytes());
    let original_signature = f.access.rsplit('.').next().unwrap_or_default().to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({ "alg": alg, "typ": "JWT" }).to_string().as_bytes());
        f.assert_refused(&format!("{header}.{body}."), &format!("alg {alg}, empty signature"))
            .await;
        f.assert_refused(&format!("{header}.{body}"), &format!("alg {alg}, no signature segment"))
            .await;
        f.assert_refused(
            &format!("{header}.{body}.{original_signature}"),
            &format!("alg {alg}, genuine signature kept"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_with_another_key_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    let forged = sign(&f.claims(), Algorithm::HS256, WRONG_SECRET);
    f.assert_refused(&forged, "HS256 with a wrong 40-byte key").await;
    // The server's secret with one byte changed.
    let mut near = TEST_JWT_SECRET.as_bytes().to_vec();
    near[0] ^= 1;
    let forged = sign(&f.claims(), Algorithm::HS256, &near);
    f.assert_refused(&forged, "HS256 with a near-miss key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_payload_under_the_original_signature_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    let parts: Vec<&str> = f.access.split('.').collect();
    assert_eq!(parts.len(), 3);

    let mut escalated = f.claims();
    escalated["role"] = json!("SUPER_ADMIN");
    let forged = format!("{}.{}.{}", parts[0], b64(escalated.to_string().as_bytes()), parts[2]);
    f.assert_refused(&forged, "role raised to SUPER_ADMIN, signature kept")
        .await;

    let mut impersonating = f.claims();
    impersonating["sub"] = json!(f.org.user(Role::Admin).id.to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(impersonating.to_string().as_bytes()),
        parts[2]
    );
    f.assert_refused(&forged, "sub swapped to the ADMIN, signature kept")
        .await;

    let mut extended = f.claims();
    extended["exp"] = json!(now() + 365 * 24 * 3600);
    let forged = format!("{}.{}.{}", parts[0], b64(extended.to_string().as_bytes()), parts[2]);
    f.assert_refused(&forged, "exp extended by a year, signature kept")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_role_claim_is_only_a_hint() {
    // Even a validly signed token (say, leaked signing pipeline) claiming SUPER_ADMIN grants the
    // role stored in the users row, never the claim.
    let f = Fixture::new(Role::Agent).await;
    let mut claims = f.claims();
    claims["role"] = json!("SUPER_ADMIN");
    let token = sign_right(&claims);
    let me = f.app.gql(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(me.ok()["me"]["role"], "AGENT");
    let users = f
        .app
        .gql(Some(&token), "{ users(first: 5) { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(users.error_code(), Some("FORBIDDEN"), "{}", users.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    for (age, case) in [
        (120, "expired 120 s ago"),
        (30, "expired 30 s ago (beyond the 10 s leeway)"),
    ] {
        let mut claims = f.claims();
        let exp = now() - age;
        claims["exp"] = json!(exp);
        claims["iat"] = json!(exp - 900);
        claims["nbf"] = json!(exp - 900);
        f.assert_refused(&sign_right(&claims), case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_yet_valid_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    let mut claims = f.claims();
    claims["nbf"] = json!(now() + 600);
    claims["exp"] = json!(now() + 1_500);
    f.assert_refused(&sign_right(&claims), "nbf 600 s in the future").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_and_audience_are_required_and_checked() {
    let f = Fixture::new(Role::Agent).await;
    let claims = f.claims();
    assert_eq!(claims["iss"], "omnivox");
    assert_eq!(claims["aud"], "omnivox-api");

    let missing_iss = without(&claims, "iss");
    f.assert_refused(&sign_right(&missing_iss), "missing iss").await;

    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil-issuer");
    f.assert_refused(&sign_right(&wrong_iss), "wrong iss").await;

    let missing_aud = without(&claims, "aud");
    f.assert_refused(&sign_right(&missing_aud), "missing aud").await;

    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("some-other-api");
    f.assert_refused(&sign_right(&wrong_aud), "wrong aud").await;

    let mut aud_list = claims.clone();
    aud_list["aud"] = json!(["some-other-api"]);
    f.assert_refused(&sign_right(&aud_list), "aud as a list without ours")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_required_claims_are_checked() {
    let f = Fixture::new(Role::Agent).await;
    for claim in ["exp", "nbf", "sub", "org", "tv", "typ"] {
        let claims = without(&f.claims(), claim);
        f.assert_refused(&sign_right(&claims), &format!("missing {claim}"))
            .await;
    }
    let mut unknown_kind = f.claims();
    unknown_kind["typ"] = json!("admin");
    f.assert_refused(&sign_right(&unknown_kind), "unknown typ").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_is_not_an_access_token() {
    let f = Fixture::new(Role::Agent).await;
    assert_eq!(payload(&f.refresh)["typ"], "refresh");
    f.assert_refused(&f.refresh, "refresh token as access token").await;
    // The refresh token is otherwise perfectly good: it still refreshes.
    let refreshed = f
        .app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": f.refresh }),
        )
        .await;
    assert!(refreshed.ok()["refreshSession"]["accessToken"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_users_token_is_refused_at_once() {
    let f = Fixture::new(Role::Agent).await;
    let admin = f.app.token(&f.org, Role::Admin).await;
    let response = f
        .app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { deactivateUser(userId: $id) { active } }",
            json!({ "id": f.user_id }),
        )
        .await;
    assert_eq!(response.ok()["deactivateUser"]["active"], false);
    // The token is unexpired and correctly signed, but its user is no longer active.
    assert!(int(&payload(&f.access)["exp"]) > now());
    f.assert_refused(&f.access, "token of a deactivated user").await;
    // Logging in again is refused too.
    let login = f
        .app
        .gql(None, LOGIN, json!({ "e": f.email, "p": TEST_PASSWORD }))
        .await;
    assert_eq!(login.error_code(), Some("UNAUTHENTICATED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bumped_token_version_revokes_older_tokens() {
    let f = Fixture::new(Role::Agent).await;
    let (other_device, _) = f.app.login(&f.email).await;
    f.assert_works(&other_device).await;

    // A validly signed token with a token version the user never had.
    let mut future_tv = f.claims();
    future_tv["tv"] = json!(int(&future_tv["tv"]) + 1);
    f.assert_refused(&sign_right(&future_tv), "tv ahead of the user's")
        .await;

    // logoutEverywhere from the other device bumps token_version (and evicts the cache).
    let out = f
        .app
        .gql(Some(&other_device), "mutation { logoutEverywhere }", json!({}))
        .await;
    assert_eq!(out.ok()["logoutEverywhere"], true);
    f.assert_refused(&f.access, "token issued before logoutEverywhere")
        .await;
    f.assert_refused(&other_device, "the token that called logoutEverywhere")
        .await;

    // A fresh login carries the new version and works.
    let (fresh, _) = f.app.login(&f.email).await;
    assert_eq!(payload(&fresh)["tv"], int(&payload(&f.access)["tv"]) + 1);
    f.assert_works(&fresh).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_version_bumped_in_the_database_bites_within_the_cache_window() {
    use diesel_async::RunQueryDsl;

    let f = Fixture::new(Role::Agent).await;
    // The control above loaded the users row into the server's auth cache.
    let mut conn = f
        .app
        .state
        .system_db
        .get()
        .await
        .unwrap_or_else(|e| panic!("a connection: {e:?}"));
    let bumped = diesel::sql_query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(f.org.user(Role::Agent).id)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("bumping token_version: {e}"));
    assert_eq!(bumped, 1);
    // A bump made behind the server's back (another instance, an operator's SQL) does not evict
    // this instance's cache of the users row: it is documented to bite within USER_CACHE_TTL
    // (5 s). Wait that window out, then the old token must be refused.
    tokio::time::sleep(omnivox::auth::principal::USER_CACHE_TTL + Duration::from_millis(100)).await;
    f.assert_refused(&f.access, "token older than a bump made in SQL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hs512_with_the_right_secret_is_refused() {
    let f = Fixture::new(Role::Agent).await;
    for alg in [Algorithm::HS512, Algorithm::HS384] {
        let forged = sign(&f.claims(), alg, TEST_JWT_SECRET.as_bytes());
        f.assert_refused(&forged, &format!("{alg:?} with the server's secret"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_authorization_is_refused_but_public_fields_still_answer() {
    let f = Fixture::new(Role::Agent).await;
    let headers = [
        "Bearer not.a.jwt".to_owned(),
        "Bearer ".to_owned(),
        "Bearer".to_owned(),
        "Basic abc".to_owned(),
        format!("Basic {}", f.access),
        // A genuine token without a scheme.
        f.access.clone(),
        "garbage".to_owned(),
        format!("Bearer {} extra", f.access),
        "Bearer ...".to_owned(),
        "Bearer e30.e30.".to_owned(),
    ];
    for header in &headers {
        f.assert_header_refused(header, &format!("Authorization: {header:?}"))
            .await;
        let login = post_with_header(&f.app, Some(header), LOGIN, json!({ "e": f.email, "p": TEST_PASSWORD })).await;
        assert!(
            login.ok()["login"]["accessToken"].is_string(),
            "login with Authorization: {header:?}: {}",
            login.body
        );
    }
    // No header at all is anonymous: also UNAUTHENTICATED on `me`.
    assert_refused(&f.me_with_header(None).await, "no Authorization header");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_whose_org_is_not_the_users_is_refused() {
    let f = Fixture::new(Role::Admin).await;
    let other = f.app.create_org("other").await;
    let mut claims = f.claims();
    claims["org"] = json!(other.id.to_string());
    f.assert_refused(&sign_right(&claims), "org claim of another organization")
        .await;

    let mut unknown = f.claims();
    unknown["org"] = json!(uuid::Uuid::new_v4().to_string());
    f.assert_refused(&sign_right(&unknown), "org claim of no organization")
        .await;

    // And a real user of the other org, presented with this org's id, likewise.
    let mut foreign = f.claims();
    foreign["sub"] = json!(other.user(Role::Admin).id.to_string());
    f.assert_refused(&sign_right(&foreign), "sub of the other org's admin with this org")
        .await;
}
