//! Where the HTTP surface hands denied accesses to the audit trail (`state::audit_queue`): GraphQL
//! responses carrying FORBIDDEN, or UNAUTHENTICATED for a request that presented credentials;
//! the file routes' refusals; WebSocket initialisations with refused credentials and
//! subscriptions refused by a guard. One record per request (its refused paths listed), queued
//! without waiting. RATE_LIMITED is recorded by the rate limiter itself, which knows the
//! bucket and the cost.
//! The client address recorded is `http::client_addr`'s (the peer, or what a trusted proxy
//! says), the same one the rate limits key on.

use crate::access::principal::refused_caller;
use crate::auth::principal::bearer_token;
use crate::auth::Auth;
use crate::error::{AppError, ErrorCode};
use crate::state::audit_queue::{Denial, DeniedCaller};
use crate::state::AppState;

/// Who to record a denial against: the verified caller, or — for refused credentials — what
/// they can be believed to say. None for a request without credentials (an UNAUTHENTICATED
/// there is an ordinary "log in first", not a denial worth a record).
pub fn caller(state: &AppState, auth: &Auth, authorization: Option<&str>) -> Option<DeniedCaller> {
    match auth {
        Auth::Authenticated(principal) => Some(DeniedCaller::of(principal)),
        Auth::Anonymous => None,
        Auth::Rejected => {
            let token = authorization
                .map(|value| bearer_token(value).unwrap_or(value))
                .unwrap_or("");
            Some(refused_caller(state, token))
        }
    }
}

/// The code a GraphQL error carries, when it is one that is recorded.
fn denial_code(error: &async_graphql::ServerError) -> Option<ErrorCode> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) if code == "FORBIDDEN" => Some(ErrorCode::Forbidden),
        async_graphql::Value::String(code) if code == "UNAUTHENTICATED" => Some(ErrorCode::Unauthenticated),
        _ => None,
    }
}

/// The name of a document's only operation, when it has one (`query Peek { … }` → `Peek`).
pub fn operation_name(document: &str) -> Option<String> {
    let parsed = async_graphql::parser::parse_query(document).ok()?;
    let mut names = parsed.operations.iter().map(|(name, _)| name);
    match (names.next(), names.next()) {
        (Some(Some(name)), None) => Some(name.to_string()),
        _ => None,
    }
}

/// Request facts a denial record carries.
pub struct Request<'a> {
    pub surface: &'a str,
    pub operation: Option<&'a str>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

/// Queues one denial when the GraphQL errors hold a FORBIDDEN or UNAUTHENTICATED; FORBIDDEN
/// wins when both appear. Returns whether a denial was queued.
pub fn record_graphql(
    state: &AppState,
    caller: Option<DeniedCaller>,
    errors: &[async_graphql::ServerError],
    request: Request<'_>,
) -> bool {
    let Some(caller) = caller else {
        return false;
    };
    let denied: Vec<(&async_graphql::ServerError, ErrorCode)> = errors
        .iter()
        .filter_map(|error| denial_code(error).map(|code| (error, code)))
        .collect();
    let Some(&(first, _)) = denied.first() else {
        return false;
    };
    let code = if denied.iter().any(|(_, code)| *code == ErrorCode::Forbidden) {
        ErrorCode::Forbidden
    } else {
        ErrorCode::Unauthenticated
    };
    let paths = denied
        .iter()
        .map(|(error, _)| {
            error
                .path
                .iter()
                .map(|segment| match segment {
                    async_graphql::PathSegment::Field(name) => name.clone(),
                    async_graphql::PathSegment::Index(index) => index.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .filter(|path| !path.is_empty())
        .take(20)
        .collect();
    let mut denial = Denial::new(
        caller,
        code,
        request.surface,
        first.message.chars().take(200).collect::<String>(),
    );
    denial.operation = request.operation.map(|name| name.chars().take(100).collect());
    denial.paths = paths;
    denial.request_id = request.request_id;
    denial.client_addr = request.client_addr;
    state.audit_queue.record(denial)
}

/// Queues a denial for a plain-HTTP or WebSocket refusal given as an [`AppError`]; other
/// errors are not denials and are ignored.
pub fn record_error(state: &AppState, caller: Option<DeniedCaller>, error: &AppError, request: Request<'_>) -> bool {
    let code = error.code();
    if !matches!(code, ErrorCode::Forbidden | ErrorCode::Unauthenticated) {
        return false;
    }
    let Some(caller) = caller else {
        return false;
    };
    let mut denial = Denial::new(caller, code, request.surface, error.client_message());
    denial.operation = request.operation.map(str::to_owned);
    denial.request_id = request.request_id;
    denial.client_addr = request.client_addr;
    state.audit_queue.record(denial)
}

#[cfg(test)]
mod tests {
    use super::operation_name;

    #[test]
    fn the_only_named_operation_names_the_request() {
        assert_eq!(operation_name("query Peek { me { id } }"), Some("Peek".to_owned()));
        assert_eq!(operation_name("{ me { id } }"), None);
        assert_eq!(operation_name("query A { me { id } } query B { me { id } }"), None);
        assert_eq!(operation_name("not graphql"), None);
    }
}
