//! `GET /wallboard`: the built-in wallboard page for the TVs of the contact centre.
//!
//! The page is three static files (HTML, CSS, JavaScript) compiled into the binary, so a
//! deployment needs no CDN, no build step and no file next to the executable. It is a plain
//! client of the public API: it signs in with the `login` mutation (or takes a token from the
//! URL fragment, which browsers never send to a server), follows `agentStates`, `liveKpis`,
//! `businessSettingsChanged` and `complianceAlerts` over `graphql-transport-ws`, and reconnects,
//! resyncs and refreshes its token by itself. Nothing here reads the database or the session:
//! every number on the page comes through the same guards as any other client's.
//!
//! The responses forbid inline scripts and any other origin (Content-Security-Policy), so the
//! page cannot be made to run or load anything it does not ship with.

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("wallboard/index.html");
const STYLE_CSS: &str = include_str!("wallboard/wallboard.css");
const SCRIPT_JS: &str = include_str!("wallboard/wallboard.js");

/// Only this origin, for scripts, styles, images and the GraphQL endpoint (HTTP and
/// WebSocket); no frames, no plugins, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

type Headers = [(HeaderName, HeaderValue); 5];

fn headers(content_type: &'static str) -> Headers {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // A new release must reach every screen: revalidate on each load (the files are small).
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ]
}

/// `GET /wallboard`: the page.
pub async fn page() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), INDEX_HTML)
}

/// `GET /wallboard/wallboard.css`.
pub async fn style() -> impl IntoResponse {
    (headers("text/css; charset=utf-8"), STYLE_CSS)
}

/// `GET /wallboard/wallboard.js`.
pub async fn script() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), SCRIPT_JS)
}
