//! The benchmarks' own databases: each benchmark drops and recreates one by name.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// Drops and recreates the database of `url`. Refuses any name that does not contain `bench`,
/// or that would need quoting, so that a mistyped `--database-url` cannot drop a real database.
pub async fn recreate_database(url: &str) {
    let mut parsed = url::Url::parse(url).expect("the database URL is a URL");
    let name = parsed.path().trim_start_matches('/').to_owned();
    assert!(
        name.contains("bench") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "refusing to drop database {name:?}: a benchmark database's name must contain `bench`"
    );
    parsed.set_path("/postgres");
    let mut admin = AsyncPgConnection::establish(parsed.as_str())
        .await
        .expect("PostgreSQL is reachable");
    println!("dropping and recreating database {name}");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .expect("dropping the benchmark database");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("creating the benchmark database");
}
