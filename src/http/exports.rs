//! `GET /exports/{runId}`: a report run's file, streamed from PostgreSQL chunk by chunk (so a
//! large file never sits in memory, and any instance serves any run).
//!
//! Authorized either like `/graphql` (`Authorization: Bearer` with an access token, or an API
//! key with `reports:read`; the caller must see the run's report, else 404) or by a signed link
//! (`?org=&expires=&signature=`, see `reports::downloads`; invalid or expired → 403). A run not
//! yet SUCCEEDED → 409 CONFLICT; a file past its retention → 404. Errors are JSON in the
//! GraphQL error shape with their stable code. Each download is audited.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use uuid::Uuid;

use crate::auth::api_key::HTTP_RUN_DOWNLOAD;
use crate::error::{AppError, AppResult};
use crate::http::client_addr::ClientAddr;
use crate::http::{errors, file_routes, HttpState};
use crate::reports::downloads::{self, Credential, LinkParams};
use crate::reports::{files, runs};

/// The route.
pub const ROUTE: &str = "/exports/{run_id}";

/// The link's parameters, when the request presents any.
fn link_params(params: &HashMap<String, String>) -> Option<LinkParams> {
    if !params.contains_key("signature") {
        return None;
    }
    let get = |name: &str| params.get(name).cloned().unwrap_or_default();
    Some(LinkParams {
        org: get("org"),
        expires: get("expires"),
        signature: get("signature"),
    })
}

async fn serve(
    state: &HttpState,
    run_id: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> AppResult<Response> {
    let request_id = file_routes::request_id(headers);
    let link = link_params(params);
    let run_id = Uuid::parse_str(run_id).map_err(|_| match link {
        // A link whose path was changed is a tampered link.
        Some(_) => AppError::Forbidden("this download link is invalid or has expired".into()),
        None => runs::not_found(),
    });
    let download = match &link {
        Some(link) => downloads::open(&state.app, run_id?, Credential::Link(link), request_id).await?,
        None => {
            let caller = file_routes::caller(state, headers, HTTP_RUN_DOWNLOAD, "downloads").await?;
            downloads::open(&state.app, run_id?, Credential::Caller(&caller), request_id).await?
        }
    };
    let app = state.app.clone();
    let (tenant, id) = (download.tenant, download.run.id);
    let chunks = async_stream::try_stream! {
        let mut index = 0;
        loop {
            let chunk = {
                let mut conn = app.db.get(&tenant).await?;
                files::chunk(&mut conn, &tenant, id, index).await?
            };
            match chunk {
                Some(data) => yield data,
                None => break,
            }
            index += 1;
        }
    };
    let chunks = futures_util::StreamExt::map(chunks, |c: AppResult<Vec<u8>>| {
        c.map_err(|e| std::io::Error::other(format!("{e:?}")))
    });
    let run = &download.run;
    let content_type = run.content_type.as_deref().unwrap_or("application/octet-stream");
    let length = run.bytes.and_then(|b| u64::try_from(b).ok());
    let filename = run.filename.as_deref().unwrap_or("report");
    Ok(file_routes::attachment(
        Body::from_stream(chunks),
        content_type,
        length,
        filename,
    ))
}

/// The handler of [`ROUTE`].
pub async fn download(
    State(state): State<HttpState>,
    Path(run_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Response {
    match serve(&state, &run_id, &params, &headers).await {
        Ok(response) => response,
        Err(error) => {
            file_routes::record_denial(&state, &headers, client, HTTP_RUN_DOWNLOAD, &error).await;
            errors::json_response(&error)
        }
    }
}
