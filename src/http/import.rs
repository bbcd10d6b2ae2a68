//! `POST /api/import/calls`: the history import over HTTP (`ingest::history`), for an ADMIN's
//! bearer token or an API key with `ingest:write`. The body is the file: CSV (`text/csv`) or
//! NDJSON (`application/x-ndjson`), or as `?format=csv|ndjson` says. The answer is the import's
//! report as JSON: 200 when the rows were loaded (or were all there already), 422 with every
//! bad row (line, field, reason) when some row is bad, and then nothing was written. Bodies are
//! capped at [`MAX_IMPORT_BODY_BYTES`]; larger histories go through `omnivox import calls`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::api_key::HTTP_IMPORT_CALLS;
use crate::auth::{Permission, Tenant};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::file_routes::{caller, request_id};
use crate::http::{errors, HttpState};
use crate::ingest::history::{self, Format, ImportOptions, Importer, Source};

pub const ROUTE: &str = "/api/import/calls";
/// Largest body of one upload.
pub const MAX_IMPORT_BODY_BYTES: usize = 256 * 1024 * 1024;

fn format_of(params: &HashMap<String, String>, headers: &HeaderMap) -> AppResult<Format> {
    if let Some(name) = params.get("format") {
        return Format::from_name(&format!(".{name}"))
            .ok_or_else(|| AppError::invalid_fields(vec![FieldError::new("format", "csv or ndjson")]));
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_name)
        .ok_or_else(|| {
            AppError::invalid_fields(vec![FieldError::new(
                "format",
                "send Content-Type text/csv or application/x-ndjson, or ?format=csv|ndjson",
            )])
        })
}

async fn serve(
    state: &HttpState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let principal = caller(state, headers, HTTP_IMPORT_CALLS, "the history import").await?;
    if !principal.role.has(Permission::Ingest) {
        return Err(AppError::Forbidden(
            "importing calls requires role ADMIN or higher".into(),
        ));
    }
    let format = format_of(params, headers)?;
    let mut options = ImportOptions::new(format);
    options.request_id = request_id(headers);
    let report = history::import_calls(
        &state.app,
        &Tenant::of(&principal),
        Importer::of(&principal),
        Source::Bytes(Arc::from(body.as_ref())),
        options,
        Arc::new(|_| {}),
    )
    .await?;
    let status = if report.rejected_rows > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(report)).into_response())
}

pub async fn import_calls(
    State(state): State<HttpState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serve(&state, &params, &headers, body).await {
        Ok(response) => response,
        Err(error) => errors::json_response(&error),
    }
}
