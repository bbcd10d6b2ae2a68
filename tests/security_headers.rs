//! The production profile as a browser meets it: security headers on every answer (errors
//! included), HSTS only when configured, and CORS for the listed origins only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::TestApp;
use omnivox::auth::Role;
use serde_json::json;

fn assert_hardened(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    // A page with a policy of its own (the wallboard) keeps it; it forbids framing too.
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let org = app.create_org("headers").await;
    let token = org.token(&app.state, Role::Viewer).await;
    let ok = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_hardened(&ok, "GraphQL answer");
    assert!(
        ok.headers().get("strict-transport-security").is_none(),
        "no HSTS unless configured"
    );

    for (path, status) in [
        ("/livez", 200),
        ("/wallboard", 200),
        ("/nowhere", 404),
        ("/exports/x", 401),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_hardened(&response, path);
    }
    let refused = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    assert_hardened(&refused, "415");
    // No CORS list: no CORS headers, so browsers keep other sites out.
    let cross = app
        .http
        .get(app.url("/livez"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(cross.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn hsts_when_configured() {
    let app = TestApp::spawn_with(|s| s.hsts_max_age = Some(Duration::from_secs(31_536_000))).await;
    let response = app.http.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_listed_origins_only() {
    let app = TestApp::spawn_with(|s| {
        s.cors_allowed_origins = vec!["https://wall.example.com".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("https://wall.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://wall.example.com");
    let allow_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(headers.get("access-control-allow-credentials").is_none());

    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // The actual request from an allowed origin: the origin echoed, X-Request-Id readable.
    let org = app.create_org("cors").await;
    let token = org.token(&app.state, Role::Viewer).await;
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("origin", "https://wall.example.com")
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://wall.example.com"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert_hardened(&response, "cross-origin answer");
}

#[test]
fn production_refuses_to_start_without_its_secrets() {
    let mut settings = omnivox::config::Settings::for_database("postgres://db.internal/omnivox");
    settings.environment = omnivox::config::Environment::Production;
    settings.jwt_secret = None;
    settings.cors_allowed_origins = vec!["*".to_owned()];
    let error = match omnivox::AppState::new(settings) {
        Ok(_) => panic!("production started without a JWT secret"),
        Err(error) => error.client_message(),
    };
    assert!(error.contains("OMNIVOX_JWT_SECRET is required"), "{error}");
    assert!(error.contains("OMNIVOX_CORS_ALLOWED_ORIGINS"), "{error}");
    assert!(error.contains("OMNIVOX_APP_DATABASE_URL"), "{error}");
}
