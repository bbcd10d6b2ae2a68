//! Agents' routing logs under late and concurrent delivery: a late call re-derives only the
//! stretch of the log around it (the rest of the history keeps its rows), and shuffled batches
//! from concurrent senders spanning hours leave every agent the log that in-order delivery
//! gives, with rollups equal to the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use chrono::{DateTime, TimeDelta, Utc};
use common::TestApp;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use ingest_support::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use uuid::Uuid;

#[derive(diesel::QueryableByName, Debug, Clone, PartialEq, Eq)]
struct Interval {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    started_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    ended_at: Option<DateTime<Utc>>,
}

async fn routing_log(app: &TestApp, agent: Uuid) -> Vec<Interval> {
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    diesel::sql_query(
        "SELECT id, state, started_at, ended_at FROM agent_state_log
         WHERE agent_id = $1 AND axis = 'ROUTING' ORDER BY started_at, id",
    )
    .bind::<diesel::sql_types::Uuid, _>(agent)
    .load(&mut conn)
    .await
    .unwrap()
}

/// The log without row ids, to compare two organizations' agents.
fn shape(log: &[Interval]) -> Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> {
    log.iter()
        .map(|i| (i.state.clone(), i.started_at, i.ended_at))
        .collect()
}

/// One answered call handled by `agent`: rings at `start`, talks 5 s later for `talk`
/// seconds, wraps up for 30 s.
fn answered_call(id: &str, agent: Uuid, start: DateTime<Utc>, talk: i64) -> Vec<Value> {
    let a = agent.to_string();
    let answered = start + TimeDelta::seconds(5);
    let ended = answered + TimeDelta::seconds(talk);
    vec![
        with(ev(id, "RINGING", start), "agentId", a.clone()),
        with(ev(id, "ANSWERED", answered), "agentId", a),
        ev(id, "ENDED", ended),
        ev(id, "WRAP_UP_ENDED", ended + TimeDelta::seconds(30)),
    ]
}

/// A call delivered late, in the middle of a morning of history, replaces only the intervals
/// between the one in force before it and the next transition after it: every interval well
/// before and after keeps its row (the same id), and the log equals in-order delivery.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_call_rederives_only_its_neighbourhood() {
    let app = TestApp::spawn().await;
    let morning = |f: &Fixture| -> Vec<Value> {
        (0..30)
            .flat_map(|n| {
                answered_call(
                    &format!("M-{n}"),
                    f.agents[1],
                    t("08:00:00") + TimeDelta::minutes(10 * n),
                    60,
                )
            })
            .collect()
    };
    let late = |f: &Fixture| answered_call("LATE", f.agents[1], t("10:02:00"), 90);

    let reference = fixture(&app, "late-reference").await;
    let mut in_order = morning(&reference);
    in_order.extend(late(&reference));
    in_order.sort_by_key(|e| e["occurredAt"].as_str().unwrap().to_owned());
    assert_eq!(
        record(&app, &reference.admin, &in_order).await.ok()["recordCallEvents"]["rejected"],
        0
    );

    let f = fixture(&app, "late").await;
    assert_eq!(
        record(&app, &f.admin, &morning(&f)).await.ok()["recordCallEvents"]["rejected"],
        0
    );
    let before = routing_log(&app, f.agents[1]).await;
    assert_eq!(
        record(&app, &f.admin, &late(&f)).await.ok()["recordCallEvents"]["rejected"],
        0
    );
    let after = routing_log(&app, f.agents[1]).await;

    assert_eq!(shape(&after), shape(&routing_log(&app, reference.agents[1]).await));
    // The late call rings at 10:02, inside the IDLE interval 10:01:35–10:10:00; the next
    // transition is the ringing at 10:10. Everything that starts before 10:00 or after
    // 10:15 is untouched.
    let kept = |log: &[Interval]| -> Vec<Interval> {
        log.iter()
            .filter(|i| i.started_at < t("10:00:00") || i.started_at > t("10:15:00"))
            .cloned()
            .collect()
    };
    assert!(kept(&before).len() > 100, "a long history: {}", before.len());
    assert_eq!(
        kept(&after),
        kept(&before),
        "rows outside the late call's stretch were rewritten"
    );
    assert_eq!(
        after.len(),
        before.len() + 4,
        "the late call adds RINGING, ON_CALL, WRAP_UP and IDLE"
    );
    assert_agent_time_rollups_match(&app, &f, &hours("00:00:00", 24)).await;
}

/// Four senders at once, each sending shuffled batches of calls spread over eight hours (the
/// same agents on every sender, calls of one agent overlapping): everything is accepted and
/// each agent's log, current state and agent-time rollups are those of in-order delivery.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_shuffled_senders_converge_to_in_order_delivery() {
    let app = TestApp::spawn().await;
    let traffic = |f: &Fixture| -> Vec<Vec<Value>> {
        (0..4)
            .map(|sender| {
                let mut rng = StdRng::seed_from_u64(sender);
                (0..120)
                    .flat_map(|n| {
                        let agent = f.agents[rng.gen_range(0..f.agents.len())];
                        let start = t("08:00:00") + TimeDelta::seconds(rng.gen_range(0..8 * 3_600));
                        answered_call(&format!("S{sender}-{n}"), agent, start, rng.gen_range(20..900))
                    })
                    .collect()
            })
            .collect()
    };

    let reference = fixture(&app, "senders-reference").await;
    let mut in_order: Vec<Value> = traffic(&reference).into_iter().flatten().collect();
    in_order.sort_by_key(|e| e["occurredAt"].as_str().unwrap().to_owned());
    for batch in in_order.chunks(1_000) {
        assert_eq!(
            record(&app, &reference.admin, batch).await.ok()["recordCallEvents"]["rejected"],
            0
        );
    }

    let f = fixture(&app, "senders").await;
    let senders = traffic(&f).into_iter().enumerate().map(|(n, mut events)| {
        let app = &app;
        let admin = f.admin.clone();
        async move {
            events.shuffle(&mut StdRng::seed_from_u64(100 + n as u64));
            for batch in events.chunks(60) {
                let response = record(app, &admin, batch).await;
                assert_eq!(response.ok()["recordCallEvents"]["rejected"], 0, "sender {n}");
            }
        }
    });
    join_all(senders).await;

    for (agent, reference_agent) in f.agents.iter().zip(&reference.agents) {
        let got = routing_log(&app, *agent).await;
        assert!(got.len() > 50, "each agent has a busy day: {}", got.len());
        assert_eq!(shape(&got), shape(&routing_log(&app, *reference_agent).await));
    }
    assert_agent_time_rollups_match(&app, &f, &hours("00:00:00", 24)).await;
}
