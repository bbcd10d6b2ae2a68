//! `dashboardUpdated`: every widget's value first (a SNAPSHOT), then a DELTA with only the
//! widgets whose value changed for this viewer.
//!
//! Values come from the instance's shared computations (`AppState::widgets`, the `liveKpis`
//! registry of [`crate::realtime::live`]): one per distinct (organization, widget query) across
//! every viewer of every dashboard, recomputed at most once a second and only when an event
//! touched its scope, published only when its answer changed. A viewer holds one entry per
//! distinct query of its dashboard; when a computation publishes, the viewer projects the
//! widgets of that query for its role and sends those whose projection differs from what it
//! sent last (a tile whose metric did not move is not re-sent even when its query's other
//! metrics did). A slow viewer skips to the latest answer (`watch` channels), never queues.
//!
//! A change of the dashboard (`updateDashboard`), of the role default the viewer follows
//! (`setDefaultDashboard`), or a possible gap in the bus (resync) makes the stream read the
//! layout again and send a new SNAPSHOT; a deletion (or a dashboard no longer visible to the
//! viewer) ends the stream.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::{Principal, Role, Tenant};
use crate::error::AppResult;
use crate::realtime::bus::Received;
use crate::realtime::live::Entry;
use crate::realtime::{BusEvent, Topic};
use crate::state::AppState;

use super::saved::{self, Dashboard};
use super::values::{self, WidgetValue};

/// One message of `dashboardUpdated`.
#[derive(Debug, Clone)]
pub struct DashboardUpdate {
    /// True for the first message (every widget), false for a delta.
    pub snapshot: bool,
    pub dashboard_id: Uuid,
    /// (widget id, position, value), by position.
    pub widgets: Vec<(Uuid, i32, WidgetValue)>,
}

/// A viewer's widgets of one shared computation.
struct Source {
    /// Held: the computation lives while a viewer holds it.
    _entry: Arc<Entry<Value>>,
    latest: watch::Receiver<Option<Arc<Value>>>,
    /// The answer last projected (`changed()` marks a value seen, so the stream compares
    /// answers itself to find which computations published).
    seen: Option<Arc<Value>>,
    /// Indexes into the dashboard's widgets.
    widgets: Vec<usize>,
}

/// What a viewer follows of one layout: the dashboard, its computations, and the widgets with
/// no computation to follow (hidden for the role, or their report is gone).
struct Layout {
    dashboard: Dashboard,
    sources: Vec<Source>,
    fixed: Vec<(usize, WidgetValue)>,
}

/// Reads a dashboard the caller may see (NOT_FOUND otherwise), resolves its widgets' queries
/// and joins (or starts) their shared computations.
async fn layout(state: &AppState, principal: &Principal, id: Option<Uuid>) -> AppResult<Layout> {
    let dashboard = saved::get(state, principal, id).await?;
    let tenant = Tenant::of(principal);
    // A connection only for dashboards that show saved reports (the rest needs no read):
    // wallboards reconnecting together should not queue on the pool for nothing.
    let queries = if dashboard.widgets.iter().any(|w| w.spec.report_id.is_some()) {
        let mut conn = state.db.get(&tenant).await?;
        saved::queries_of(&mut conn, &tenant, &dashboard).await?
    } else {
        saved::queries_without_reports(&dashboard)?
    };
    let role = principal.role;
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut fixed: Vec<(usize, WidgetValue)> = Vec::new();
    for (i, (widget, query)) in dashboard.widgets.iter().zip(queries).enumerate() {
        let Some(query) = query else {
            fixed.push((
                i,
                WidgetValue {
                    value: None,
                    unavailable: Some("the widget's report is gone".into()),
                },
            ));
            continue;
        };
        if widget.kind.supervisor_only() && role < Role::Supervisor {
            fixed.push((i, values::project(widget.kind, &widget.spec, &Value::Null, role)));
            continue;
        }
        let key = query.canonical();
        let at = *by_key.entry(key).or_insert_with(|| {
            let entry = state
                .widgets
                .entry(&state.db, &state.bus, &tenant, values::shared(query));
            let latest = entry.watch();
            sources.push(Source {
                _entry: entry,
                latest,
                seen: None,
                widgets: Vec::new(),
            });
            sources.len() - 1
        });
        sources[at].widgets.push(i);
    }
    Ok(Layout {
        dashboard,
        sources,
        fixed,
    })
}

