//! GraphQL over HTTP and WebSocket.
//!
//! async-graphql-axum's stock handler labels every answer 200 and would run a mutation sent
//! over GET, so this module does its own transport (per the GraphQL-over-HTTP spec):
//! * `Accept: application/graphql-response+json` (or no Accept) → that media type, and 400 for
//!   a request that never executed (parse or validation failure, limits);
//! * `Accept: application/json` → the legacy media type, 200 once the body was understood;
//! * malformed JSON, a missing query, a wrong content type → 400/415 in either case;
//! * GET runs queries only: a mutation or subscription over GET is 405 with `Allow: POST`.

use std::collections::HashMap;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::access::principal;
use crate::auth::principal::bearer_token;
use crate::error::AppError;
use crate::graphql::RequestContext;
use crate::http::{errors, ws, HttpState, REQUEST_ID_HEADER};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn as_str(self) -> &'static str {
        match self {
            MediaType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => APPLICATION_JSON,
        }
    }
}

/// Picks the response media type from `Accept`; None when the client accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::GraphqlResponseJson);
    };
    let types: Vec<String> = accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .collect();
    if types
        .iter()
        .any(|t| t == GRAPHQL_RESPONSE_JSON || t == "*/*" || t == "application/*")
    {
        Some(MediaType::GraphqlResponseJson)
    } else if types.iter().any(|t| t == APPLICATION_JSON) {
        Some(MediaType::Json)
    } else {
        None
    }
}

/// A response made of GraphQL errors only (the request never executed).
fn error_response(status: StatusCode, media: MediaType, error: &AppError) -> Response {
    let mut response = (status, errors::graphql_body(error)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media.as_str()));
    response
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Authenticates, executes with a time budget, and chooses the status code.
async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    request: async_graphql::Request,
    media: MediaType,
) -> Response {
    if request.query.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            media,
            &AppError::bad_input("the request has no query"),
        );
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth = match principal::resolve(&state.app, authorization).await {
        Ok(auth) => auth,
        Err(error) => return error_response(errors::status_of(&error), media, &error),
    };
    let request = request.data(RequestContext {
        auth,
        request_id: request_id(headers),
    });
    let budget = state.app.settings.request_timeout;
    let Ok(response) = tokio::time::timeout(budget, state.schema.execute(request)).await else {
        let error = AppError::Unavailable(format!("request exceeded its time budget of {} s", budget.as_secs()));
        return error_response(errors::status_of(&error), media, &error);
    };
    // Parse, validation and limit errors carry no path and leave no data: nothing executed.
    let never_executed = errors::never_executed(&response);
    let mut response = response;
    errors::add_default_codes(&mut response);
    let status = if never_executed && media == MediaType::GraphqlResponseJson {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match serde_json::to_string(&response) {
        Ok(body) => {
            let mut http = (status, body).into_response();
            http.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media.as_str()));
            http
        }
        Err(e) => {
            let error = AppError::internal(e);
            error_response(errors::status_of(&error), media, &error)
        }
    }
}

/// `POST /graphql`: a JSON body `{query, variables?, operationName?, extensions?}`.
pub async fn post(State(state): State<HttpState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let Some(media) = negotiate(&headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            &AppError::bad_input(format!("accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}")),
        );
    };
    // The body limit (or a body that could not be read) answers as a GraphQL error too, so
    // clients parse one error shape whatever went wrong.
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::bad_input(format!(
                    "the request body is larger than {} bytes",
                    state.app.settings.max_body_bytes
                ))
            } else {
                AppError::bad_input("the request body could not be read")
            };
            return error_response(status, media, &error);
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != APPLICATION_JSON {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            &AppError::bad_input("POST /graphql takes Content-Type: application/json"),
        );
    }
    // Only a JSON object is a request: serde would also read an array positionally as the
    // request's fields, which must not execute (batches are not supported).
    let request = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(object)) => serde_json::from_value::<async_graphql::Request>(object.into()),
        Ok(serde_json::Value::Array(_)) => {
            let error = AppError::bad_input("batched requests are not supported; send one operation per request");
            return error_response(StatusCode::BAD_REQUEST, media, &error);
        }
        Ok(_) => {
            let error = AppError::bad_input("the body must be a JSON object {query, variables, operationName}");
            return error_response(StatusCode::BAD_REQUEST, media, &error);
        }
        Err(e) => Err(e),
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => {
            let error = AppError::bad_input(format!("the body is not a GraphQL request: {e}"));
            return error_response(StatusCode::BAD_REQUEST, media, &error);
        }
    };
    execute(&state, &headers, request, media).await
}

