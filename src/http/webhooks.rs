//! `POST /webhooks/twilio/{orgSlug}/voice-status`: Twilio voice status callbacks.
//!
//! No JWT: the request is authenticated by its `X-Twilio-Signature`, computed with the
//! organization's Twilio auth token (`updateTelephonySettings`) over the public URL of the
//! request (`OMNIVOX_PUBLIC_BASE_URL` + path + query; without it `http://` + Host) and the
//! parameters. Answers:
//!
//! * 204 — stored (or a repeat of a stored callback), committed;
//! * 204 — a child leg (`ParentCallSid`): acknowledged, not stored (its parent is the call);
//! * 400 — bad parameters (unknown CallStatus, missing CallSid, a Timestamp in the future or
//!   before the organization's history horizon…), with the reason as text;
//! * 403 — missing or wrong signature, telephony not configured, another AccountSid, or the
//!   organization is suspended (`ORGANIZATION_SUSPENDED`; within the 5 s account cache);
//! * 404 — unknown organization; 413 — body over 64 KiB; 415 — neither form nor JSON;
//! * 429 with `Retry-After` — the organization's webhook budget (`--webhook-rate`) is spent:
//!   checked after the signature and before anything is stored, so a refused event is not
//!   lost — Twilio sends it again;
//! * 503 — the database is unavailable (Twilio may retry).
//!
//! Nothing is stored unless the answer is 204.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;

use crate::auth::Tenant;
use crate::db::calls::{self, TwilioAccount};
use crate::http::errors;
use crate::ingest::batcher::Batcher;
use crate::ingest::{self, twilio};
use crate::limits::Denial;
use crate::state::audit_queue::DeniedCaller;
use crate::state::AppState;
use crate::telemetry::metrics::{self as telemetry, IngestOutcome, IngestSource};

/// Twilio's callbacks are a few hundred bytes; anything much larger is not one.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 64 * 1024;
const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// How long a looked-up organization and its credentials may be reused. A signature that
/// fails against a cached token is checked again against the stored one, so a new token works
/// at once; a replaced token keeps working on this instance for at most this long.
const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(5);
const ACCOUNT_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
struct WebhookState {
    app: AppState,
    batcher: Arc<Batcher>,
    accounts: Arc<AccountCache>,
}

/// Organizations by slug, with their Twilio credentials: one query saved per callback.
#[derive(Default)]
struct AccountCache {
    entries: Mutex<HashMap<String, (Instant, Arc<TwilioAccount>)>>,
}

impl AccountCache {
    fn get(&self, slug: &str) -> Option<Arc<TwilioAccount>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(slug)
            .filter(|(at, _)| at.elapsed() < ACCOUNT_CACHE_TTL)
            .map(|(_, a)| a.clone())
    }

    fn put(&self, slug: &str, account: Arc<TwilioAccount>) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= ACCOUNT_CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(slug.to_owned(), (Instant::now(), account));
    }
}

/// The webhook routes, with their own state (the ingest queue), to merge into the app.
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState) -> Router<S> {
    let batcher = Arc::new(Batcher::new(app.clone()));
    Router::new()
        .route(twilio::VOICE_STATUS_ROUTE, post(twilio_voice_status))
        .with_state(WebhookState {
            app,
            batcher,
            accounts: Arc::default(),
        })
}

/// The organization of a slug, from the cache or (`fresh`) the database.
async fn lookup_account(state: &WebhookState, slug: &str, fresh: bool) -> Result<Option<Arc<TwilioAccount>>, Response> {
    if !fresh {
        if let Some(account) = state.accounts.get(slug) {
            return Ok(Some(account));
        }
    }
    // Cross-tenant (`db::tenancy`): the URL's slug finds the organization.
    let mut conn = state.app.system_db.get().await.map_err(|e| errors::plain_text(&e))?;
    let account = calls::twilio_account(&mut conn, slug)
        .await
        .map_err(|e| errors::plain_text(&e))?
        .map(Arc::new);
    // A suspended organization is not cached: its resumption takes effect at once (a
    // suspension takes effect within the cache's few seconds).
    if let Some(account) = account.as_ref().filter(|a| !a.suspended) {
        state.accounts.put(slug, account.clone());
    }
    Ok(account)
}

enum Refusal {
    Forbidden(&'static str),
    BadRequest(String),
}

/// The callback's parameters, once its signature checked out against the account's token.
fn verified_params(
    account: &TwilioAccount,
    kind: &BodyKind,
    url: &str,
    bytes: &[u8],
    signature: &str,
) -> Result<Vec<(String, String)>, Refusal> {
    let auth_token = account
        .auth_token
        .as_deref()
        .ok_or(Refusal::Forbidden("telephony is not configured"))?;
    match kind {
        BodyKind::Form => {
            let params: Vec<(String, String)> = url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if twilio::verify_form(auth_token, url, &params, signature) {
                Ok(params)
            } else {
                Err(Refusal::Forbidden("bad signature"))
            }
        }
        BodyKind::Json => {
            if !twilio::verify_json(auth_token, url, bytes, signature) {
                return Err(Refusal::Forbidden("bad signature or body hash"));
            }
            twilio::params_from_json(bytes).map_err(Refusal::BadRequest)
        }
    }
}

/// A refused callback (every use of this is one): counted as a rejected webhook event.
fn reply(status: StatusCode, text: &str) -> Response {
    telemetry::ingest_events(IngestSource::Webhook, IngestOutcome::Rejected, 1);
    (status, text.to_owned()).into_response()
}

fn forbidden(org_slug: &str, why: &str) -> Response {
    tracing::warn!(org = %org_slug, reason = why, "Twilio callback refused");
    reply(StatusCode::FORBIDDEN, "forbidden")
}

/// The URL the sender called, as it signed it.
fn public_url(base: Option<&str>, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path(), |pq| pq.as_str());
    match base {
        Some(base) => Some(format!("{base}{path_and_query}")),
        None => {
            let host = headers.get(HOST)?.to_str().ok()?;
            Some(format!("http://{host}{path_and_query}"))
        }
    }
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        "application/json" => Some(BodyKind::Json),
        _ => None,
    }
}

