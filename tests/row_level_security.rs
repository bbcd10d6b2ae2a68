//! Tenant isolation enforced by PostgreSQL itself (migration `…_row_level_security`,
//! `db::tenancy`): the application's role sees exactly its tenant's rows in every table, a
//! statement without a tenant sees nothing, a pool of two connections shared by two tenants in
//! interleaved tasks never hands one tenant's setting to the other, writes into another
//! organization are refused, the audit trail is append-only for that role, and a role that
//! would bypass the policies is refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::TestApp;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::audit::{self, AuditEvent};
use omnivox::auth::Tenant;
use omnivox::db;
use omnivox::kpi::writer::ReferenceChecks;
use omnivox::seed::generator::{self, GeneratorSettings};
use uuid::Uuid;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    foreign: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every table of the schema but the migrations' bookkeeping.
async fn tables(conn: &mut AsyncPgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT tablename::text AS name FROM pg_tables
          WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations' ORDER BY 1",
    )
    .load::<Name>(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

/// The SQL naming the organization of each row of `table` (its own column, or its parent's).
fn org_of_row(table: &str) -> String {
    match table {
        "organizations" => format!("SELECT id AS org FROM {table}"),
        "refresh_tokens" => {
            "SELECT u.organization_id AS org FROM refresh_tokens t JOIN users u ON u.id = t.user_id".into()
        }
        "report_files" => {
            "SELECT r.organization_id AS org FROM report_files f JOIN report_runs r ON r.id = f.run_id".into()
        }
        _ => format!("SELECT organization_id AS org FROM {table}"),
    }
}

/// What `conn` sees of `table`: all rows, and rows of another organization than `org`.
async fn visible(conn: &mut AsyncPgConnection, table: &str, org: Uuid) -> Counts {
    // The inner select runs on `conn`'s role: for the application's role the join partners
    // are filtered too, and that is the point.
    let sql = format!(
        "SELECT count(*) AS total, count(*) FILTER (WHERE org IS DISTINCT FROM $1) AS foreign FROM ({}) AS rows",
        org_of_row(table)
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(org)
        .get_result(conn)
        .await
        .unwrap()
}

async fn generate(app: &TestApp, slug: &str, seed: u64) -> Uuid {
    let settings = GeneratorSettings {
        org_slug: slug.into(),
        calls: 1_500,
        days: 3,
        agents: 12,
        campaigns: 3,
        seed,
        batch_calls: 1_000,
        load_workers: 1,
        reference_checks: ReferenceChecks::PerBatch,
    };
    generator::run(&app.database.url, app.state.system_db.pool(), &settings, &mut |_| {})
        .await
        .unwrap();
    let mut conn = app.state.system_db.get().await.unwrap();
    diesel::sql_query("SELECT id::text AS name FROM organizations WHERE slug = $1")
        .bind::<Text, _>(slug)
        .get_result::<Name>(&mut conn)
        .await
        .unwrap()
        .name
        .parse()
        .unwrap()
}

/// Two organizations with rows in many tables: the seeded demo (users, teams, skills,
/// coaching, reports…) and a generated one (calls, state log, rollups); and every table.
async fn two_tenants(app: &TestApp) -> (Uuid, Uuid, Vec<String>) {
    omnivox::seed::seed_demo(&app.state, common::TEST_PASSWORD)
        .await
        .unwrap();
    let demo = {
        let mut conn = app.state.system_db.get().await.unwrap();
        diesel::sql_query("SELECT id::text AS name FROM organizations WHERE slug = 'demo'")
            .get_result::<Name>(&mut conn)
            .await
            .unwrap()
            .name
            .parse()
            .unwrap()
    };
    let generated = generate(app, "generated", 11).await;
    let mut conn = app.state.system_db.get().await.unwrap();
    (demo, generated, tables(&mut conn).await)
}

/// How many rows of `table` belong to `org`, counted by the owner (who sees every row).
async fn owned_rows(app: &TestApp, table: &str, org: Uuid) -> i64 {
    let mut conn = app.state.system_db.get().await.unwrap();
    let sql = format!(
        "SELECT count(*) AS n FROM ({}) AS rows WHERE org = $1",
        org_of_row(table)
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(org)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_has_row_level_security_and_a_tenant_policy() {
    let app = TestApp::spawn().await;
    let mut conn = app.state.system_db.get().await.unwrap();
    let all = tables(&mut conn).await;
    assert!(all.len() > 30, "{all:?}");
    let unprotected: Vec<String> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '__diesel_schema_migrations'
            AND (NOT c.relrowsecurity
                 OR NOT EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname))
          ORDER BY 1",
    )
    .load::<Name>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect();
    assert!(
        unprotected.is_empty(),
        "tables without row-level security: {unprotected:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_interleaved_on_a_pool_of_two_see_only_their_own_rows() {
    let app = TestApp::spawn().await;
    let (demo, generated, all) = two_tenants(&app).await;
    // What each tenant must see: exactly its rows, counted by the owner.
    let mut expected = Vec::new();
    for table in &all {
        expected.push((
            table.clone(),
            owned_rows(&app, table, demo).await,
            owned_rows(&app, table, generated).await,
        ));
    }
    let seen_by_both = expected.iter().filter(|(_, a, b)| *a > 0 && *b > 0).count();
    assert!(
        seen_by_both >= 10,
        "the fixture should fill many tables for both: {expected:?}"
    );

    let app_url = app.state.settings.app_database_url().unwrap();
    let pool = db::build_tenant_pool(&app_url, 2, Duration::from_secs(30), Duration::from_secs(30)).unwrap();
    let mut tasks = Vec::new();
    for round in 0..12 {
        let (org, other) = if round % 2 == 0 {
            (demo, generated)
        } else {
            (generated, demo)
        };
        let pool = pool.clone();
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = Tenant::for_system(org);
            let mut conn = pool.get(&tenant).await.unwrap();
            for (table, demo_rows, generated_rows) in &expected {
                let counts = visible(&mut conn, table, org).await;
                assert_eq!(counts.foreign, 0, "{table}: rows of another organization seen by {org}");
                let own = if org == demo { *demo_rows } else { *generated_rows };
                assert_eq!(
                    counts.total, own,
                    "{table}: {org} sees {} of its {own} rows",
                    counts.total
                );
                // Let the other tenant's tasks run between statements on the shared connections.
                tokio::task::yield_now().await;
            }
            // A write into the other organization is refused by the policy.
            let refused =
                diesel::sql_query("INSERT INTO teams (id, organization_id, name) VALUES ($1, $2, 'intruder')")
                    .bind::<SqlUuid, _>(Uuid::new_v4())
                    .bind::<SqlUuid, _>(other)
                    .execute(&mut *conn)
                    .await
                    .unwrap_err()
                    .to_string();
            assert!(refused.contains("row-level security"), "{refused}");
            // An update aimed at the other organization's rows touches none.
            let touched = diesel::sql_query("UPDATE agents SET display_name = display_name WHERE organization_id = $1")
                .bind::<SqlUuid, _>(other)
                .execute(&mut *conn)
                .await
                .unwrap();
            assert_eq!(touched, 0);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let status = pool.status();
    assert!(status.max_size == 2 && status.size <= 2, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_without_a_tenant_sees_nothing() {
    let app = TestApp::spawn().await;
    let (demo, generated, all) = two_tenants(&app).await;
    let app_url = app.state.settings.app_database_url().unwrap();

    // A connection of the application's role that never named a tenant.
    let mut raw = AsyncPgConnection::establish(&app_url).await.unwrap();
    for table in &all {
        assert_eq!(
            visible(&mut raw, table, Uuid::nil()).await.total,
            0,
            "{table} without a tenant"
        );
    }
    // The owner's view of closed state intervals (migration 000034) applies the same rule.
    let periods = "SELECT count(*) AS n FROM agent_state_periods";
    let count = |n: Count| n.n;
    assert_eq!(count(diesel::sql_query(periods).get_result(&mut raw).await.unwrap()), 0);
    let refused = diesel::sql_query("INSERT INTO teams (id, organization_id, name) VALUES ($1, $2, 'nobody')")
        .bind::<SqlUuid, _>(Uuid::new_v4())
        .bind::<SqlUuid, _>(demo)
        .execute(&mut raw)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("row-level security"), "{refused}");

    // A pool of one: the connection that just acted for the demo, checked out for no tenant,
    // has forgotten it.
    let pool = db::build_tenant_pool(&app_url, 1, Duration::from_secs(30), Duration::from_secs(30)).unwrap();
    {
        let mut conn = pool.get(&Tenant::for_system(demo)).await.unwrap();
        assert!(visible(&mut conn, "agents", demo).await.total > 0);
    }
    let mut conn = pool.get_without_tenant().await.unwrap();
    assert_eq!(visible(&mut conn, "agents", demo).await.total, 0);
    drop(conn);
    let mut conn = pool.get(&Tenant::for_system(generated)).await.unwrap();
    let own: Count = diesel::sql_query(periods).get_result(&mut *conn).await.unwrap();
    let mut owner = app.state.system_db.get().await.unwrap();
    let closed: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM agent_state_log WHERE organization_id = $1 AND ended_at IS NOT NULL",
    )
    .bind::<SqlUuid, _>(generated)
    .get_result(&mut owner)
    .await
    .unwrap();
    assert!(closed.n > 0 && own.n == closed.n, "{} of {}", own.n, closed.n);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_is_append_only_for_the_application() {
    let app = TestApp::spawn().await;
    let (demo, _, _) = two_tenants(&app).await;
    let mut conn = app.state.db.get(&Tenant::for_system(demo)).await.unwrap();
    // Appending is allowed (the chain's writer runs as the application's role)…
    conn.transaction(async |c| audit::record(c, AuditEvent::new(Some(demo), None, "test.append")).await)
        .await
        .unwrap();
    assert!(visible(&mut conn, "audit_log", demo).await.total > 0);
    // …changing or removing a record is not.
    for sql in ["UPDATE audit_log SET action = 'rewritten'", "DELETE FROM audit_log"] {
        let refused = diesel::sql_query(sql)
            .execute(&mut *conn)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_bypasses_the_policies_is_refused() {
    let app = TestApp::spawn().await;
    // The owner (a superuser here) as the application's role.
    let owner = db::build_tenant_pool(&app.database.url, 1, Duration::from_secs(30), Duration::from_secs(30)).unwrap();
    let error = owner.check_role().await.unwrap_err();
    assert_eq!(error.code().as_str(), "BAD_USER_INPUT");
    let message = error.client_message();
    assert!(
        message.contains("superuser") && message.contains("postgres"),
        "{message}"
    );
    assert!(
        !message.contains("postgres://"),
        "the URL stays out of the message: {message}"
    );
    // The application's own role passes.
    app.state.db.check_role().await.unwrap();
}
