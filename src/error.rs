//! The one error type at the API boundary.
//!
//! Every failure a client can see is an [`AppError`] with a stable `extensions.code`. Internal
//! failures (database, pool, bugs) are logged once, at the moment they are turned into a client
//! error, and reach the client only as `INTERNAL` with a generic message.

use async_graphql::ErrorExtensions;
use serde::Serialize;

/// The stable error codes of the API (`extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    /// The caller's organization is suspended (by platform staff): every request and socket of
    /// its users and API keys is refused with this code until it is resumed. Told apart from
    /// FORBIDDEN so a client can show "your organization is suspended" instead of retrying
    /// or asking for another role.
    OrganizationSuspended,
    BadUserInput,
    NotFound,
    Conflict,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::OrganizationSuspended => "ORGANIZATION_SUSPENDED",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// One invalid input field: its path in the input (e.g. `input.businessHours[2].open`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error with
/// no `code`, so every conversion must go through [`ErrorExtensions::extend`] below.
#[derive(Debug, Clone)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    /// The caller's organization is suspended.
    OrganizationSuspended,
    BadUserInput {
        message: String,
        fields: Vec<FieldError>,
    },
    NotFound(String),
    Conflict(String),
    RateLimited {
        retry_after_secs: u64,
    },
    Unavailable(String),
    /// The detail is for the log only; clients see "internal error".
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::OrganizationSuspended => ErrorCode::OrganizationSuspended,
            AppError::BadUserInput { .. } => ErrorCode::BadUserInput,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A BAD_USER_INPUT naming the offending fields; the message lists them too, so a client
    /// that only shows `message` still tells the user what to fix.
    pub fn invalid_fields(fields: Vec<FieldError>) -> Self {
        let summary = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        AppError::BadUserInput {
            message: format!("invalid input — {summary}"),
            fields,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        AppError::Internal(detail.to_string())
    }

    /// The message a client may see. Internal detail never leaves the process.
    pub fn client_message(&self) -> String {
        match self {
            AppError::Unauthenticated(m) | AppError::Forbidden(m) | AppError::NotFound(m) | AppError::Conflict(m) => {
                m.clone()
            }
            AppError::BadUserInput { message, .. } => message.clone(),
            AppError::OrganizationSuspended => {
                "this organization is suspended; contact the platform's support".to_owned()
            }
            AppError::RateLimited { retry_after_secs } => {
                format!("rate limit exceeded, retry after {retry_after_secs} s")
            }
            AppError::Unavailable(_) => "service temporarily unavailable, retry shortly".to_owned(),
            AppError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// The full message for the operator's own terminal (CLI), where internal detail helps.
    pub fn operator_message(&self) -> String {
        match self {
            AppError::Internal(detail) | AppError::Unavailable(detail) => detail.clone(),
            other => other.client_message(),
        }
    }

    /// Log internal failures once, at the boundary where they become a client error.
    fn log_if_internal(&self) {
        match self {
            AppError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            AppError::Unavailable(detail) => tracing::warn!(error = %detail, "service unavailable"),
            _ => {}
        }
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        self.log_if_internal();
        async_graphql::Error::new(self.client_message()).extend_with(|_, ext| {
            ext.set("code", self.code().as_str());
            match self {
                AppError::BadUserInput { fields, .. } if !fields.is_empty() => {
                    let list: Vec<async_graphql::Value> = fields
                        .iter()
                        .map(|f| {
                            let mut obj = async_graphql::indexmap::IndexMap::new();
                            obj.insert(async_graphql::Name::new("field"), f.field.clone().into());
                            obj.insert(async_graphql::Name::new("message"), f.message.clone().into());
                            async_graphql::Value::Object(obj)
                        })
                        .collect();
                    ext.set("fields", async_graphql::Value::List(list));
                }
                AppError::RateLimited { retry_after_secs } => {
                    ext.set("retryAfterSeconds", *retry_after_secs);
                }
                _ => {}
            }
        })
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            Error::NotFound => AppError::NotFound("not found".into()),
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Conflict("concurrent update, please retry".into())
            }
            Error::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                AppError::Unavailable(format!("database statement timeout: {}", info.message()))
            }
            _ => AppError::Internal(format!("database error: {err}")),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        AppError::Unavailable(format!("database pool: {err}"))
    }
}

/// A file error (export files): internal, its detail logged and masked.
impl From<std::io::Error> for AppError {
    fn from(err: std::io::Error) -> Self {
        AppError::Internal(format!("file: {err}"))
    }
}

impl From<serde_json::Error> for AppError {
    fn from(err: serde_json::Error) -> Self {
        AppError::Internal(format!("json: {err}"))
    }
}