/// The operation a GET request would run, when the document parses.
fn operation_type(query: &str, operation_name: Option<&str>) -> Option<OperationType> {
    let document = async_graphql::parser::parse_query(query).ok()?;
    let mut operations = document.operations.iter();
    let found = match operation_name {
        Some(name) => operations.find(|(n, _)| n.map(|n| n.as_str()) == Some(name)),
        None => operations.next(),
    };
    found.map(|(_, op)| op.node.ty)
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL (`?query=…&variables=…`).
pub async fn get_or_websocket(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let is_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let request_id = request_id(&parts.headers);
        return websocket(state, upgrade, request_id);
    }
    let headers = parts.headers;
    let Some(media) = negotiate(&headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            &AppError::bad_input(format!("accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}")),
        );
    };
    let params: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let Some(query) = params.get("query") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            media,
            &AppError::bad_input("the request has no query"),
        );
    };
    let operation_name = params.get("operationName").filter(|n| !n.is_empty());
    if let Some(ty) = operation_type(query, operation_name.map(String::as_str)) {
        if ty != OperationType::Query {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                &AppError::bad_input("only queries may be sent over GET; send mutations and subscriptions with POST"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    let mut gql = async_graphql::Request::new(query.clone());
    if let Some(name) = operation_name {
        gql = gql.operation_name(name.clone());
    }
    if let Some(raw) = params.get("variables").filter(|v| !v.is_empty()) {
        match serde_json::from_str::<async_graphql::Variables>(raw) {
            Ok(variables) => gql = gql.variables(variables),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    media,
                    &AppError::bad_input("`variables` is not a JSON object"),
                )
            }
        }
    }
    execute(&state, &headers, gql, media).await
}

/// Reads the access token from a `connection_init` payload: `{"token": "…"}` or
/// `{"Authorization": "Bearer …"}`, keys in any case.
pub fn token_from_init_payload(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    object.iter().find_map(|(key, value)| {
        let value = value.as_str()?;
        match key.to_ascii_lowercase().as_str() {
            "token" => Some(value.trim().to_owned()),
            "authorization" => bearer_token(value).map(str::to_owned),
            _ => None,
        }
    })
}

/// The WebSocket side of `/graphql`: see [`ws`] (both sub-protocols, close codes, limits).
fn websocket(state: HttpState, upgrade: WebSocketUpgrade, request_id: Option<String>) -> Response {
    ws::upgrade(state, upgrade, request_id)
}

/// `GET /graphiql`: the in-browser IDE (subscriptions over the same endpoint).
pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accept_negotiation_follows_the_spec() {
        let mut headers = HeaderMap::new();
        assert_eq!(negotiate(&headers), Some(MediaType::GraphqlResponseJson));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(negotiate(&headers), Some(MediaType::Json));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/graphql-response+json;charset=utf-8, application/json;q=0.9"),
        );
        assert_eq!(negotiate(&headers), Some(MediaType::GraphqlResponseJson));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(negotiate(&headers), None);
    }

    #[test]
    fn init_payload_token_in_any_key_case() {
        assert_eq!(token_from_init_payload(&json!({"token": "abc"})), Some("abc".into()));
        assert_eq!(
            token_from_init_payload(&json!({"Authorization": "Bearer abc"})),
            Some("abc".into())
        );
        assert_eq!(
            token_from_init_payload(&json!({"authorization": "bearer abc"})),
            Some("abc".into())
        );
        assert_eq!(token_from_init_payload(&json!({"Authorization": "Basic abc"})), None);
        assert_eq!(token_from_init_payload(&json!("abc")), None);
    }

    #[test]
    fn get_refuses_non_queries() {
        assert_eq!(operation_type("{ me { id } }", None), Some(OperationType::Query));
        assert_eq!(
            operation_type("mutation { logoutEverywhere }", None),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            operation_type("query A { me { id } } mutation B { logoutEverywhere }", Some("B")),
            Some(OperationType::Mutation)
        );
    }
}
