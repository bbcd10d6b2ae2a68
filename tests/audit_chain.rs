//! The audit chain detects a record altered behind the trigger's back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestApp;
use diesel_async::SimpleAsyncConnection;
use omnivox::auth::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn tampering_breaks_the_chain_at_the_altered_record() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await; // audits auth.login
    for v in 1..=3 {
        app.gql(
            Some(&admin),
            "mutation($v: Int!) { updateBusinessSettings(expectedVersion: $v, input: { wrapUpLimitSeconds: 30 }) { version } }",
            json!({ "v": v }),
        )
        .await
        .ok();
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    let report = omnivox::audit::verify_chain(&mut conn, Some(org.id)).await.unwrap();
    assert_eq!((report.records, report.first_broken_seq), (4, None));

    // Someone with superuser rights disables the trigger and rewrites history.
    conn.batch_execute(&format!(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
         UPDATE audit_log SET details = jsonb_set(details, '{{toVersion}}', '99') WHERE organization_id = '{}' AND chain_seq = 3;
         ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;",
        org.id
    ))
    .await
    .unwrap();
    let report = omnivox::audit::verify_chain(&mut conn, Some(org.id)).await.unwrap();
    assert_eq!(report.first_broken_seq, Some(3));
}
