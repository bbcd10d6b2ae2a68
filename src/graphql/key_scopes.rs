//! API key scopes, enforced in one place for every operation: a request authenticated with an
//! API key reaches only the root fields its scopes list (`auth::api_key::Scope::allows`);
//! anything else is FORBIDDEN. Default deny: a new root field is out of every scope until it is
//! added to one.
//!
//! * Queries and mutations: checked as each root field resolves, before its guard, so a
//!   refused field answers FORBIDDEN like a guard would, and the others still answer.
//! * Subscriptions: checked on the parsed document before the stream starts (a subscription
//!   resolves its root field only when the stream yields), so a refused subscription never
//!   runs and the client gets one `error` message.
//!
//! Requests without a key pass through untouched.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, PathSegment, Pos, ServerResult, Value, Variables};

use crate::auth::api_key::{KeyGrant, Root};
use crate::auth::Auth;
use crate::error::AppError;
use crate::graphql::RequestContext;

/// The extension; see the module documentation.
pub struct KeyScopes;

impl ExtensionFactory for KeyScopes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(KeyScopes)
    }
}

fn grant<'a>(ctx: &'a ExtensionContext<'_>) -> Option<&'a KeyGrant> {
    match &ctx.data_opt::<RequestContext>()?.auth {
        Auth::Authenticated(principal) => principal.api_key.as_ref(),
        Auth::Anonymous | Auth::Rejected => None,
    }
}

fn refusal(field: &str) -> AppError {
    AppError::Forbidden(format!("this API key's scopes do not cover `{field}`"))
}

/// The root field names of a selection set, through fragments (each fragment looked into once,
/// so a cyclic document — refused later by validation — cannot loop).
fn root_fields<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    seen: &mut HashSet<&'d str>,
    out: &mut Vec<(&'d str, Pos)>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => out.push((field.node.name.node.as_str(), field.pos)),
            Selection::InlineFragment(fragment) => root_fields(document, &fragment.node.selection_set.node, seen, out),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.insert(name) {
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                        root_fields(document, &fragment.node.selection_set.node, seen, out);
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Extension for KeyScopes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let Some(grant) = grant(ctx) else {
            return Ok(document);
        };
        // Every subscription of the document (whichever the request names): stricter, and a
        // document with several operations is rare on a socket.
        for (_, operation) in document.operations.iter() {
            if operation.node.ty != OperationType::Subscription {
                continue;
            }
            let mut fields = Vec::new();
            root_fields(
                &document,
                &operation.node.selection_set.node,
                &mut HashSet::new(),
                &mut fields,
            );
            for (name, pos) in fields {
                if !name.starts_with("__") && !grant.allows(Root::Subscription, name) {
                    return Err(refusal(name).extend().into_server_error(pos));
                }
            }
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_none() && !info.name.starts_with("__") {
            let root = match info.parent_type {
                "Query" => Some(Root::Query),
                "Mutation" => Some(Root::Mutation),
                _ => None,
            };
            if let (Some(root), Some(grant)) = (root, grant(ctx)) {
                if !grant.allows(root, info.name) {
                    let key = info.alias.unwrap_or(info.name).to_owned();
                    return Err(refusal(info.name)
                        .extend()
                        .into_server_error(Pos::default())
                        .with_path(vec![PathSegment::Field(key)]));
                }
            }
        }
        next.run(ctx, info).await
    }
}
