//! GraphQL over HTTP: status codes and media types per the GraphQL-over-HTTP spec, GET for
//! queries only, request ids, body and document limits, production hardening, health probes,
//! and internal failures that never leak detail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{GqlResponse, TestApp, TEST_PASSWORD};
use omnivox::auth::Role;
use reqwest::header::{HeaderMap, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";
const ME: &str = "{ me { id } }";

/// What came back from a raw HTTP exchange.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request and reads the whole response.
async fn send(request: reqwest::RequestBuilder) -> Raw {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("sending the request: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Raw { status, headers, text }
}

/// GET of a plain path.
async fn get_path(app: &TestApp, path: &str) -> Raw {
    send(app.http.get(app.url(path))).await
}

/// POSTs `body` to /graphql with the given Accept and Content-Type (None: header not sent).
async fn post_raw(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
    token: Option<&str>,
) -> Raw {
    let mut request = app.http.post(app.url("/graphql")).body(body);
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    send(request).await
}

/// POSTs a GraphQL request as JSON with the given Accept.
async fn post_query(app: &TestApp, accept: &str, query: &str, token: Option<&str>) -> Raw {
    let body = json!({ "query": query }).to_string();
    post_raw(app, Some(accept), Some(APPLICATION_JSON), body, token).await
}

/// GET /graphql with query-string parameters.
async fn get_graphql(app: &TestApp, params: &[(&str, &str)], token: Option<&str>) -> Raw {
    let url = url::Url::parse_with_params(&app.url("/graphql"), params).unwrap_or_else(|e| panic!("a URL: {e}"));
    let mut request = app.http.get(url.as_str()).header(ACCEPT, GRAPHQL_RESPONSE_JSON);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    send(request).await
}

/// A request refused before execution: 400, graphql-response+json, errors, no data.
#[track_caller]
fn assert_refused_before_execution(raw: &Raw, case: &str) -> Value {
    assert_eq!(raw.status, 400, "{case}: {}", raw.text);
    assert!(
        raw.content_type().starts_with(GRAPHQL_RESPONSE_JSON),
        "{case}: {}",
        raw.content_type()
    );
    let body = raw.json();
    assert!(body.get("data").is_none(), "{case}: a `data` entry: {body}");
    assert!(body["errors"][0]["message"].is_string(), "{case}: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// 1. Malformed requests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_client_errors_with_a_json_body() {
    let app = TestApp::spawn().await;
    for accept in [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON] {
        let cases: [(&str, Option<&str>, &str, u16); 6] = [
            (
                "malformed JSON",
                Some(APPLICATION_JSON),
                r#"{"query": "{ me { id } }""#,
                400,
            ),
            ("not JSON at all", Some(APPLICATION_JSON), "query { me { id } }", 400),
            ("no query", Some(APPLICATION_JSON), r#"{"variables": {}}"#, 400),
            ("empty query", Some(APPLICATION_JSON), r#"{"query": "   "}"#, 400),
            (
                "batch (JSON array)",
                Some(APPLICATION_JSON),
                r#"[{"query": "{ me { id } }"}]"#,
                400,
            ),
            ("text/plain", Some("text/plain"), r#"{"query": "{ me { id } }"}"#, 415),
        ];
        for (case, content_type, body, status) in cases {
            let raw = post_raw(&app, Some(accept), content_type, body.to_owned(), None).await;
            assert_eq!(raw.status, status, "{case} ({accept}): {}", raw.text);
            let json = raw.json();
            assert!(json["errors"][0]["message"].is_string(), "{case}: {json}");
            assert!(json["data"].is_null(), "{case}: {json}");
        }
        let raw = post_raw(
            &app,
            Some(accept),
            None,
            r#"{"query": "{ me { id } }"}"#.to_owned(),
            None,
        )
        .await;
        assert_eq!(raw.status, 415, "no Content-Type ({accept}): {}", raw.text);
        let raw = post_raw(&app, Some(accept), Some(APPLICATION_JSON), Vec::<u8>::new(), None).await;
        assert_eq!(raw.status, 400, "empty body ({accept}): {}", raw.text);
        let raw = post_raw(
            &app,
            Some(accept),
            Some(APPLICATION_JSON),
            vec![0xff_u8, 0xfe, 0x00],
            None,
        )
        .await;
        assert_eq!(raw.status, 400, "binary body ({accept}): {}", raw.text);
    }
    // The batch refusal says why.
    let raw = post_raw(
        &app,
        None,
        Some(APPLICATION_JSON),
        r#"[{"query": "{ me { id } }"}]"#.to_owned(),
        None,
    )
    .await;
    assert!(
        raw.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("batch"),
        "{}",
        raw.text
    );
    // A charset parameter on application/json is fine.
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    let body = json!({ "query": ME }).to_string();
    let raw = post_raw(&app, None, Some("application/json; charset=utf-8"), body, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["me"]["id"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_array_body_is_never_executed() {
    // Batching is not supported: any JSON array body is a 400, whatever its elements. (serde's
    // derived struct deserializer also accepts a sequence, positionally: `["<query>"]` must not
    // slip through as `{"query": "<query>"}`.)
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    for body in [
        r#"[{"query": "{ me { id } }"}]"#,
        r#" [{"query": "{ me { id } }"}, {"query": "{ me { id } }"}]"#,
        r#"[]"#,
        r#"["{ me { id } }"]"#,
        r#"["query Q { me { id } }", "Q", {}]"#,
        r#"["mutation { logoutEverywhere }"]"#,
    ] {
        for accept in [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON] {
            let raw = post_raw(
                &app,
                Some(accept),
                Some(APPLICATION_JSON),
                body.to_owned(),
                Some(&token),
            )
            .await;
            assert_eq!(raw.status, 400, "array body {body} ({accept}) answered: {}", raw.text);
            let json = raw.json();
            assert!(json["errors"][0]["message"].is_string(), "{body}: {json}");
            assert!(json["data"].is_null(), "{body} executed: {json}");
        }
    }
    // Nothing ran: the token still works (no logoutEverywhere slipped through).
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me.ok()["me"]["id"], org.user(Role::Agent).id.to_string());
}

// ---------------------------------------------------------------------------------------------
// 2. Parse and validation errors, per media type
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn parse_and_validation_errors_follow_the_media_type() {
    let app = TestApp::spawn().await;
    for (case, query) in [("parse error", "{ me { id "), ("validation error", "{ nope }")] {
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, query, None).await;
        let body = assert_refused_before_execution(&raw, case);
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{case}: {body}"
        );

        // Legacy clients asking for application/json get 200 and application/json.
        let raw = post_query(&app, APPLICATION_JSON, query, None).await;
        assert_eq!(raw.status, 200, "{case}: {}", raw.text);
        assert!(
            raw.content_type().starts_with(APPLICATION_JSON),
            "{case}: {}",
            raw.content_type()
        );
        let body = raw.json();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{case}: {body}"
        );
        assert!(body["data"].is_null(), "{case}: {body}");

        // No Accept and */* are answered as application/json (see the SHOULD tests below).
        let raw = post_raw(
            &app,
            None,
            Some(APPLICATION_JSON),
            json!({ "query": query }).to_string(),
            None,
        )
        .await;
        assert_eq!(raw.status, 200, "{case}, no Accept: {}", raw.text);
        let raw = post_query(&app, "*/*", query, None).await;
        assert_eq!(raw.status, 200, "{case}, Accept */*: {}", raw.text);
    }
    // A successful request carries the negotiated media type too.
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    for accept in [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON] {
        let raw = post_query(&app, accept, ME, Some(&token)).await;
        assert_eq!(raw.status, 200, "{}", raw.text);
        assert!(
            raw.content_type().starts_with(accept),
            "{accept}: {}",
            raw.content_type()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The spec's SHOULDs (the graphql-http audit suite checks the same in CI)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_or_missing_accept_is_answered_as_application_json() {
    // Audits 47DE and 80D8: clients that predate application/graphql-response+json send `*/*`
    // or nothing, and expect application/json.
    let app = TestApp::spawn().await;
    let body = json!({ "query": "{ __typename }" }).to_string();
    for accept in [None, Some("*/*"), Some("application/*")] {
        let raw = post_raw(&app, accept, Some(APPLICATION_JSON), body.clone(), None).await;
        assert_eq!(raw.status, 200, "{accept:?}: {}", raw.text);
        assert!(
            raw.content_type().starts_with(APPLICATION_JSON),
            "{accept:?}: {}",
            raw.content_type()
        );
        assert_eq!(raw.json()["data"]["__typename"], "Query", "{accept:?}");
    }
    // Over GET too.
    let raw = send(app.http.get(app.url("/graphql?query=%7B__typename%7D"))).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(
        raw.content_type().starts_with(APPLICATION_JSON),
        "{}",
        raw.content_type()
    );
    // Naming the newer type still gets it, even beside a wildcard.
    let raw = post_raw(
        &app,
        Some("application/graphql-response+json, */*"),
        Some(APPLICATION_JSON),
        body,
        None,
    )
    .await;
    assert!(
        raw.content_type().starts_with(GRAPHQL_RESPONSE_JSON),
        "{}",
        raw.content_type()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_executed_has_no_data_entry() {
    // Audits D586 and 5E5B: a parse or validation failure answers `errors` only, no `data`
    // (not even null), under either media type.
    let app = TestApp::spawn().await;
    for (case, query) in [
        ("parse failure", "{"),
        ("validation failure", "{ 8f31403dfe404bccbb0e835f2629c6a7 }"),
        ("variable coercion failure", "query Q($id: ID!) { __typename }"),
    ] {
        for accept in [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON] {
            let raw = post_query(&app, accept, query, None).await;
            let body = raw.json();
            let object = body.as_object().unwrap();
            assert!(!object.contains_key("data"), "{case} ({accept}): {body}");
            assert!(body["errors"][0]["message"].is_string(), "{case} ({accept}): {body}");
            let expected = if accept == GRAPHQL_RESPONSE_JSON { 400 } else { 200 };
            assert_eq!(raw.status, expected, "{case} ({accept}): {body}");
        }
    }
    // An execution error keeps its `data` entry (null where the error nulled it).
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, ME, None).await;
    let body = raw.json();
    assert!(body.as_object().unwrap().contains_key("data"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unacceptable_accept_is_406() {
    let app = TestApp::spawn().await;
    let raw = post_query(&app, "text/html", ME, None).await;
    assert_eq!(raw.status, 406, "{}", raw.text);
    let raw = get_graphql(&app, &[], None).await;
    assert_ne!(raw.status, 406, "the GET helper sends an acceptable Accept");
    let raw = send(
        app.http
            .get(app.url("/graphql?query=%7B%20me%20%7B%20id%20%7D%20%7D"))
            .header(ACCEPT, "text/html"),
    )
    .await;
    assert_eq!(raw.status, 406, "GET: {}", raw.text);
}

// ---------------------------------------------------------------------------------------------
// 4. GET runs queries only
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn get_runs_queries() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    let raw = get_graphql(&app, &[("query", ME)], Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["me"]["id"], org.user(Role::Agent).id.to_string());

    // Variables and operationName over GET.
    let raw = get_graphql(
        &app,
        &[
            ("query", "query A { me { id } } query B { me { email } }"),
            ("operationName", "B"),
            ("variables", "{}"),
        ],
        Some(&token),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["me"]["email"], org.user(Role::Agent).email.as_str());

    // No query at all.
    let raw = get_graphql(&app, &[], Some(&token)).await;
    assert_eq!(raw.status, 400, "{}", raw.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_refuses_mutations_without_side_effects() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;

    let cases = [
        vec![("query", "mutation { logoutEverywhere }")],
        vec![("query", "mutation Out { logoutEverywhere }")],
        vec![
            ("query", "query Me { me { id } } mutation Out { logoutEverywhere }"),
            ("operationName", "Out"),
        ],
        vec![
            ("query", "mutation Out { logoutEverywhere } query Me { me { id } }"),
            ("operationName", "Out"),
        ],
        vec![("query", "subscription { businessSettingsChanged { version } }")],
    ];
    for params in &cases {
        let raw = get_graphql(&app, params, Some(&token)).await;
        assert_eq!(raw.status, 405, "{params:?}: {}", raw.text);
        assert_eq!(raw.header("allow"), Some("POST"), "{params:?}");
        assert!(raw.headers.get(ALLOW).is_some());
        assert!(
            raw.json()["errors"][0]["message"].is_string(),
            "{params:?}: {}",
            raw.text
        );
    }
    // Nothing ran: the token still works.
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me.ok()["me"]["id"], org.user(Role::Agent).id.to_string());

    // The query of a mixed document still runs over GET when chosen by name.
    let raw = get_graphql(
        &app,
        &[
            ("query", "query Me { me { id } } mutation Out { logoutEverywhere }"),
            ("operationName", "Me"),
        ],
        Some(&token),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["me"]["id"].is_string());
    // ... and still nothing was revoked.
    assert!(app.gql(Some(&token), ME, json!({})).await.ok()["me"]["id"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn get_with_variables_that_are_not_json_is_400() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    for variables in ["{not json", "undefined", "{\"a\": }"] {
        let raw = get_graphql(&app, &[("query", ME), ("variables", variables)], Some(&token)).await;
        assert_eq!(raw.status, 400, "variables {variables:?}: {}", raw.text);
        assert!(raw.json()["errors"][0]["message"].is_string());
    }
}

// ---------------------------------------------------------------------------------------------
// 4b. Automatic persisted queries (Apollo's APQ protocol)
// ---------------------------------------------------------------------------------------------

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn persisted_extension(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// POSTs `{query?, extensions}` (no `query` key at all when None).
async fn post_persisted(app: &TestApp, accept: &str, query: Option<&str>, hash: &str, token: Option<&str>) -> Raw {
    let mut body = json!({ "extensions": persisted_extension(hash) });
    if let Some(query) = query {
        body["query"] = json!(query);
    }
    post_raw(app, Some(accept), Some(APPLICATION_JSON), body.to_string(), token).await
}

/// GET /graphql with only the persisted query's hash.
async fn get_persisted(app: &TestApp, accept: &str, hash: &str, token: Option<&str>) -> Raw {
    let extensions = persisted_extension(hash).to_string();
    let url = url::Url::parse_with_params(&app.url("/graphql"), &[("extensions", extensions.as_str())]).unwrap();
    let mut request = app.http.get(url.as_str()).header(ACCEPT, accept);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    send(request).await
}

#[tokio::test(flavor = "multi_thread")]
async fn persisted_queries_register_then_run_by_hash_over_get_and_post() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    let me_id = org.user(Role::Agent).id.to_string();
    let query = "query Me { me { id } }";
    let hash = sha256_hex(query);

    // Unknown hash: the protocol's error, so that the client sends the document. 404 under the
    // newer media type (a 400 makes some clients give up on persisted queries), 200 under JSON.
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, Some(&token)).await;
    assert_eq!(raw.status, 404, "{}", raw.text);
    let body = raw.json();
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound", "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");
    let raw = post_persisted(&app, APPLICATION_JSON, None, &hash, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["errors"][0]["message"], "PersistedQueryNotFound");

    // The document with its hash runs and registers it.
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(query), &hash, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["me"]["id"], me_id.as_str());

    // Now the hash alone runs it, over GET and POST, for any caller (each as themselves).
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["me"]["id"], me_id.as_str(), "{}", raw.text);
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, None, &hash, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["me"]["id"], me_id.as_str());
    let admin = app.token(&org, Role::Admin).await;
    let raw = get_persisted(&app, APPLICATION_JSON, &hash, Some(&admin)).await;
    assert_eq!(raw.json()["data"]["me"]["id"], org.user(Role::Admin).id.to_string());
    // Without a token the persisted query runs as anonymous, and is refused as such.
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, None).await;
    assert_eq!(
        raw.json()["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED",
        "{}",
        raw.text
    );

    // A document whose hash is not the one sent: the protocol's refusal, nothing registered.
    let other = "query Other { me { email } }";
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(other), &hash, Some(&token)).await;
    let body = assert_refused_before_execution(&raw, "hash mismatch");
    assert_eq!(
        body["errors"][0]["message"], "provided sha does not match query",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &sha256_hex(other), Some(&token)).await;
    assert_eq!(
        raw.status, 404,
        "the mismatched document was not registered: {}",
        raw.text
    );
    // ... and the registered hash still runs its own document.
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, Some(&token)).await;
    assert_eq!(raw.json()["data"]["me"]["id"], me_id.as_str());

    // Another version of the protocol, or a malformed extension: a clear 400.
    for extensions in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let body = json!({ "extensions": extensions }).to_string();
        let raw = post_raw(
            &app,
            Some(GRAPHQL_RESPONSE_JSON),
            Some(APPLICATION_JSON),
            body,
            Some(&token),
        )
        .await;
        assert_refused_before_execution(&raw, &format!("extensions {extensions}"));
    }
    let raw = send(
        app.http
            .get(app.url("/graphql?extensions=%7Bnot%20json"))
            .header(ACCEPT, GRAPHQL_RESPONSE_JSON),
    )
    .await;
    assert_eq!(raw.status, 400, "{}", raw.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persisted_mutation_is_still_refused_over_get() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    // Registered by an anonymous POST (which itself fails, UNAUTHENTICATED: nothing revoked).
    let mutation = "mutation Out { logoutEverywhere }";
    let hash = sha256_hex(mutation);
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(mutation), &hash, None).await;
    assert_eq!(
        raw.json()["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED",
        "{}",
        raw.text
    );

    for accept in [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON] {
        let raw = get_persisted(&app, accept, &hash, Some(&token)).await;
        assert_eq!(raw.status, 405, "{accept}: {}", raw.text);
        assert_eq!(raw.header("allow"), Some("POST"));
        let body = raw.json();
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("only queries"),
            "{body}"
        );
        assert!(body.get("data").is_none(), "{body}");
    }
    // A subscription too.
    let subscription = "subscription { businessSettingsChanged { version } }";
    let hash = sha256_hex(subscription);
    post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(subscription), &hash, Some(&token)).await;
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, Some(&token)).await;
    assert_eq!(raw.status, 405, "{}", raw.text);

    // Nothing ran: the token still works.
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me.ok()["me"]["id"], org.user(Role::Agent).id.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn persisted_documents_obey_the_document_limits() {
    let app = TestApp::spawn().await;
    // Over the size limit: refused before it is parsed or registered.
    let big = format!("{{ {} }}", "__typename ".repeat(2_000));
    assert!(big.len() > app.state.settings.max_document_bytes);
    let hash = sha256_hex(&big);
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(&big), &hash, None).await;
    let body = assert_refused_before_execution(&raw, "oversized persisted document");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("bytes"),
        "{body}"
    );
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, None).await;
    assert_eq!(raw.status, 404, "{}", raw.text);

    // An alias bomb may be registered, but runs by hash into the same alias limit.
    let aliases: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let bomb = format!("{{ {aliases} }}");
    let hash = sha256_hex(&bomb);
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(&bomb), &hash, None).await;
    assert_refused_before_execution(&raw, "alias bomb with its document");
    let raw = get_persisted(&app, GRAPHQL_RESPONSE_JSON, &hash, None).await;
    let body = assert_refused_before_execution(&raw, "alias bomb by hash");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("aliases"),
        "{body}"
    );

    // A nesting bomb with its hash: a clean 400, the server lives on.
    let nest = format!("{{{}a{}}}", "a{".repeat(5_000), "}".repeat(5_000));
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(&nest), &sha256_hex(&nest), None).await;
    assert_refused_before_execution(&raw, "nesting bomb");
    assert_eq!(get_path(&app, "/livez").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn persisted_queries_can_be_turned_off() {
    let app = TestApp::spawn_with(|s| s.persisted_queries = 0).await;
    let query = "{ __typename }";
    let raw = post_persisted(&app, GRAPHQL_RESPONSE_JSON, Some(query), &sha256_hex(query), None).await;
    let body = assert_refused_before_execution(&raw, "persisted queries off");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotSupported", "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_SUPPORTED",
        "{body}"
    );
    // Plain requests are unaffected.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, query, None).await;
    assert_eq!(raw.json()["data"]["__typename"], "Query");
}

