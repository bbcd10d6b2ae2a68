//! What the file routes (`/api/reports/{id}.{ext}`, `/exports/{runId}`, and the upload
//! `/api/import/calls`) share: the caller from `Authorization: Bearer` (a token, or an API key
//! whose scopes cover the route), the request id, and a file answer with its type, length and
//! download name.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::access::principal;
use crate::auth::api_key::{Root, Scope};
use crate::auth::jwt::invalid_token;
use crate::auth::{Auth, Principal};
use crate::error::{AppError, AppResult};
use crate::http::client_addr::ClientAddr;
use crate::http::denials;
use crate::http::{HttpState, REQUEST_ID_HEADER};
use crate::state::audit_queue::DeniedCaller;

/// The caller of a file route: 401 without credentials or with bad ones, 403 for an API key
/// whose scopes do not cover `route` (`what` names it in the message).
pub async fn caller(state: &HttpState, headers: &HeaderMap, route: &str, what: &str) -> AppResult<Principal> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match principal::resolve(&state.app, authorization).await? {
        Auth::Authenticated(caller) => caller,
        Auth::Anonymous => return Err(AppError::Unauthenticated("authentication required".into())),
        Auth::Rejected => return Err(invalid_token()),
    };
    if let Some(grant) = &caller.api_key {
        if !grant.allows(Root::Http, route) {
            let needed: Vec<&str> = Scope::ALL
                .into_iter()
                .filter(|scope| scope.allows(Root::Http, route))
                .map(Scope::as_str)
                .collect();
            return Err(AppError::Forbidden(format!(
                "this API key's scopes do not cover {what} ({})",
                needed.join(", ")
            )));
        }
    }
    Ok(caller)
}

/// Hands a refusal of a file route to the audit trail (see `http::denials`): the caller is
/// resolved again (only on this path, from the short-lived user cache); a refused download
/// link without credentials is recorded against nobody, with what it was.
pub async fn record_denial(state: &HttpState, headers: &HeaderMap, client: ClientAddr, route: &str, error: &AppError) {
    if !matches!(error, AppError::Forbidden(_) | AppError::Unauthenticated(_)) {
        return;
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match authorization {
        Some(_) => match principal::resolve(&state.app, authorization).await {
            Ok(auth) => denials::caller(&state.app, &auth, authorization),
            Err(_) => None,
        },
        None if matches!(error, AppError::Forbidden(_)) => Some(DeniedCaller::Unverified {
            claims: serde_json::json!({ "credential": "downloadLink" }),
        }),
        None => None,
    };
    denials::record_error(
        &state.app,
        caller,
        error,
        denials::Request {
            surface: route,
            operation: None,
            request_id: request_id(headers),
            client_addr: client.0.map(|ip| ip.to_string()),
        },
    );
}

/// The request's id (set by the request-id layer), for audit records.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A file to download: never cached, with its length when known and its name.
pub fn attachment(body: Body, content_type: &str, length: Option<u64>, filename: &str) -> Response {
    let mut response = body.into_response();
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(length) = length {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