/// Starts following a dashboard the caller may see (NOT_FOUND otherwise); without an id, the
/// caller's role default. When the dashboard is changed, or the role default set, the stream
/// reads the layout again and sends a new SNAPSHOT; when it is deleted or no longer visible,
/// the stream ends.
pub async fn follow(
    state: &AppState,
    principal: &Principal,
    id: Option<Uuid>,
) -> AppResult<impl Stream<Item = DashboardUpdate>> {
    // Listening before the first read, so no change in between is missed.
    let events = state.bus.receiver(&[Topic::Settings]);
    let first = layout(state, principal, id).await?;
    Ok(stream(state.clone(), principal.clone(), id, first, events))
}

fn project(dashboard: &Dashboard, i: usize, answer: &Value, role: Role) -> WidgetValue {
    let widget = &dashboard.widgets[i];
    values::project(widget.kind, &widget.spec, answer, role)
}

/// What woke a viewer up.
enum Woke {
    /// A computation published (false: its channel closed).
    Computed(bool),
    Event(Received),
}

fn stream(
    state: AppState,
    principal: Principal,
    id: Option<Uuid>,
    first: Layout,
    mut events: crate::realtime::bus::Receiver,
) -> impl Stream<Item = DashboardUpdate> {
    let role = principal.role;
    let org = principal.org_id;
    async_stream::stream! {
        let mut current = first;
        'layout: loop {
            let Layout { dashboard, sources, fixed } = &mut current;
            // Every computation's first answer, then the snapshot.
            for source in sources.iter_mut() {
                if source.latest.wait_for(Option::is_some).await.is_err() {
                    return;
                }
            }
            let mut sent: Vec<Option<WidgetValue>> = vec![None; dashboard.widgets.len()];
            for (i, value) in fixed.iter() {
                sent[*i] = Some(value.clone());
            }
            for source in sources.iter_mut() {
                let answer = source.latest.borrow_and_update().clone();
                if let Some(answer) = &answer {
                    for &i in &source.widgets {
                        sent[i] = Some(project(dashboard, i, answer, role));
                    }
                }
                source.seen = answer;
            }
            let pick = |sent: &[Option<WidgetValue>], only: Option<&[usize]>| -> Vec<(Uuid, i32, WidgetValue)> {
                dashboard
                    .widgets
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| only.is_none_or(|o| o.contains(i)))
                    .filter_map(|(i, w)| sent[i].clone().map(|v| (w.id, w.position, v)))
                    .collect()
            };
            yield DashboardUpdate {
                snapshot: true,
                dashboard_id: dashboard.id,
                widgets: pick(&sent, None),
            };
            loop {
                let woke = {
                    let changes = async {
                        if sources.is_empty() {
                            futures_util::future::pending::<()>().await;
                        }
                        let changes = sources.iter_mut().map(|s| Box::pin(s.latest.changed()));
                        futures_util::future::select_all(changes).await.0.is_ok()
                    };
                    tokio::select! {
                        computed = changes => Woke::Computed(computed),
                        received = events.recv() => Woke::Event(received),
                    }
                };
                match woke {
                    Woke::Computed(false) => return,
                    Woke::Computed(true) => {}
                    Woke::Event(Received::Closed) => return,
                    Woke::Event(Received::Resync) => {
                        // A change of the layout may have been missed: read it again.
                        match layout(&state, &principal, id).await {
                            Ok(next) => {
                                current = next;
                                continue 'layout;
                            }
                            Err(_) => return,
                        }
                    }
                    Woke::Event(Received::Event(event)) => {
                        let BusEvent::Dashboard { dashboard_id } = event.payload else { continue };
                        let ours = match id {
                            Some(_) => dashboard_id == Some(dashboard.id),
                            // Following the role default: any default change, or its dashboard.
                            None => dashboard_id.is_none() || dashboard_id == Some(dashboard.id),
                        };
                        if event.organization_id != org || !ours {
                            continue;
                        }
                        match layout(&state, &principal, id).await {
                            Ok(next) => {
                                current = next;
                                continue 'layout;
                            }
                            // Deleted, or no longer visible to this viewer.
                            Err(_) => return,
                        }
                    }
                }
                let mut changed = Vec::new();
                for source in sources.iter_mut() {
                    let answer = source.latest.borrow_and_update().clone();
                    let Some(answer) = answer else { continue };
                    if source.seen.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &answer)) {
                        continue;
                    }
                    source.seen = Some(answer.clone());
                    for &i in &source.widgets {
                        let value = project(dashboard, i, &answer, role);
                        if sent[i].as_ref() != Some(&value) {
                            sent[i] = Some(value);
                            changed.push(i);
                        }
                    }
                }
                if !changed.is_empty() {
                    yield DashboardUpdate {
                        snapshot: false,
                        dashboard_id: dashboard.id,
                        widgets: pick(&sent, Some(&changed)),
                    };
                }
            }
        }
    }
}