// ---------------------------------------------------------------------------------------------
// 5. Request ids
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_request_id_and_a_client_id_is_echoed() {
    let app = TestApp::spawn().await;
    let mut generated = Vec::new();
    let responses = [
        ("POST ok-ish", post_query(&app, GRAPHQL_RESPONSE_JSON, ME, None).await),
        (
            "POST parse error",
            post_query(&app, GRAPHQL_RESPONSE_JSON, "{", None).await,
        ),
        (
            "POST 415",
            post_raw(&app, None, Some("text/plain"), "x".to_owned(), None).await,
        ),
        ("POST 406", post_query(&app, "text/html", ME, None).await),
        (
            "GET 405",
            get_graphql(&app, &[("query", "mutation { logoutEverywhere }")], None).await,
        ),
        ("livez", get_path(&app, "/livez").await),
        ("unknown path", get_path(&app, "/nope").await),
    ];
    for (case, raw) in &responses {
        let id = raw
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{case}: no x-request-id"));
        assert!(!id.is_empty(), "{case}");
        generated.push(id.to_owned());
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), responses.len(), "request ids repeat: {generated:?}");

    let mine = "client-chosen-id-0123456789";
    for path in ["/graphql", "/livez", "/nope"] {
        let raw = send(
            app.http
                .post(app.url(path))
                .header("x-request-id", mine)
                .header(CONTENT_TYPE, APPLICATION_JSON)
                .body(json!({ "query": ME }).to_string()),
        )
        .await;
        assert_eq!(raw.header("x-request-id"), Some(mine), "{path}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Body limit
// ---------------------------------------------------------------------------------------------

/// POSTs a 2 MiB GraphQL request over a raw socket and returns the response head (status line
/// and headers, lower-cased names). The server answers 413 after reading the first MiB and
/// closes the connection while the client is still uploading; an HTTP client library then
/// often reports the failed write instead of the response, so this client writes from one task
/// (ignoring write errors) and reads the response from another.
async fn post_two_mebibytes(app: &TestApp, chunked: bool) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let padding = "x".repeat(2 * 1024 * 1024);
    let body = json!({ "query": ME, "variables": { "pad": padding } })
        .to_string()
        .into_bytes();
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/graphql-response+json\r\nx-request-id: big-body\r\n{framing}\r\n\r\n",
        app.addr
    );
    let upload = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            if chunked {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                writer.write_all(chunk).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(chunk).await?;
            }
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        writer.flush().await
    });
    let mut received = Vec::new();
    let mut buffer = [0_u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            other => panic!(
                "no response head ({other:?}); got {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    upload.abort();
    let text = String::from_utf8_lossy(&received).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
    let headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.settings.max_body_bytes, 1024 * 1024);
    // A syntactically valid request of 2 MiB (the padding is a variable value), announced by
    // Content-Length, then streamed chunked without a length.
    for chunked in [false, true] {
        let (status, headers) = post_two_mebibytes(&app, chunked).await;
        assert_eq!(status, 413, "chunked: {chunked}, headers: {headers:?}");
        let request_id = headers
            .iter()
            .find(|(name, _)| name == "x-request-id")
            .map(|(_, v)| v.as_str());
        assert_eq!(request_id, Some("big-body"), "chunked: {chunked}");
        let content_type = headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            content_type,
            Some("application/graphql-response+json"),
            "a GraphQL error body, chunked: {chunked}"
        );
    }
    // The server is fine afterwards.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, "{ __typename }", None).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
}

