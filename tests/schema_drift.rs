//! `schema.graphql` is the checked-in contract for frontend teams; it must match the code.
//! Regenerate with `cargo run -- schema > schema.graphql`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

#[test]
fn checked_in_schema_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = omnivox::graphql::sdl();
    assert!(
        on_disk.trim_end() == generated.trim_end(),
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql` and commit it"
    );
}