async fn twilio_voice_status(
    State(state): State<WebhookState>,
    Path(org_slug): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut account = match lookup_account(&state, &org_slug, false).await {
        Ok(Some(account)) => account,
        Ok(None) => return reply(StatusCode::NOT_FOUND, "unknown organization"),
        Err(response) => return response,
    };
    let Some(kind) = body_kind(&headers) else {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-www-form-urlencoded (or application/json with bodySHA256)",
        );
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_WEBHOOK_BODY_BYTES) {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    let Ok(bytes) = to_bytes(body, MAX_WEBHOOK_BODY_BYTES).await else {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };

    let Some(signature) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return forbidden(&org_slug, "no signature");
    };
    let Some(url) = public_url(state.app.settings.public_base_url.as_deref(), &headers, &uri) else {
        return forbidden(&org_slug, "no Host header to rebuild the URL from");
    };
    let mut verified = verified_params(&account, &kind, &url, &bytes, signature);
    if matches!(verified, Err(Refusal::Forbidden(_))) {
        // The cached credentials may be stale (a new token): check against the stored ones.
        account = match lookup_account(&state, &org_slug, true).await {
            Ok(Some(account)) => account,
            Ok(None) => return reply(StatusCode::NOT_FOUND, "unknown organization"),
            Err(response) => return response,
        };
        verified = verified_params(&account, &kind, &url, &bytes, signature);
    }
    let params = match verified {
        Ok(params) => params,
        Err(Refusal::Forbidden(why)) => return forbidden(&org_slug, why),
        Err(Refusal::BadRequest(why)) => return reply(StatusCode::BAD_REQUEST, &why),
    };

    // After the signature, so only the organization's own provider learns of the suspension.
    if account.suspended {
        tracing::warn!(org = %org_slug, "Twilio callback refused: organization suspended");
        return reply(
            StatusCode::FORBIDDEN,
            "ORGANIZATION_SUSPENDED: the organization is suspended",
        );
    }
    let callback = match twilio::parse_status_callback(&params) {
        Ok(callback) => callback,
        Err(why) => return reply(StatusCode::BAD_REQUEST, &why),
    };
    if account
        .account_sid
        .as_deref()
        .is_some_and(|sid| sid != callback.account_sid)
    {
        return forbidden(&org_slug, "AccountSid is not the organization's");
    }
    if let Err(why) = ingest::check_time(callback.event.occurred_at, account.history_horizon, Utc::now()) {
        return reply(StatusCode::BAD_REQUEST, &format!("Timestamp {why}"));
    }
    if callback.parent_call_sid.is_some() {
        // A child leg (e.g. <Dial> to an agent's phone): the parent call is the interaction.
        return StatusCode::NO_CONTENT.into_response();
    }
    // Per organization, before anything is stored: a refused callback is not accepted, and the
    // sender retries it after `Retry-After`.
    if let Err((bucket, outcome)) = state.app.limiter.webhook(account.organization_id).await {
        // The sender is the telephony provider, not a user: the organization's own chain
        // would need an actor, so the refusal goes to the platform chain, naming the org.
        state.app.audit_queue.rate_limited(
            DeniedCaller::Unverified {
                claims: serde_json::json!({ "organization": account.organization_id, "source": "webhook" }),
            },
            "POST /webhooks/twilio/{orgSlug}/voice-status",
            &Denial {
                limit: bucket.limit,
                subject: &bucket.subject,
                client: None,
                request_id: None,
                cost: outcome.cost,
                retry_after: outcome.retry_after,
            },
        );
        let mut response = reply(StatusCode::TOO_MANY_REQUESTS, "rate limited, retry later");
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(outcome.retry_after_secs()));
        return response;
    }
    let tenant = Tenant::for_system(account.organization_id);
    match state.batcher.submit(tenant, callback.call_sid, callback.event).await {
        Ok(stored) => {
            let outcome = if stored {
                IngestOutcome::Accepted
            } else {
                IngestOutcome::Duplicate
            };
            telemetry::ingest_events(IngestSource::Webhook, outcome, 1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => errors::plain_text(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_keeps_path_and_query() {
        let uri: Uri = "/webhooks/twilio/acme/voice-status?x=1&y=2".parse().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            "127.0.0.1:8080"
                .parse()
                .unwrap_or_else(|_| axum::http::HeaderValue::from_static("x")),
        );
        assert_eq!(
            public_url(None, &headers, &uri).as_deref(),
            Some("http://127.0.0.1:8080/webhooks/twilio/acme/voice-status?x=1&y=2")
        );
        assert_eq!(
            public_url(Some("https://cc.example.com/pfx"), &headers, &uri).as_deref(),
            Some("https://cc.example.com/pfx/webhooks/twilio/acme/voice-status?x=1&y=2")
        );
        assert_eq!(twilio::voice_status_path("acme"), "/webhooks/twilio/acme/voice-status");
    }
}
