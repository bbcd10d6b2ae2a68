//! The bulk path of the rollup writer (`kpi::writer::bulk_load`: COPY, then the rollup code
//! shared with the INSERT path, in one transaction) exercised through the traffic generator
//! (`seed::generator`): after loading ~20,000 generated calls — and a second run added to the
//! same organization — every answer the planner assembles from the hourly rollups (plus raw
//! edges) equals the direct computation over the raw rows, for aligned and unaligned windows
//! and several scopes; the disposition rollups equal the raw counts; the generated history is
//! consistent (no agent on two calls at once, nothing after now).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::TestApp;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use omnivox::auth::Tenant;
use omnivox::domain::Direction;
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::{Aggregates, Scope};
use omnivox::kpi::writer::ReferenceChecks;
use omnivox::seed::generator::{self, GeneratorSettings};
use uuid::Uuid;

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap()
}

/// What the planner must answer for one window: the raw computation alone.
async fn raw(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    window: (DateTime<Utc>, DateTime<Utc>),
    scope: &Scope,
) -> Aggregates {
    aggregate_windows(conn, tenant, &[window], scope, Sourcing::RawOnly)
        .await
        .unwrap()[0]
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DispositionCount {
    #[diesel(sql_type = SqlUuid)]
    disposition_id: Uuid,
    #[diesel(sql_type = BigInt)]
    calls: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str, org: Uuid) -> i64 {
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(org)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_traffic_loaded_by_copy_has_rollups_equal_to_the_raw_facts() {
    let app = TestApp::spawn().await;
    let first = GeneratorSettings {
        org_slug: "bulk".into(),
        calls: 20_000,
        days: 10,
        agents: 60,
        campaigns: 6,
        seed: 7,
        // Several batches, two loading at once.
        batch_calls: 5_000,
        load_workers: 2,
        reference_checks: ReferenceChecks::PerBatch,
    };
    let mut batches_seen = 0;
    let report = generator::run(&app.database.url, app.state.system_db.pool(), &first, &mut |p| {
        batches_seen += 1;
        assert!(p.calls <= p.calls_total);
    })
    .await
    .unwrap();
    assert!(report.created_organization);
    assert_eq!((report.run, report.calls), (1, 20_000));
    assert!(report.batches >= 3 && batches_seen == report.batches, "{report:?}");
    assert!(report.intervals > 20_000, "{report:?}");
    // The test database's role is a superuser: foreign keys are checked per batch.
    assert_eq!(report.reference_checks, ReferenceChecks::PerBatch);

    // A second run adds to the organization: new agents and teams, same campaigns, row checks.
    let second = GeneratorSettings {
        calls: 3_000,
        days: 4,
        agents: 10,
        seed: 8,
        reference_checks: ReferenceChecks::PerRow,
        ..first.clone()
    };
    let again = generator::run(&app.database.url, app.state.system_db.pool(), &second, &mut |_| {})
        .await
        .unwrap();
    assert!(!again.created_organization);
    assert_eq!((again.org_id, again.run, again.calls), (report.org_id, 2, 3_000));
    assert_eq!(again.reference_checks, ReferenceChecks::PerRow);

    let org = report.org_id;
    let tenant = Tenant::for_system(org);
    let mut conn = app.state.system_db.get().await.unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM interactions WHERE organization_id = $1",
            org
        )
        .await,
        23_000
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM agents WHERE organization_id = $1",
            org
        )
        .await,
        70
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM campaigns WHERE organization_id = $1",
            org
        )
        .await,
        6
    );
    // Nothing in the future; no agent on two calls at once; no overlapping state intervals.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM interactions WHERE organization_id = $1
               AND (offered_at > now() OR coalesce(wrap_ended_at, ended_at, offered_at) > now())",
            org
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM (
                SELECT answered_at, lag(wrap_ended_at) OVER (PARTITION BY agent_id ORDER BY answered_at) AS previous_end
                FROM interactions WHERE organization_id = $1 AND agent_id IS NOT NULL) c
             WHERE previous_end > answered_at",
            org
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM (
                SELECT started_at, lag(ended_at) OVER (PARTITION BY agent_id, axis ORDER BY started_at) AS previous_end
                FROM agent_state_log WHERE organization_id = $1) s
             WHERE previous_end > started_at",
            org
        )
        .await,
        0
    );

    // Rollups against raw scans.
    let now = Utc::now();
    let h = hour_of(now);
    let windows = vec![
        (h - TimeDelta::days(12), h + TimeDelta::hours(1)),
        (
            now - TimeDelta::days(9) - TimeDelta::seconds(17 * 60 + 23) - TimeDelta::milliseconds(500),
            now - TimeDelta::days(1) + TimeDelta::seconds(7 * 60 + 11),
        ),
        (
            h - TimeDelta::days(3) + TimeDelta::minutes(5),
            h - TimeDelta::days(3) + TimeDelta::minutes(55),
        ),
        (now - TimeDelta::days(1), now),
        (h - TimeDelta::days(5), h - TimeDelta::days(4)),
        (
            h - TimeDelta::days(2) + TimeDelta::hours(11) + TimeDelta::minutes(30),
            h - TimeDelta::days(2) + TimeDelta::hours(14),
        ),
        (now + TimeDelta::hours(1), now + TimeDelta::hours(2)),
    ];
    let campaigns: Vec<Uuid> = {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
        }
        diesel::sql_query("SELECT id FROM campaigns WHERE organization_id = $1 ORDER BY name")
            .bind::<SqlUuid, _>(org)
            .load::<Id>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let agents: Vec<Uuid> = {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
        }
        diesel::sql_query(
            "SELECT id FROM agents WHERE organization_id = $1 AND extension IN ('1-00001', '1-00002', '1-00050', '2-00003')",
        )
        .bind::<SqlUuid, _>(org)
        .load::<Id>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
    };
    assert_eq!(agents.len(), 4);
    let (_, zone) = omnivox::kpi::organization_rule(&mut conn, &tenant).await.unwrap();
    let scopes = [
        Scope::default(),
        Scope {
            direction: Some(Direction::Outbound),
            ..Scope::default()
        },
        Scope {
            campaign_ids: Some(campaigns[..2].to_vec()),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(agents.clone()),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(agents.clone()),
            campaign_ids: Some(campaigns[1..4].to_vec()),
            direction: Some(Direction::Inbound),
        },
    ];
    let mut non_empty = 0;
    for scope in &scopes {
        let planned = aggregate_windows(&mut conn, &tenant, &windows, scope, Sourcing::Planned(zone))
            .await
            .unwrap();
        for (window, planned) in windows.iter().zip(&planned) {
            let expected = raw(&mut conn, &tenant, *window, scope).await;
            assert_eq!(*planned, expected, "window {window:?}, scope {scope:?}");
            if planned.calls.offered > 0 && planned.agents.on_call_us > 0 {
                non_empty += 1;
            }
        }
    }
    assert!(non_empty >= 15, "the windows cover data ({non_empty})");
    let whole = aggregate_windows(
        &mut conn,
        &tenant,
        &windows[..1],
        &Scope::default(),
        Sourcing::Planned(zone),
    )
    .await
    .unwrap();
    let c = whole[0].calls;
    assert!(
        // The generator's dialler detects every machine and hangs up (none reaches an agent).
        c.answered > 10_000 && c.abandoned > 100 && c.dials > 5_000 && c.machine_detected > 500,
        "{c:?}"
    );
    assert!(
        c.contacts > 1_000 && c.successes > 100 && c.answered_within_sl > 0 && c.short_abandoned > 0,
        "{c:?}"
    );

    // Disposition rollups (organization level) against the raw counts.
    let load = |sql: &'static str| {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(org)
            .bind::<SqlUuid, _>(omnivox::kpi::ALL_KEY)
    };
    let mut from_rollups: Vec<DispositionCount> = load(
        "SELECT disposition_id, sum(calls)::int8 AS calls FROM kpi_hourly_disposition
         WHERE organization_id = $1 AND campaign_key = $2 AND agent_key = $2
           AND disposition_id <> '00000000-0000-0000-0000-000000000000' GROUP BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut from_facts: Vec<DispositionCount> = load(
        "SELECT disposition_id, count(*) AS calls FROM interactions
         WHERE organization_id = $1 AND disposition_id IS NOT NULL AND $2::uuid IS NOT NULL GROUP BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    from_rollups.sort();
    from_facts.sort();
    assert_eq!(from_rollups, from_facts);
    assert_eq!(from_facts.len(), 9, "every disposition is used");
}