// ---------------------------------------------------------------------------------------------
// 7. Document limits
// ---------------------------------------------------------------------------------------------

/// `{ __schema { types { fields { type { ofType { … { name } … } } } } } }` with `n` ofType.
fn introspection_nest(n: usize) -> String {
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(n),
        " }".repeat(n)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_depth_bomb_is_refused_before_execution() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.settings.max_depth, 12);
    // Control: a shallow nesting runs.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &introspection_nest(2), None).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["__schema"]["types"].is_array());
    // __schema(1) types(2) fields(3) type(4) ofType×10 (14) name(15): deeper than 12.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &introspection_nest(10), None).await;
    let body = assert_refused_before_execution(&raw, "depth 15");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("too deep"),
        "{body}"
    );
    // Way deeper still: still a clean 400.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &introspection_nest(200), None).await;
    assert_refused_before_execution(&raw, "depth 205");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parser_nesting_bomb_is_a_clean_400() {
    // `{a{a{a{…}}}}` thousands deep: must not exhaust the parser's stack (which would abort the
    // process), over POST and over GET (where the operation type is parsed before anything else).
    let app = TestApp::spawn().await;
    for n in [1_000, 5_000] {
        let query = format!("{{{}a{}}}", "a{".repeat(n), "}".repeat(n));
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &query, None).await;
        assert_refused_before_execution(&raw, &format!("POST nesting {n}"));
        let raw = get_graphql(&app, &[("query", &query)], None).await;
        assert_refused_before_execution(&raw, &format!("GET nesting {n}"));
    }
    let live = get_path(&app, "/livez").await;
    assert_eq!(live.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complexity_bomb_is_refused_before_execution() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let page = "users(first: 100) { edges { node { id email displayName role active createdAt } } }";
    // Control: one page runs.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &format!("{{ {page} }}"), Some(&admin)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["users"]["edges"].is_array());
    // 25 aliases (under the alias limit of 30) × a 100-row page each.
    let fields: String = (0..25).map(|i| format!("u{i}: {page} ")).collect();
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &format!("{{ {fields}}}"), Some(&admin)).await;
    let body = assert_refused_before_execution(&raw, "complexity bomb");
    let message = body["errors"][0]["message"].as_str().unwrap_or("").to_lowercase();
    assert!(message.contains("complex"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_bomb_is_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    let aliased = |n: usize| {
        format!(
            "{{ {}}}",
            (0..n).map(|i| format!("a{i}: me {{ id }} ")).collect::<String>()
        )
    };
    // Control: exactly the limit runs.
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &aliased(30), Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["a29"]["id"].is_string());
    for n in [31, 500] {
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &aliased(n), Some(&token)).await;
        let body = assert_refused_before_execution(&raw, &format!("{n} aliases"));
        let message = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("aliases"), "{body}");
    }
    // Aliases hidden in fragments count too.
    let fragment_query = format!(
        "{{ ...F }} fragment F on Query {{ {}}}",
        (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect::<String>()
    );
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &fragment_query, Some(&token)).await;
    let body = assert_refused_before_execution(&raw, "31 aliases in a fragment");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("aliases"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_document_is_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    assert_eq!(app.state.settings.max_document_bytes, 16 * 1024);
    // Control: a padded document just under the limit runs.
    let small = format!("# {}\n{{ me {{ id }} }}", "p".repeat(16 * 1024 - 100));
    assert!(small.len() <= 16 * 1024);
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &small, Some(&token)).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    // Over the limit: a comment, and whitespace inside the selection set.
    for document in [
        format!("# {}\n{{ me {{ id }} }}", "p".repeat(17 * 1024)),
        format!("{{ me {{{}id }} }}", " ".repeat(17 * 1024)),
    ] {
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &document, Some(&token)).await;
        let body = assert_refused_before_execution(&raw, "document over 16 KiB");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_over_the_maximum_names_first() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    for first in [101, 0, -1] {
        let response = app
            .gql(
                Some(&admin),
                "query($n: Int) { users(first: $n) { edges { node { id } } } }",
                json!({ "n": first }),
            )
            .await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "first {first}: {}",
            response.body
        );
        assert_eq!(
            response.body["errors"][0]["extensions"]["fields"][0]["field"], "first",
            "{}",
            response.body
        );
        assert!(response.data().is_null() || response.data()["users"].is_null());
    }
    let response = app
        .gql(
            Some(&admin),
            "{ users(first: 100) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(response.ok()["users"]["edges"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directive_flood_is_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    for n in [10, 500] {
        let query = format!("{{ me{} {{ id }} }}", " @skip(if: false)".repeat(n));
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, &query, Some(&token)).await;
        assert_ne!(raw.status, 500, "{}", raw.text);
        let body = assert_refused_before_execution(&raw, &format!("{n} directives"));
        let message = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("directive"), "{body}");
    }
    // Control: one directive is fine.
    let raw = post_query(
        &app,
        GRAPHQL_RESPONSE_JSON,
        "{ me @skip(if: false) { id } }",
        Some(&token),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(raw.json()["data"]["me"]["id"].is_string());
}

