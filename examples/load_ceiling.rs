//! Generator load rate, and the ceiling PostgreSQL puts on it on this machine.
//!
//! ```text
//! cargo run --release --example load_ceiling -- [--calls 300000] [--days 10] [--agents 100]
//!     [--campaigns 10] [--database-url postgres://postgres@127.0.0.1:5432/omnivox_load_bench]
//! ```
//!
//! 1. **Generator.** Drops and recreates the database (its name must contain `bench`),
//!    migrates it and runs the traffic generator (`omnivox seed --calls …`): the load rate of
//!    the product path — COPY of calls and agent-state intervals plus every rollup, in one
//!    transaction per batch.
//! 2. **Ceiling.** Reads the rows just loaded back as binary COPY data into memory, then
//!    replays exactly those rows, from `--loaders` connections at once (each a share of the
//!    days, as the generator's parallel batches are), into scratch copies of the two tables:
//!    * with no index and no constraint (the bare cost of getting rows into PostgreSQL);
//!    * with the product's indexes, maintained row by row as COPY inserts (what any loader
//!      into the live tables pays, before rollups);
//!    * with no index, then the same indexes built afterwards by `CREATE INDEX` (the classic
//!      drop-and-rebuild bulk technique, which needs the tables to itself).
//!
//! Every figure is calls per second, with that run's 1.6-or-so intervals per call included.
//! The ceiling figures leave out generating the traffic and the rollups, so they bound what any
//! loader could do with this schema on this machine. The scratch tables are dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::io::Cursor;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, TryStreamExt};
use omnivox::db;
use omnivox::seed::generator::{self, GeneratorSettings};
use tokio_postgres::{Client, NoTls};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 300_000)]
    calls: u64,
    #[arg(long, default_value_t = 10)]
    days: u32,
    #[arg(long, default_value_t = 100)]
    agents: u32,
    #[arg(long, default_value_t = 10)]
    campaigns: u32,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_load_bench")]
    database_url: String,
    /// Connections replaying the rows at once, each a share of the days (the generator loads
    /// this many batches at once by default).
    #[arg(long, default_value_t = generator::DEFAULT_LOAD_WORKERS)]
    loaders: usize,
}

/// The two fact tables, the columns the generator's COPY writes (the state log's `id` comes
/// from its sequence), and the time that splits them into days as the generator's batches do.
const TABLES: [(&str, &str, &str); 2] = [
    (
        "interactions",
        "id, organization_id, campaign_id, agent_id, external_id, direction, customer_number, offered_at, \
         answered_at, ended_at, wrap_ended_at, wait_ms, talk_ms, hold_ms, wrap_ms, outcome, disposition_id, \
         answered_by, notes",
        "offered_at",
    ),
    (
        "agent_state_log",
        "organization_id, agent_id, axis, state, reason, started_at, ended_at",
        "started_at",
    ),
];

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    client
}

/// Bytes per COPY message of the replay, as the generator sends them.
const CHUNK_BYTES: usize = 1 << 20;

/// The binary COPY data of `columns` of the rows of `table` whose UTC day (of `day_column`)
/// is `part` modulo `parts`, in messages of about [`CHUNK_BYTES`] (PostgreSQL sends one
/// message per row).
async fn copy_out(
    client: &Client,
    table: &str,
    columns: &str,
    day_column: &str,
    part: usize,
    parts: usize,
) -> Vec<Vec<u8>> {
    let stream = client
        .copy_out(&format!(
            "COPY (SELECT {columns} FROM {table} \
              WHERE mod(floor(extract(epoch FROM {day_column}) / 86400)::bigint, {parts}) = {part}) \
             TO STDOUT (FORMAT binary)"
        ))
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut chunks = vec![Vec::with_capacity(CHUNK_BYTES)];
    while let Some(row) = stream.try_next().await.unwrap() {
        if chunks.last().is_some_and(|c| c.len() >= CHUNK_BYTES) {
            chunks.push(Vec::with_capacity(CHUNK_BYTES));
        }
        chunks.last_mut().expect("never empty").extend_from_slice(&row);
    }
    chunks
}

async fn copy_in(client: &Client, table: &str, columns: &str, data: Vec<Vec<u8>>) -> u64 {
    let sink = client
        .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"))
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in data {
        sink.send(Cursor::new(chunk)).await.unwrap();
    }
    sink.as_mut().finish().await.unwrap()
}

