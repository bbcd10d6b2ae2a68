//! GraphQL over HTTP and WebSocket.
//!
//! async-graphql-axum's stock handler labels every answer 200 and would run a mutation sent
//! over GET, so this module does its own transport (per the GraphQL-over-HTTP spec):
//! * `Accept: application/graphql-response+json` → that media type, and 400 for a request that
//!   never executed (parse or validation failure, limits);
//! * `Accept: application/json`, `*/*` or no Accept → the legacy media type, 200 once the body
//!   was understood (the spec's advice while clients move to the newer type);
//! * a request that never executed has no `data` entry, whatever the media type;
//! * malformed JSON, a missing query, a wrong content type → 400/415 in either case;
//! * GET runs queries only: a mutation or subscription over GET is 405 with `Allow: POST`;
//! * automatic persisted queries (`extensions.persistedQuery`, POST or GET, see
//!   `graphql::persisted`): an unknown hash is 404 under the newer media type;
//! * rate limits (`crate::limits`): every answer carries `RateLimit-Limit`, `-Remaining` and
//!   `-Reset`; a request over budget is 429 with `Retry-After`, whatever the media type.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::access::principal;
use crate::auth::principal::bearer_token;
use crate::error::AppError;
use crate::graphql::read_only::{self, ReadOnlyRequest};
use crate::graphql::{persisted, RequestContext};
use crate::http::client_addr::{self, ClientAddr};
use crate::http::denials;
use crate::http::{errors, ws, HttpState, REQUEST_ID_HEADER};
use crate::limits::{Denial, Meter, Outcome};
use crate::state::audit_queue::DeniedCaller;
use crate::state::AppState;

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
///
/// The GraphQL-over-HTTP spec (during its "watershed" period) asks that a request without
/// `Accept`, or with only wildcards, be answered as if it accepted `application/json`: older
/// clients do not know the newer media type. A client that names
/// `application/graphql-response+json` gets it unless it prefers `application/json` by
/// q-value; `q=0` refuses a type.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    // (q, specificity) of the most specific range matching each type: 2 exact, 1 `type/*`, 0 `*/*`.
    let mut graphql_response: Option<(f32, u8)> = None;
    let mut json: Option<(f32, u8)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let consider = |slot: &mut Option<(f32, u8)>, specificity: u8| {
            if slot.is_none_or(|(_, s)| specificity > s) {
                *slot = Some((q, specificity));
            }
        };
        match range.as_str() {
            GRAPHQL_RESPONSE_JSON => consider(&mut graphql_response, 2),
            APPLICATION_JSON => consider(&mut json, 2),
            "application/*" => {
                consider(&mut graphql_response, 1);
                consider(&mut json, 1);
            }
            "*/*" => {
                consider(&mut graphql_response, 0);
                consider(&mut json, 0);
            }
            _ => {}
        }
    }
    let graphql_response = graphql_response.filter(|(q, _)| *q > 0.0);
    let json = json.filter(|(q, _)| *q > 0.0);
    match (graphql_response, json) {
        (None, None) => None,
        (Some(_), None) => Some(MediaType::GraphqlResponseJson),
        (None, Some(_)) => Some(MediaType::Json),
        // Named explicitly and not less wanted than JSON: the newer type.
        (Some((qg, 2)), Some((qj, _))) if qg >= qj => Some(MediaType::GraphqlResponseJson),
        (Some((qg, _)), Some((qj, _))) if qg > qj => Some(MediaType::GraphqlResponseJson),
        _ => Some(MediaType::Json),
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

/// Authenticates, executes with a time budget (charged to the caller's rate limit), and
/// chooses the status code.
async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    request: async_graphql::Request,
    media: MediaType,
    read_only: Option<ReadOnlyRequest>,
) -> Response {
    // A persisted query's hash stands for its document (the schema's extension looks it up).
    if request.query.trim().is_empty() && !request.extensions.contains_key("persistedQuery") {
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
    let limiter = &state.app.limiter;
    let meter = limiter
        .enabled()
        .then(|| Arc::new(Meter::new(limiter.query_bucket(&auth, client), client)));
    // Who a denial would be recorded against; a refused token is only looked at if needed.
    let verified_caller = match &auth {
        crate::auth::Auth::Authenticated(principal) => Some(DeniedCaller::of(principal)),
        _ => None,
    };
    let refused = matches!(auth, crate::auth::Auth::Rejected);
    // The same request again from a caller it was just refused to: the same answer, cheaply
    // (nothing copied, parsed, asked of Redis, logged or queued one by one).
    let fingerprint = meter.as_ref().map(|_| fingerprint(&request));
    if let (Some(meter), Some(fingerprint)) = (&meter, fingerprint) {
        if let Some(outcome) = limiter.recently_refused(&meter.bucket, fingerprint) {
            let caller = verified_caller.clone().unwrap_or_else(|| DeniedCaller::Unverified {
                claims: serde_json::json!({ "subject": meter.bucket.subject }),
            });
            return refused_again(
                &state.app,
                caller,
                media,
                meter,
                outcome,
                request_id(headers).as_deref(),
            )
            .await;
        }
    }
    // The operation's name for a denial record: named by the request, or else (parsed only if
    // a denial is recorded) by the document.
    let operation = request.operation_name.clone();
    let document = operation.is_none().then(|| request.query.clone());
    let mut request = request.data(RequestContext {
        auth,
        request_id: request_id(headers),
        client,
        meter: meter.clone(),
    });
    if let Some(read_only) = &read_only {
        request = request.data(read_only.clone());
    }
    let budget = state.app.settings.request_timeout;
    let Ok(response) = tokio::time::timeout(budget, state.schema.execute(request)).await else {
        let error = AppError::Unavailable(format!("request exceeded its time budget of {} s", budget.as_secs()));
        return error_response(errors::status_of(&error), media, &error);
    };
    // Parse, validation and limit errors carry no path and leave no data: nothing executed.
    let never_executed = errors::never_executed(&response);
    let mut response = response;
    errors::add_default_codes(&mut response);
    if !response.errors.is_empty() {
        let caller = match verified_caller {
            Some(caller) => Some(caller),
            None if refused => denials::caller(&state.app, &crate::auth::Auth::Rejected, authorization),
            None => None,
        };
        let operation = operation.or_else(|| document.as_deref().and_then(denials::operation_name));
        denials::record_graphql(
            &state.app,
            caller,
            &response.errors,
            denials::Request {
                surface: "graphql",
                operation: operation.as_deref(),
                request_id: request_id(headers),
                client_addr: client.map(|ip| ip.to_string()),
            },
        );
    }
    if read_only.as_ref().is_some_and(ReadOnlyRequest::refused) {
        let error = AppError::bad_input(read_only::ONLY_QUERIES);
        return get_refused(media, &error);
    }
    let refusal = meter.as_ref().and_then(|m| m.refusal());
    if let (Some(meter), Some(fingerprint)) = (&meter, fingerprint) {
        if let Some(charge) = meter.charge().filter(|c| !c.allowed) {
            limiter.remember_refusal(&meter.bucket, fingerprint, charge);
        }
    }
    let status = if refusal.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else if never_executed && media == MediaType::GraphqlResponseJson {
        // An unknown persisted-query hash is a 404 (as Apollo's servers answer): a client
        // library may take a 400 for "this server has no persisted queries" and stop using them.
        if first_code(&response) == Some(persisted::PERSISTED_QUERY_NOT_FOUND) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        }
    } else {
        StatusCode::OK
    };
    // A request that never executed has no `data` entry at all (GraphQL spec, "Response"): not
    // even `null`, which would read as "execution started and failed at the root".
    let body = if never_executed {
        serde_json::to_value(&response).and_then(|mut value| {
            if let Some(object) = value.as_object_mut() {
                object.remove("data");
            }
            serde_json::to_string(&value)
        })
    } else {
        serde_json::to_string(&response)
    };
    match body {
        Ok(body) => {
            let mut http = (status, body).into_response();
            http.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media.as_str()));
            if let Some(meter) = &meter {
                rate_limit_headers(http.headers_mut(), meter.charge(), refusal);
            }
            http
        }
        Err(e) => {
            let error = AppError::internal(e);
            error_response(errors::status_of(&error), media, &error)
        }
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the budget is
/// full again) of the query-cost charge, and `Retry-After` (seconds) on a refusal.
fn rate_limit_headers(headers: &mut HeaderMap, charge: Option<Outcome>, refusal: Option<Outcome>) {
    if let Some(charge) = charge {
        headers.insert("ratelimit-limit", HeaderValue::from(charge.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(charge.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(charge.reset_secs()));
    }
    if let Some(refusal) = refusal {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after_secs()));
    }
}

