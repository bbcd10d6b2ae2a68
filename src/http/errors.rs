//! The one mapping from [`AppError`] to what an HTTP client receives, for every transport:
//! the status of each error code, the GraphQL error body (HTTP and WebSocket), and the plain
//! text answer of the webhooks.

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{AppError, ErrorCode};

/// The HTTP status of an error code, where the transport lets the error choose.
pub fn status_of(error: &AppError) -> StatusCode {
    match error.code() {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::OrganizationSuspended => StatusCode::FORBIDDEN,
        ErrorCode::BadUserInput => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"errors": [{message, extensions: {code}}]}` for an error raised before execution. The
/// message is the client message (internal detail is logged once, here, and masked).
pub fn graphql_body(error: &AppError) -> String {
    let gql = error.extend();
    let mut extensions = json!({ "code": error.code().as_str() });
    if let AppError::RateLimited { retry_after_secs } = error {
        extensions["retryAfterSeconds"] = json!(retry_after_secs);
    }
    json!({ "errors": [ {
        "message": gql.message,
        "extensions": extensions,
    } ] })
    .to_string()
}

/// An error of a plain HTTP endpoint (report exports): the status of its code and the GraphQL
/// error shape, so a client reads every error of the API the same way —
/// `{"errors": [{message, extensions: {code, fields?}}]}`. A 401 says how to authenticate.
pub fn json_response(error: &AppError) -> Response {
    let gql = error.extend(); // logs internal detail once; the message is the client's
    let mut extensions = json!({ "code": error.code().as_str() });
    if let AppError::BadUserInput { fields, .. } = error {
        if !fields.is_empty() {
            extensions["fields"] = json!(fields);
        }
    }
    let body = json!({ "errors": [ { "message": gql.message, "extensions": extensions } ] }).to_string();
    let status = status_of(error);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// A response that never executed: parse, validation or limit errors, no data, no path.
pub fn never_executed(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Parse, validation and input-coercion errors come from async-graphql without a code; they
/// are the client's to fix, so they get BAD_USER_INPUT. Errors of resolvers keep theirs.
pub fn add_default_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", ErrorCode::BadUserInput.as_str());
        }
    }
}

/// A plain-text answer for a machine sender (webhooks). The sender's own faults answer with
/// their status and message; anything on our side answers 503 so that the sender retries, and
/// its detail goes to the log only.
pub fn plain_text(error: &AppError) -> Response {
    let status = status_of(error);
    if status.is_server_error() {
        tracing::warn!(error = %error.operator_message(), "webhook not stored");
        return (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable, retry").into_response();
    }
    (status, error.client_message()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_ask_a_webhook_sender_to_retry_without_detail() {
        let response = plain_text(&AppError::internal("password=hunter2 in a connection string"));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = plain_text(&AppError::bad_input("Timestamp is in the future"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = plain_text(&AppError::NotFound("unknown organization".into()));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn plain_http_errors_carry_their_code_status_and_fields() {
        let response = json_response(&AppError::invalid_fields(vec![crate::error::FieldError::new(
            "from", "bad",
        )]));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = json_response(&AppError::Unauthenticated("no".into()));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(axum::http::header::WWW_AUTHENTICATE));
        let response = json_response(&AppError::internal("secret detail"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_graphql_body_masks_internal_detail() {
        let body = graphql_body(&AppError::internal("secret detail"));
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("\"code\":\"INTERNAL\""), "{body}");
    }
}
