//! Raw SQL kept as a prepared statement.
//!
//! diesel never caches `sql_query` statements (their text could be anything), so each
//! execution is sent, parsed and analysed again: for `kpiSummary`, four such statements cost
//! about 2 ms of a 5 ms request. [`CachedSql`] marks a `sql_query` (with its binds) as safe to
//! keep in the connection's statement cache, keyed by its SQL text and bind types. KPI reads
//! still plan every execution for its parameters (`plan_cache_mode = force_custom_plan`, see
//! `kpi::query::tune_kpi_reads`): what the cache saves is the parsing and analysis.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A `diesel::sql_query(…)` with its binds, cached as a prepared statement per connection.
///
/// Only for statements whose text comes from a small fixed set of shapes (a few variants chosen
/// by code): every distinct text stays prepared on each pooled connection for the connection's
/// lifetime, so text that varies with user input must not be wrapped.
#[derive(Debug, Clone)]
pub struct CachedSql<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for CachedSql<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // Overridable because diesel-async builds diesel with its backend-implementer feature; the
    // inner `sql_query` reports itself unsafe to cache whatever its text.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for CachedSql<Q> {
    // Not a static id: the cache is keyed by the SQL text.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for CachedSql<Q> {
    type SqlType = Q::SqlType;
}
