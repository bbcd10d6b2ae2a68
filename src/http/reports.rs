//! `GET /api/reports/{id}.{csv,json,xlsx,pdf}`: a saved report's export over plain HTTP, for BI
//! tools that cannot speak GraphQL (Excel, Power BI, a cron job with curl) and for people (the
//! XLSX workbook and the PDF document; `reports::formats` says what each holds).
//!
//! Authenticated like `/graphql`: `Authorization: Bearer` with an access token or an API key;
//! a key needs the `reports:read` scope (`auth::api_key::HTTP_REPORT_EXPORT`). The caller
//! sees the report as in GraphQL (a report it may not see is 404). Query parameters:
//! `from` and `to` (RFC 3339, both or neither) replace the report's range; `bom=1` starts a
//! CSV with a UTF-8 byte-order mark (for Excel). Errors are JSON in the GraphQL error shape
//! with their stable code: 401 UNAUTHENTICATED, 403 FORBIDDEN, 404 NOT_FOUND, 400
//! BAD_USER_INPUT (naming the parameter). Rendering and the audit record are
//! `reports::run::export`'s.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::auth::api_key::HTTP_REPORT_EXPORT;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::client_addr::ClientAddr;
use crate::http::{errors, file_routes, HttpState};
use crate::reports::formats::ExportFormat;
use crate::reports::run::{self, ExportRequest};
use crate::reports::saved;

/// The route, with `{file}` = `<report id>.<csv|json|xlsx|pdf>`.
pub const ROUTE: &str = "/api/reports/{file}";

/// An RFC 3339 instant. A `+` of an offset sent unencoded in a URL arrives as a space; it is
/// read as the `+` it was.
fn parse_instant(name: &str, raw: &str) -> Result<DateTime<Utc>, FieldError> {
    let repaired = raw.rsplit_once(' ').map(|(time, offset)| format!("{time}+{offset}"));
    DateTime::parse_from_rfc3339(raw)
        .or_else(|error| repaired.as_deref().map_or(Err(error), DateTime::parse_from_rfc3339))
        .map(|t| t.to_utc())
        .map_err(|_| FieldError::new(name, "not an RFC 3339 timestamp (e.g. 2026-01-05T00:00:00Z)"))
}

/// The request's export parameters; every bad one named.
fn export_request(file: &str, params: &HashMap<String, String>) -> AppResult<ExportRequest> {
    // A malformed id or an unknown format is as unknown as a foreign report.
    let (id, extension) = file.rsplit_once('.').ok_or_else(saved::not_found)?;
    let format = ExportFormat::from_extension(extension).ok_or_else(saved::not_found)?;
    let report_id = Uuid::parse_str(id).map_err(|_| saved::not_found())?;
    let mut errors = Vec::new();
    let mut instant = |name: &str| {
        params.get(name).and_then(|raw| match parse_instant(name, raw) {
            Ok(at) => Some(at),
            Err(error) => {
                errors.push(error);
                None
            }
        })
    };
    let (from, to) = (instant("from"), instant("to"));
    let range = match (from, to, params.contains_key("from"), params.contains_key("to")) {
        (Some(from), Some(to), _, _) => Some((from, to)),
        (_, _, true, false) => {
            errors.push(FieldError::new("to", "give `from` and `to` together"));
            None
        }
        (_, _, false, true) => {
            errors.push(FieldError::new("from", "give `from` and `to` together"));
            None
        }
        _ => None,
    };
    let bom = match params.get("bom").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => {
            errors.push(FieldError::new(
                "bom",
                "1 (or true) for a byte-order mark, 0 (or false) for none",
            ));
            false
        }
    };
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    Ok(ExportRequest {
        report_id,
        format,
        range,
        bom,
    })
}

async fn serve(
    state: &HttpState,
    file: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> AppResult<Response> {
    let caller = file_routes::caller(state, headers, HTTP_REPORT_EXPORT, "report exports").await?;
    let request = export_request(file, params)?;
    let export = run::export(&state.app, &caller, request, file_routes::request_id(headers)).await?;
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(export.file)));
    Ok(file_routes::attachment(
        body,
        export.content_type,
        Some(export.bytes),
        &export.filename,
    ))
}

/// The handler of [`ROUTE`].
pub async fn export(
    State(state): State<HttpState>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Response {
    match serve(&state, &file, &params, &headers).await {
        Ok(response) => response,
        Err(error) => {
            file_routes::record_denial(&state, &headers, client, HTTP_REPORT_EXPORT, &error).await;
            errors::json_response(&error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn fields(result: AppResult<ExportRequest>) -> Vec<String> {
        match result {
            Err(AppError::BadUserInput { fields, .. }) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => vec![format!("{:?}", other.code())],
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn parameters_are_read_and_every_bad_one_named() {
        let id = Uuid::new_v4();
        let ok = export_request(
            &format!("{id}.csv"),
            &params(&[
                ("from", "2026-01-05T00:00:00Z"),
                ("to", "2026-01-06T00:00:00+01:00"),
                ("bom", "1"),
            ]),
        );
        let ok = ok.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok.report_id, id);
        assert_eq!(ok.format, ExportFormat::Csv);
        assert!(ok.bom);
        assert_eq!(
            ok.range.map(|r| r.1.to_rfc3339()),
            Some("2026-01-05T23:00:00+00:00".into())
        );
        // An unencoded `+` arrives as a space.
        let spaced = export_request(
            &format!("{id}.json"),
            &params(&[("from", "2026-01-05T00:00:00 01:00"), ("to", "2026-01-06T00:00:00Z")]),
        );
        assert_eq!(
            spaced.ok().and_then(|r| r.range).map(|r| r.0.to_rfc3339()),
            Some("2026-01-04T23:00:00+00:00".into())
        );
        assert_eq!(
            fields(export_request(
                &format!("{id}.json"),
                &params(&[("from", "yesterday"), ("bom", "yes")])
            )),
            ["from", "to", "bom"]
        );
        assert_eq!(fields(export_request(&format!("{id}.xls"), &params(&[]))), ["NotFound"]);
        assert_eq!(fields(export_request("not-a-uuid.csv", &params(&[]))), ["NotFound"]);
        assert_eq!(fields(export_request(&id.to_string(), &params(&[]))), ["NotFound"]);
    }
}
