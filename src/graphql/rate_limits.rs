//! Charges every operation its computed cost (see `crate::limits`), and answers over budget
//! with RATE_LIMITED before anything executes.
//!
//! The charge is made in the validation step, where async-graphql has just computed the
//! operation's complexity: a document that fails to parse or validate is not charged (nor
//! run). The request's [`Meter`](crate::limits::Meter) (in its [`RequestContext`]) carries the
//! outcome to the transport, which sends the `RateLimit-*` headers or the 429; the response's
//! `extensions.rateLimit` says the same to clients that read only the body
//! (`{cost, limit, remaining, resetSeconds}`). Subscriptions are charged once, when opened.
//!
//! The strict buckets of `login` and `refreshSession` are charged by their resolvers through
//! [`refuse_login`] and [`refuse_refresh`].

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextValidation};
use async_graphql::{Context, ErrorExtensions, Name, Response, ServerError, ValidationResult, Value};

use crate::auth::Auth;
use crate::error::AppError;
use crate::graphql::context::{request_context, state};
use crate::graphql::RequestContext;
use crate::limits::{Bucket, Denial, Outcome};
use crate::state::audit_queue::DeniedCaller;
use crate::state::AppState;

pub struct CostLimits;

impl ExtensionFactory for CostLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostLimitsExtension)
    }
}

struct CostLimitsExtension;

/// The refusal as a GraphQL error (code RATE_LIMITED, `retryAfterSeconds`).
fn rate_limited(outcome: &Outcome) -> AppError {
    AppError::RateLimited {
        retry_after_secs: outcome.retry_after_secs(),
    }
}

/// Records a refusal (the log and the audit trail: see `AuditQueue::rate_limited`) and returns
/// the error to answer with. A caller without verified credentials (a `login` by address, say)
/// is recorded by the bucket's subject, which never holds an e-mail address in clear.
fn deny(state: &AppState, request: Option<&RequestContext>, bucket: &Bucket, outcome: &Outcome) -> AppError {
    let caller = match request.map(|r| &r.auth) {
        Some(Auth::Authenticated(principal)) => DeniedCaller::of(principal),
        _ => DeniedCaller::Unverified {
            claims: serde_json::json!({ "subject": bucket.subject }),
        },
    };
    state.audit_queue.rate_limited(
        caller,
        "graphql",
        &Denial {
            limit: bucket.limit,
            subject: &bucket.subject,
            client: request.and_then(|r| r.client),
            request_id: request.and_then(|r| r.request_id.as_deref()),
            cost: outcome.cost,
            retry_after: outcome.retry_after,
        },
    );
    rate_limited(outcome)
}

#[async_trait::async_trait]
impl Extension for CostLimitsExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let request = ctx.data_opt::<RequestContext>();
        let (Some(meter), Some(state)) = (request.and_then(|r| r.meter.as_ref()), ctx.data_opt::<AppState>()) else {
            return Ok(result);
        };
        let cost = u64::try_from(result.complexity).unwrap_or(u64::MAX).max(1);
        let outcome = state.limiter.charge(&meter.bucket, cost).await;
        meter.charged(outcome);
        if !outcome.allowed {
            let error = deny(state, request, &meter.bucket, &outcome).extend();
            let mut refused = ServerError::new(error.message, None);
            refused.extensions = error.extensions;
            return Err(vec![refused]);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let charge = ctx
            .data_opt::<RequestContext>()
            .and_then(|r| r.meter.as_ref())
            .and_then(|m| m.charge());
        if let Some(outcome) = charge {
            response
                .extensions
                .insert("rateLimit".to_owned(), extension_value(&outcome));
        }
        response
    }
}

/// `{cost, limit, remaining, resetSeconds}`.
fn extension_value(outcome: &Outcome) -> Value {
    let mut object = async_graphql::indexmap::IndexMap::new();
    object.insert(Name::new("cost"), Value::from(outcome.cost));
    object.insert(Name::new("limit"), Value::from(outcome.limit));
    object.insert(Name::new("remaining"), Value::from(outcome.remaining));
    object.insert(Name::new("resetSeconds"), Value::from(outcome.reset_secs()));
    Value::Object(object)
}

/// A refusal of a resolver's own bucket: reported, marked on the meter (so the transport
/// answers 429), and returned as the error.
fn refuse_in_resolver(state: &AppState, ctx: &Context<'_>, bucket: &Bucket, outcome: &Outcome) -> AppError {
    let request = request_context(ctx);
    if let Some(meter) = request.and_then(|r| r.meter.as_ref()) {
        meter.refused(*outcome);
    }
    deny(state, request, bucket, outcome)
}

/// Charges one `login` attempt for `email` (per account and per client address).
pub async fn refuse_login(ctx: &Context<'_>, email: &str) -> Result<(), AppError> {
    let state = state(ctx).map_err(|_| AppError::internal("application state missing from schema"))?;
    let client = request_context(ctx).and_then(|r| r.client);
    match state.limiter.login(email, client).await {
        Ok(()) => Ok(()),
        Err((bucket, outcome)) => Err(refuse_in_resolver(state, ctx, &bucket, &outcome)),
    }
}

/// Charges one `refreshSession` call (per client address, and per account when the token is
/// a valid refresh token).
pub async fn refuse_refresh(ctx: &Context<'_>, refresh_token: &str) -> Result<(), AppError> {
    let state = state(ctx).map_err(|_| AppError::internal("application state missing from schema"))?;
    let client = request_context(ctx).and_then(|r| r.client);
    let user = crate::access::session::refresh_token_user(state, refresh_token);
    match state.limiter.refresh(user, client).await {
        Ok(()) => Ok(()),
        Err((bucket, outcome)) => Err(refuse_in_resolver(state, ctx, &bucket, &outcome)),
    }
}
