//! Browser-facing hardening applied to every response: security headers and the CORS
//! allow-list.
//!
//! Headers (set unless a handler set its own):
//! * `X-Content-Type-Options: nosniff` — a JSON or CSV answer is never sniffed into HTML.
//! * `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'` — no page of
//!   this service (GraphiQL, the wallboard) can be framed by another site (clickjacking). The
//!   CSP names only `frame-ancestors`, so the pages' own scripts and styles are unaffected.
//! * `Referrer-Policy: no-referrer` — signed download links and ids in URLs never leak to
//!   other sites through the `Referer` header.
//! * `Strict-Transport-Security` only when `OMNIVOX_HSTS_MAX_AGE` is set: the service may sit
//!   behind a proxy that ends TLS, and HSTS on a plain-HTTP deployment would lock browsers out.
//!
//! CORS: `OMNIVOX_CORS_ALLOWED_ORIGINS` lists the origins whose pages may call the API; the
//! answer echoes an allowed origin only (never `*` with credentials), allows the methods and
//! headers the API uses (`Authorization` for bearer tokens and API keys, `Content-Type`,
//! `Accept`, `X-Request-Id`) and exposes the headers clients read (`X-Request-Id`,
//! `Retry-After`, `RateLimit-*`). No list: no CORS headers, so browsers keep other sites out.
//! Bearer tokens travel in a header, not a cookie, so credentials mode is not needed.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Settings;
use crate::http::REQUEST_ID_HEADER;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Adds the security headers and, when origins are configured, the CORS layer to `router`.
pub fn harden(router: Router, settings: &Settings) -> Router {
    let mut router = router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    if let Some(max_age) = settings.hsts_max_age {
        if let Ok(value) = HeaderValue::from_str(&format!("max-age={}; includeSubDomains", max_age.as_secs())) {
            router = router.layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                value,
            ));
        }
    }
    if let Some(cors) = cors(&settings.cors_allowed_origins) {
        router = router.layer(cors);
    }
    router
}

/// The CORS layer for an allow-list; None for an empty list.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        // Origins were checked when the settings were parsed (`config::parse_origin`).
        AllowOrigin::list(origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .expose_headers([
                HeaderName::from_static(REQUEST_ID_HEADER),
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