// ---------------------------------------------------------------------------------------------
// 8. Production hardening
// ---------------------------------------------------------------------------------------------

const INTROSPECT: &str = "{ __schema { queryType { name } } }";

fn production(s: &mut omnivox::config::Settings) {
    s.environment = omnivox::config::Environment::Production;
    // Production names the application's role explicitly (here: the one derived for tests).
    s.app_database_url = Some(s.app_database_url().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_introspection() {
    let app = TestApp::spawn_with(production).await;
    for (case, query, field) in [
        ("__schema", INTROSPECT, "__schema"),
        ("__type", "{ __type(name: \"User\") { fields { name } } }", "__type"),
    ] {
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, query, None).await;
        assert_ne!(raw.status, 500, "{case}: {}", raw.text);
        let body = raw.json();
        // Nothing of the schema may come back ...
        assert!(body["data"][field].is_null(), "{case}: introspection answered: {body}");
        // ... and the client must be told: `__schema: __Schema!` is non-null, so a bare null
        // with no error is not a valid GraphQL response, and looks like a server fault.
        assert!(
            body["errors"][0]["message"].is_string(),
            "{case}: introspection silently answered null instead of being refused: HTTP {} {body}",
            raw.status
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn production_hides_suggestions_and_graphiql() {
    let app = TestApp::spawn_with(production).await;

    // `mee` is the brief's example; `organizatoin` is close enough that development suggests.
    for misspelled in ["{ mee { id } }", "{ organizatoin { id } }"] {
        let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, misspelled, None).await;
        let body = assert_refused_before_execution(&raw, misspelled);
        assert!(
            !raw.text.contains("Did you mean"),
            "suggestions leak the schema: {body}"
        );
    }

    let graphiql = get_path(&app, "/graphiql").await;
    assert_eq!(graphiql.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn development_serves_introspection_suggestions_and_graphiql() {
    let app = TestApp::spawn().await;
    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, INTROSPECT, None).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["data"]["__schema"]["queryType"]["name"], "Query");

    let raw = post_query(&app, GRAPHQL_RESPONSE_JSON, "{ organizatoin { id } }", None).await;
    assert!(raw.text.contains("Did you mean"), "{}", raw.text);

    let graphiql = get_path(&app, "/graphiql").await;
    assert_eq!(graphiql.status, 200);
    assert!(
        graphiql.content_type().starts_with("text/html"),
        "{}",
        graphiql.content_type()
    );
    assert!(graphiql.text.to_lowercase().contains("graphiql"));
}

// ---------------------------------------------------------------------------------------------
// 9. Health probes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn livez_and_readyz_without_redis() {
    let app = TestApp::spawn_with(|s| s.redis_url = None).await;
    let live = get_path(&app, "/livez").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json(), json!({ "status": "ok" }));
    let ready = get_path(&app, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["postgres"], "up", "{body}");
    assert_eq!(body["redis"], "not_configured", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_with_redis_up() {
    let app = TestApp::spawn_with(|s| s.redis_url = Some(common::REDIS_URL.into())).await;
    let ready = get_path(&app, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["redis"], "up", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_degraded_when_redis_is_down_and_queries_still_work() {
    let app = TestApp::spawn_with(|s| s.redis_url = Some("redis://127.0.0.1:1".into())).await;
    let ready = get_path(&app, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["postgres"], "up", "{body}");
    assert_eq!(body["redis"], "down", "{body}");

    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Admin).await;
    let me = app.gql(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(me.ok()["me"]["role"], "ADMIN");
}

// ---------------------------------------------------------------------------------------------
// 10. Internal failures
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_internal_failure_leaks_no_detail() {
    use diesel_async::RunQueryDsl;

    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let email = org.user(Role::Agent).email.clone();
    let (token, _) = app.login(&email).await;

    // Break this test's own database under the running app: every query on `users` now fails
    // with "column … does not exist", an internal error.
    let mut conn = app
        .state
        .system_db
        .get()
        .await
        .unwrap_or_else(|e| panic!("a connection: {e:?}"));
    diesel::sql_query("ALTER TABLE users RENAME COLUMN display_name TO display_name_broken")
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("breaking the users table: {e}"));
    drop(conn);

    let login = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            json!({ "e": email, "p": TEST_PASSWORD }),
        )
        .await;
    let me = app.gql(Some(&token), "{ me { id displayName } }", json!({})).await;
    for (case, response) in [("login", &login), ("me", &me)] {
        let GqlResponse { status, body } = response;
        let code = response.error_code();
        assert!(
            matches!(code, Some("INTERNAL") | Some("UNAVAILABLE")),
            "{case}: {status} {body}"
        );
        // Only what the server wrote: `locations` legitimately has a "column" key.
        let error = &body["errors"][0];
        let text = format!("{} {}", error["message"], error["extensions"]).to_lowercase();
        for leak in [
            "display_name",
            "column",
            "database",
            "diesel",
            "postgres",
            "sql",
            "relation",
        ] {
            assert!(!text.contains(leak), "{case} leaks {leak:?}: {body}");
        }
    }
    assert_eq!(login.error_message(), Some("internal error"), "{}", login.body);
}
