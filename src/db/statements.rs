//! How many SQL statements this process has sent to each database: every pooled connection
//! counts the statements it starts (diesel's instrumentation hook), per database URL.
//!
//! It exists so that a query's cost in statements can be observed from outside the code that
//! runs it: the agents listing's test reads it before and after a request to prove that nested
//! fields (team, skills, supervisors) are loaded in batches, not once per agent (N+1). One
//! relaxed atomic increment per statement is all it costs in production.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use diesel::connection::{Instrumentation, InstrumentationEvent};

static COUNTERS: LazyLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = LazyLock::new(Default::default);

fn counter(database_url: &str) -> Arc<AtomicU64> {
    let mut counters = COUNTERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    counters.entry(database_url.to_owned()).or_default().clone()
}

/// Statements started so far on connections of this process to `database_url`.
pub fn executed(database_url: &str) -> u64 {
    counter(database_url).load(Ordering::Relaxed)
}

/// The instrumentation a pooled connection to `database_url` carries.
pub fn instrumentation(database_url: &str) -> impl Instrumentation {
    let counter = counter(database_url);
    move |event: InstrumentationEvent<'_>| {
        if matches!(event, InstrumentationEvent::StartQuery { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}
