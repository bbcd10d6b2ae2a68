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