/// `CREATE INDEX` statements of `table`'s indexes, re-targeted at `scratch` (names left to
/// PostgreSQL).
async fn index_definitions(client: &Client, table: &str, scratch: &str) -> Vec<String> {
    client
        .query(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let def: String = row.get(0);
            let (head, tail) = def.split_once(" ON ").expect("an index definition has ON");
            let kind = head.rsplit_once(' ').map_or(head, |(kind, _name)| kind);
            let rest = tail
                .strip_prefix(&format!("public.{table} "))
                .expect("the index is on the table");
            format!("{kind} ON {scratch} {rest}")
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Scratch {
    Bare,
    Indexed,
    BareThenIndexed,
}

/// Replays the loaded rows into fresh scratch tables, each loader (its own connection) copying
/// its share of the days, all at once; timed from the first COPY to the last index built.
/// Returns the seconds.
async fn replay(url: &str, client: &Client, shares: &[Vec<Vec<Vec<u8>>>], how: Scratch) -> f64 {
    let mut indexes = Vec::new();
    for (table, _, _) in TABLES {
        let scratch = format!("ceiling_{table}");
        let like = match how {
            Scratch::Indexed => "INCLUDING ALL",
            Scratch::Bare | Scratch::BareThenIndexed => "INCLUDING DEFAULTS",
        };
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {scratch}; CREATE TABLE {scratch} (LIKE {table} {like})"
            ))
            .await
            .unwrap();
        if matches!(how, Scratch::BareThenIndexed) {
            indexes.extend(index_definitions(client, table, &scratch).await);
        }
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    let mut loaders = Vec::new();
    for _ in shares {
        loaders.push(connect(url).await);
    }
    // Each replay sends its own copy of the data, made before the clock starts.
    let shares = shares.to_vec();
    let started = Instant::now();
    let copies = loaders.iter().zip(shares).map(|(loader, share)| async move {
        for ((table, columns, _), chunks) in TABLES.iter().zip(share) {
            copy_in(loader, &format!("ceiling_{table}"), columns, chunks).await;
        }
    });
    futures_util::future::join_all(copies).await;
    for index in &indexes {
        client.batch_execute(index).await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    for (table, _, _) in TABLES {
        client
            .batch_execute(&format!("DROP TABLE ceiling_{table}"))
            .await
            .unwrap();
    }
    seconds
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.loaders >= 1, "--loaders must be at least 1");
    let url = args.database_url.clone();
    bench_db::recreate_database(&url).await;
    db::run_migrations(&url).await.unwrap();
    let pool = db::build_pool(&url, 4, Duration::from_secs(10), Duration::from_secs(600)).unwrap();
    let settings = GeneratorSettings {
        org_slug: "load".into(),
        calls: args.calls,
        days: args.days,
        agents: args.agents,
        campaigns: args.campaigns,
        ..GeneratorSettings::default()
    };
    println!(
        "generating {} calls over {} days, {} agents, {} campaigns …",
        args.calls, args.days, args.agents, args.campaigns
    );
    let report = generator::run(&url, &pool, &settings, &mut |_| {}).await.unwrap();
    let calls = report.calls as f64;
    let per_call = report.intervals as f64 / calls;

    let client = connect(&url).await;
    let mut shares = Vec::new();
    for part in 0..args.loaders {
        let mut share = Vec::new();
        for (table, columns, day_column) in TABLES {
            share.push(copy_out(&client, table, columns, day_column, part, args.loaders).await);
        }
        shares.push(share);
    }
    let bare = replay(&url, &client, &shares, Scratch::Bare).await;
    let indexed = replay(&url, &client, &shares, Scratch::Indexed).await;
    let rebuilt = replay(&url, &client, &shares, Scratch::BareThenIndexed).await;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version: String = client.query_one("SHOW server_version", &[]).await.unwrap().get(0);

    println!();
    println!("## Load rate");
    println!();
    println!(
        "`cargo run --release --example load_ceiling -- --calls {} --days {} --agents {} --campaigns {} \
         --loaders {}` ({} intervals, {per_call:.2} per call; {cores} CPU cores; PostgreSQL {version})",
        args.calls, args.days, args.agents, args.campaigns, args.loaders, report.intervals
    );
    println!();
    println!("| path | seconds | calls/s |");
    println!("|---|---:|---:|");
    let line = |what: &str, seconds: f64| println!("| {what} | {seconds:.2} | {:.0} |", calls / seconds);
    line(
        "generator (`omnivox seed`): simulate, COPY into the live tables, all rollups",
        report.load.as_secs_f64(),
    );
    line("ceiling: COPY only, tables without indexes or constraints", bare);
    line("ceiling: COPY only, tables with the product's indexes", indexed);
    line(
        "ceiling: COPY without indexes, then CREATE INDEX of the same indexes",
        rebuilt,
    );
}
