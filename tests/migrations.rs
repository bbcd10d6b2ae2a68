//! Every migration's down.sql works: up → down (all the way) → up on a fresh database, and
//! the database constraints that protect the data hold.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestDatabase;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

async fn tables(url: &str) -> Vec<String> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| r.name)
        .filter(|n| n != "__diesel_schema_migrations")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_down_up() {
    let db = TestDatabase::new().await; // cloned from the migrated template
    let migrated = tables(&db.url).await;
    assert!(migrated.contains(&"interactions".to_owned()) && migrated.contains(&"audit_log".to_owned()));
    let count = omnivox::db::migration_count();
    assert!(count >= 4);
    for _ in 0..count {
        omnivox::db::revert_last_migration(&db.url).await.unwrap();
    }
    assert_eq!(
        tables(&db.url).await,
        Vec::<String>::new(),
        "down.sql left tables behind"
    );
    let applied = omnivox::db::run_migrations(&db.url).await.unwrap();
    assert_eq!(applied.len(), count);
    assert_eq!(tables(&db.url).await, migrated);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_refuses_update_delete_and_truncate() {
    let db = TestDatabase::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(
        "INSERT INTO audit_log (chain_seq, occurred_at, action, hash) VALUES (1, now(), 'test', '\\x00')",
    )
    .await
    .unwrap();
    for statement in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let error = conn.batch_execute(statement).await.expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_tenant_references_are_refused_by_the_database() {
    let db = TestDatabase::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(
        "INSERT INTO organizations (id, slug, name) VALUES
           ('00000000-0000-0000-0000-00000000000a', 'org-a', 'A'),
           ('00000000-0000-0000-0000-00000000000b', 'org-b', 'B');
         INSERT INTO teams (id, organization_id, name) VALUES
           ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', 'Team A');",
    )
    .await
    .unwrap();
    let error = conn
        .batch_execute(
            "INSERT INTO agents (organization_id, display_name, team_id)
             VALUES ('00000000-0000-0000-0000-00000000000b', 'Mallory', '00000000-0000-0000-0000-0000000000f1')",
        )
        .await
        .expect_err("an agent of B in a team of A");
    assert!(error.to_string().contains("foreign key"), "{error}");
}

/// The disposition rollups' migration rebuilds them from the calls: a database upgraded in
/// place holds exactly what the writer maintains for the same calls (hourly and daily, every
/// level, calls without a disposition included), and so answers the same.
#[tokio::test(flavor = "multi_thread")]
async fn disposition_rollups_migration_backfills_what_the_writer_writes() {
    use omnivox::seed::generator::{self, GeneratorSettings};

    let app = common::TestApp::spawn().await;
    let settings = GeneratorSettings {
        org_slug: "upgrade".into(),
        calls: 4_000,
        days: 3,
        agents: 12,
        campaigns: 3,
        seed: 11,
        ..GeneratorSettings::default()
    };
    generator::run(&app.database.url, app.state.system_db.pool(), &settings, &mut |_| {})
        .await
        .unwrap();
    let url = app.database.url.clone();
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    // A second zone, so that local days differ from UTC days in one organization.
    conn.batch_execute("UPDATE organizations SET timezone = 'America/New_York' WHERE slug = 'upgrade'")
        .await
        .unwrap();
    conn.batch_execute(
        "DELETE FROM kpi_daily_disposition;
         INSERT INTO kpi_daily_disposition
         SELECT k.organization_id, (k.hour AT TIME ZONE o.timezone)::date, k.campaign_key, k.agent_key, k.direction,
                k.disposition_id, sum(calls), sum(offered), sum(answered), sum(handled), sum(abandoned), sum(short_abandoned)
         FROM kpi_hourly_disposition k JOIN organizations o ON o.id = k.organization_id GROUP BY 1, 2, 3, 4, 5, 6",
    )
    .await
    .unwrap();
    let snapshot =
        |table: &str| format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) AS name, count(*) FROM {table} t");
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Snapshot {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let mut before = Vec::new();
    for table in ["kpi_hourly_disposition", "kpi_daily_disposition"] {
        let s: Snapshot = diesel::sql_query(snapshot(table)).get_result(&mut conn).await.unwrap();
        assert!(s.count > 100, "{table}: {s:?}");
        before.push(s);
    }
    let none: Snapshot = diesel::sql_query(
        "SELECT 'none' AS name, count(*) FROM kpi_hourly_disposition WHERE disposition_id = '00000000-0000-0000-0000-000000000000'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(none.count > 0, "the writer keeps calls without a disposition");
    drop(conn);

    // Down to before the disposition rollups (and any migration after them), then up again.
    let mut reverted = 0;
    while tables(&url).await.contains(&"kpi_daily_disposition".to_owned()) {
        omnivox::db::revert_last_migration(&url).await.unwrap();
        reverted += 1;
        assert!(reverted <= 20, "the disposition rollups' migration was not found");
    }
    omnivox::db::run_migrations(&url).await.unwrap();
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    for (table, want) in ["kpi_hourly_disposition", "kpi_daily_disposition"].iter().zip(before) {
        let got: Snapshot = diesel::sql_query(snapshot(table)).get_result(&mut conn).await.unwrap();
        assert_eq!(got, want, "{table} after the migration's backfill");
    }
}
