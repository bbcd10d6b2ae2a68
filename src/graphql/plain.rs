//! Synchronous resolution of large lists of plain objects.
//!
//! async-graphql resolves every field of every object as its own boxed future, passed through
//! the extension chain and joined per object. For `analytics`, 10,000 rows of three nested
//! objects, that machinery cost more than computing the numbers. Yet every row is plain data:
//! no field awaits anything, takes an argument or can fail.
//!
//! [`PlainList`] resolves such a list by compiling the selection set ONCE into a
//! [`Selection`] (response keys, field names, sub-selections, with fragments and repeated keys
//! merged as GraphQL's field collection does) and then building each item's value directly.
//! The schema is untouched: the item type keeps its derived `SimpleObject` definition for the
//! registry, introspection and SDL, and its [`PlainObject`] impl only produces values.
//!
//! Anything the compiler does not handle (a directive left on a field, a field the
//! [`PlainObject`] impl does not know) falls back to async-graphql's own resolution of the
//! list, so a field added to the type later is still answered — only more slowly — and a test
//! compares both paths field for field.
//!
//! What plain resolution gives up: schema extensions' per-field `resolve` hooks (a tracing
//! extension, say) see the list field but not the fields inside its items.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection as GqlSelection, SelectionSet};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// An object whose fields are plain data, resolvable without futures.
pub trait PlainObject {
    /// The object's name in the schema (as its derived `SimpleObject` registers it).
    const TYPE_NAME: &'static str;

    /// The value of field `name`, with `sub` the compiled selection of an object-typed field
    /// (empty for scalars). `None` when this impl does not know the field: the caller then
    /// falls back to async-graphql's resolution.
    fn field(&self, name: &str, sub: &Selection) -> Option<Value>;
}

/// A selection set compiled for one object type: the response keys in order, each with its
/// field name and, for object fields, the merged sub-selection.
#[derive(Debug, Default)]
pub struct Selection {
    type_name: String,
    fields: Vec<Planned>,
}

#[derive(Debug)]
struct Planned {
    key: Name,
    name: Name,
    sub: Selection,
}

/// Fields collected under one response key before their sub-selections are compiled.
struct Collected<'a> {
    key: Name,
    name: Name,
    sets: Vec<&'a Positioned<SelectionSet>>,
}

impl Selection {
    /// Compiles the selection sets `sets` (merged, in order) on object type `type_name`.
    /// `None` when something is outside what plain resolution supports.
    fn compile(ctx: &ContextSelectionSet<'_>, type_name: &str, sets: &[&Positioned<SelectionSet>]) -> Option<Self> {
        let mut collected: Vec<Collected<'_>> = Vec::new();
        for set in sets {
            collect(ctx, type_name, set, &mut collected)?;
        }
        let registry: &Registry = &ctx.schema_env.registry;
        let object = registry.types.get(type_name)?;
        let mut fields = Vec::with_capacity(collected.len());
        for c in collected {
            let sub = if c.name == "__typename" {
                Selection::default()
            } else {
                let meta = object.field_by_name(&c.name)?;
                let child = MetaTypeName::concrete_typename(&meta.ty);
                match registry.types.get(child)? {
                    MetaType::Object { .. } => Selection::compile(ctx, child, &c.sets)?,
                    leaf if leaf.is_leaf() => Selection::default(),
                    // An interface or union would need the concrete type of each value.
                    _ => return None,
                }
            };
            fields.push(Planned {
                key: c.key,
                name: c.name,
                sub,
            });
        }
        Some(Selection {
            type_name: type_name.to_owned(),
            fields,
        })
    }

    /// The value of `object` under this selection; `None` when `object` does not know a field.
    pub fn resolve<T: PlainObject>(&self, object: &T) -> Option<Value> {
        let mut map = IndexMap::with_capacity(self.fields.len());
        for f in &self.fields {
            let value = if f.name == "__typename" {
                Value::String(self.type_name.clone())
            } else {
                object.field(&f.name, &f.sub)?
            };
            map.insert(f.key.clone(), value);
        }
        Some(Value::Object(map))
    }

    /// `resolve` for an optional object field.
    pub fn resolve_opt<T: PlainObject>(&self, object: Option<&T>) -> Option<Value> {
        object.map_or(Some(Value::Null), |o| self.resolve(o))
    }

    /// `resolve` for a list field.
    pub fn resolve_all<'a, T: PlainObject + 'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Option<Value> {
        items
            .into_iter()
            .map(|item| self.resolve(item))
            .collect::<Option<Vec<_>>>()
            .map(Value::List)
    }
}

/// GraphQL's field collection over one selection set: fragments applying to `type_name` are
/// inlined, and fields sharing a response key are merged (their sub-selections concatenated),
/// as async-graphql's executor does. `@skip`/`@include` were already applied before execution
/// and removed; any other directive left on a field is not supported here.
fn collect<'a>(
    ctx: &ContextSelectionSet<'a>,
    type_name: &str,
    set: &'a Positioned<SelectionSet>,
    out: &mut Vec<Collected<'a>>,
) -> Option<()> {
    for selection in &set.node.items {
        let (condition, inner) = match &selection.node {
            GqlSelection::Field(field) => {
                if !field.node.directives.is_empty() || !field.node.arguments.is_empty() {
                    return None;
                }
                let key = field.node.response_key().node.clone();
                match out.iter_mut().find(|c| c.key == key) {
                    Some(existing) => existing.sets.push(&field.node.selection_set),
                    None => out.push(Collected {
                        key,
                        name: field.node.name.node.clone(),
                        sets: vec![&field.node.selection_set],
                    }),
                }
                continue;
            }
            GqlSelection::FragmentSpread(spread) => {
                if !spread.node.directives.is_empty() {
                    return None;
                }
                let fragment = ctx.query_env.fragments.get(&spread.node.fragment_name.node)?;
                (
                    Some(&fragment.node.type_condition.node.on.node),
                    &fragment.node.selection_set,
                )
            }
            GqlSelection::InlineFragment(fragment) => {
                if !fragment.node.directives.is_empty() {
                    return None;
                }
                (
                    fragment.node.type_condition.as_ref().map(|c| &c.node.on.node),
                    &fragment.node.selection_set,
                )
            }
        };
        // Plain objects implement no interface, so a fragment applies exactly when it names
        // the object itself (or names no type).
        if condition.is_none_or(|c| c.as_str() == type_name) {
            collect(ctx, type_name, inner, out)?;
        }
    }
    Some(())
}

/// `items` resolved under the list field's selection set `ctx`, or `None` when plain
/// resolution does not cover it (see the module's doc).
pub fn resolve_plain<T: PlainObject>(ctx: &ContextSelectionSet<'_>, items: &[T]) -> Option<Value> {
    Selection::compile(ctx, T::TYPE_NAME, &[ctx.item])?.resolve_all(items)
}

/// A list of plain objects, typed in the schema exactly as `Vec<T>` (`[T!]!`).
pub struct PlainList<T>(pub Vec<T>);

impl<T: PlainObject + OutputType> OutputType for PlainList<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        match resolve_plain(ctx, &self.0) {
            Some(value) => Ok(value),
            None => <Vec<T> as OutputType>::resolve(&self.0, ctx, field).await,
        }
    }
}