/// A hash of what determines a request's cost: document, variables, operation name and
/// persisted-query hash.
fn fingerprint(request: &async_graphql::Request) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.query.hash(&mut hasher);
    request.operation_name.hash(&mut hasher);
    serde_json::to_string(&request.variables)
        .unwrap_or_default()
        .hash(&mut hasher);
    if let Some(persisted) = request.extensions.get("persistedQuery") {
        serde_json::to_string(persisted).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

/// The 429 of a request refused moments ago (see `Limiter::recently_refused`), tallied for the
/// audit trail rather than recorded one by one (see `AuditQueue::rate_limited_again`), and
/// answered only after `Limiter::repeat_hold`: the client did not wait as it was told to.
async fn refused_again(
    app: &AppState,
    caller: DeniedCaller,
    media: MediaType,
    meter: &Meter,
    outcome: Outcome,
    request_id: Option<&str>,
) -> Response {
    app.audit_queue.rate_limited_again(
        caller,
        "graphql",
        &Denial {
            limit: meter.bucket.limit,
            subject: &meter.bucket.subject,
            client: meter.client,
            request_id,
            cost: outcome.cost,
            retry_after: outcome.retry_after,
        },
    );
    let hold = app.limiter.repeat_hold(&outcome);
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let outcome = outcome.later(hold);
    let error = AppError::RateLimited {
        retry_after_secs: outcome.retry_after_secs(),
    };
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, media, &error);
    rate_limit_headers(response.headers_mut(), Some(outcome), Some(outcome));
    response
}

/// `extensions.code` of the first error.
fn first_code(response: &async_graphql::Response) -> Option<&str> {
    let extensions = response.errors.first()?.extensions.as_ref()?;
    match extensions.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

/// 405 with `Allow: POST`: a mutation or subscription over GET.
fn get_refused(media: MediaType, error: &AppError) -> Response {
    let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED, media, error);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// `POST /graphql`: a JSON body `{query, variables?, operationName?, extensions?}`.
pub async fn post(
    State(state): State<HttpState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
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
    execute(&state, &headers, client, request, media, None).await
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL (`?query=…&variables=…`).
pub async fn get_or_websocket(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let client = client_addr::of_parts(&parts, &state.app.settings.trusted_proxies);
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
        return websocket(state, upgrade, request_id, client);
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
    // `query` may be left out when `extensions` carries a persisted query's hash.
    let query = params.get("query").cloned().unwrap_or_default();
    let mut gql = async_graphql::Request::new(query);
    if let Some(name) = params.get("operationName").filter(|n| !n.is_empty()) {
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
    if let Some(raw) = params.get("extensions").filter(|v| !v.is_empty()) {
        match serde_json::from_str::<async_graphql::Extensions>(raw) {
            Ok(extensions) => gql.extensions = extensions,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    media,
                    &AppError::bad_input("`extensions` is not a JSON object"),
                )
            }
        }
    }
    // Only a query runs: the schema refuses anything else before it executes (see
    // `graphql::read_only`), whether the document is in the URL or persisted.
    execute(&state, &headers, client, gql, media, Some(ReadOnlyRequest::default())).await
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
fn websocket(
    state: HttpState,
    upgrade: WebSocketUpgrade,
    request_id: Option<String>,
    client: Option<IpAddr>,
) -> Response {
    ws::upgrade(state, upgrade, request_id, client)
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
        assert_eq!(negotiate(&headers), Some(MediaType::Json), "no Accept");
        let cases = [
            ("application/json", Some(MediaType::Json)),
            ("*/*", Some(MediaType::Json)),
            ("application/*", Some(MediaType::Json)),
            (
                "application/graphql-response+json",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/graphql-response+json;charset=utf-8, application/json;q=0.9",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/json, application/graphql-response+json",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/graphql-response+json, */*",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/graphql-response+json;q=0.5, application/json",
                Some(MediaType::Json),
            ),
            ("application/graphql-response+json;q=0, */*", Some(MediaType::Json)),
            ("text/html, */*;q=0.1", Some(MediaType::Json)),
            ("text/html", None),
            ("application/json;q=0", None),
        ];
        for (accept, expected) in cases {
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(negotiate(&headers), expected, "{accept}");
        }
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
}
