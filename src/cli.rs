//! The subcommands of the `omnivox` binary. Each prints what an operator needs and nothing
//! secret (tokens are printed only by `omnivox token`, which exists to print one).
//!
//! `serve` and `demo` drain on SIGTERM or Ctrl-C (see [`serve`]); `demo` also runs the live
//! call simulator ([`crate::seed::live`]) unless told not to.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::access::session;
use crate::config::{parse_duration, Settings, DEMO_PASSWORD};
use crate::db::{self, users};
use crate::error::{AppError, AppResult};
use crate::seed;
use crate::state::AppState;

#[derive(Debug, Parser)]
#[command(
    name = "omnivox",
    version,
    about = "Contact-centre dialler backend: KPIs, wallboards, reports, one GraphQL API"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing, apply pending migrations and serve the API.
    Serve,
    /// Apply pending migrations (or revert the latest one with --revert).
    Migrate {
        #[arg(long)]
        revert: bool,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Mint an access token for a user, for scripts and BI tools.
    Token {
        #[arg(long)]
        email: String,
        /// Lifetime, e.g. 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Seed data. `--demo` creates (idempotently) the demo organization. `--calls N` generates N
    /// synthetic calls — with the campaigns, dispositions, teams, agents, shifts and agent state
    /// log they need — and bulk-loads them with their rollups (see `seed::generator`).
    Seed {
        #[arg(long)]
        demo: bool,
        /// Password of every demo login.
        #[arg(long, default_value = DEMO_PASSWORD)]
        password: String,
        /// Generate this many calls (exactly), over `--days` days ending today.
        #[arg(long)]
        calls: Option<u64>,
        /// Days of generated history, ending today (today up to half an hour ago).
        #[arg(long, default_value_t = 30, requires = "calls")]
        days: u32,
        /// Agents of the generated run (split into an inbound and an outbound pool, teams of 15).
        #[arg(long, default_value_t = 100, requires = "calls")]
        agents: u32,
        /// Campaigns used by the generated calls, alternately inbound and outbound.
        #[arg(long, default_value_t = 10, requires = "calls")]
        campaigns: u32,
        /// Organization (slug) to generate into: created (time zone Europe/London) when missing;
        /// when it exists the run adds to it (campaigns and dispositions reused by name, new
        /// teams and agents for the run).
        #[arg(long, default_value = crate::seed::generator::DEFAULT_ORG_SLUG, requires = "calls")]
        org: String,
        /// Seed of the generator: the same seed on the same day gives the same traffic.
        #[arg(long, default_value_t = crate::seed::generator::DEFAULT_SEED, requires = "calls")]
        seed: u64,
        /// Calls per loading transaction (whole days are kept together).
        #[arg(long, default_value_t = crate::seed::generator::DEFAULT_BATCH_CALLS, requires = "calls")]
        batch_calls: usize,
        /// Batches loading at once, each on its own connection.
        #[arg(long, default_value_t = crate::seed::generator::DEFAULT_LOAD_WORKERS, requires = "calls")]
        load_workers: usize,
        /// Enforce foreign keys with PostgreSQL's per-row triggers even when the role could
        /// check them once per batch (see `kpi::writer::ReferenceChecks`).
        #[arg(long, requires = "calls")]
        per_row_fk_checks: bool,
    },
    /// Import data into an organization.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// First run: migrate, seed the demo (idempotent), serve, and print where to look. A live
    /// call simulator feeds calls and agent changes through the ingest path while it runs.
    Demo {
        /// Password of every demo login.
        #[arg(long, default_value = DEMO_PASSWORD)]
        password: String,
        /// Speed of the live simulator: simulated seconds per real second (1 = real time; a
        /// decimal number from 0.1 to 10000).
        #[arg(long, default_value = "1", value_parser = crate::seed::live::parse_speed)]
        speed: f64,
        /// Serve the demo without the live simulator: the data stays still.
        #[arg(long)]
        no_simulator: bool,
        /// Seed of the live simulator: the same seed gives the same calls on the same day.
        #[arg(long = "simulator-seed", default_value_t = crate::seed::live::DEFAULT_SEED)]
        simulator_seed: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Completed calls from a CSV or NDJSON file (the fields are described in
    /// `ingest::history`), loaded with their rollups; rows the organization already has (by
    /// external id) are skipped, so a second run changes nothing. Any bad row: every problem
    /// is printed (line, field, reason), nothing is written and the exit status is 1. Times
    /// before the organization's history horizon (business settings) are bad rows.
    Calls {
        file: std::path::PathBuf,
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// csv or ndjson; by default from the file's extension (.csv, .ndjson, .jsonl).
        #[arg(long)]
        format: Option<String>,
        /// Calls per loading transaction.
        #[arg(long, default_value_t = crate::ingest::history::DEFAULT_BATCH_CALLS)]
        batch_calls: usize,
        /// Enforce foreign keys with PostgreSQL's per-row triggers even when the role could
        /// check them once per batch (see `kpi::writer::ReferenceChecks`).
        #[arg(long)]
        per_row_fk_checks: bool,
    },
}

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Records the instant the process started (call first thing in `main`); the demo measures its
/// start-up time from it.
pub fn mark_process_start() {
    let _ = PROCESS_START.set(Instant::now());
}

fn process_start() -> Instant {
    *PROCESS_START.get_or_init(Instant::now)
}

/// Runs one subcommand to its end.
pub async fn run(settings: Settings, command: Command) -> AppResult<()> {
    match command {
        Command::Serve => {
            prepare_database(&settings).await?;
            let state = AppState::new(settings)?;
            serve(state, |addr| tracing::info!(%addr, "omnivox listening")).await
        }
        Command::Migrate { revert } => {
            db::create_database_if_missing(&settings.database_url).await?;
            if revert {
                let version = db::revert_last_migration(&settings.database_url).await?;
                println!("reverted migration {version}");
            } else {
                let applied = db::run_migrations(&settings.database_url).await?;
                println!("{} migration(s) applied{}", applied.len(), list(&applied));
            }
            Ok(())
        }
        Command::Schema => {
            println!("{}", crate::graphql::sdl().trim_end());
            Ok(())
        }
        Command::Token { email, ttl } => {
            let state = AppState::new(settings)?;
            if state.settings.jwt_secret.is_none() {
                return Err(AppError::bad_input(
                    "set OMNIVOX_JWT_SECRET to the server's secret: a token signed with a random key is useless",
                ));
            }
            // Cross-tenant (`db::tenancy`): the address finds the account.
            let mut conn = state.system_db.get().await?;
            let user = users::find_by_email(&mut conn, &email.trim().to_lowercase())
                .await?
                .filter(|u| u.active)
                .ok_or_else(|| AppError::NotFound(format!("no active user with e-mail {email}")))?;
            let (token, expires_at) = session::access_token(&state, &user, ttl)?;
            eprintln!("access token for {} ({}), expires {expires_at}", user.email, user.role);
            println!("{token}");
            Ok(())
        }
        Command::Seed {
            demo,
            password,
            calls,
            days,
            agents,
            campaigns,
            org,
            seed,
            batch_calls,
            load_workers,
            per_row_fk_checks,
        } => {
            if !demo && calls.is_none() {
                return Err(AppError::bad_input("nothing to seed: pass --demo or --calls N"));
            }
            prepare_database(&settings).await?;
            if demo {
                let state = AppState::new(settings.clone())?;
                let summary = seed::seed_demo(&state, &password).await?;
                print_logins(&summary, &password);
            }
            let Some(calls) = calls else { return Ok(()) };
            let generator = crate::seed::generator::GeneratorSettings {
                org_slug: org,
                calls,
                days,
                agents,
                campaigns,
                seed,
                batch_calls,
                load_workers,
                reference_checks: if per_row_fk_checks {
                    crate::kpi::writer::ReferenceChecks::PerRow
                } else {
                    crate::kpi::writer::ReferenceChecks::PerBatch
                },
            };
            let pool = db::build_pool(
                &settings.database_url,
                2,
                settings.db_wait_timeout,
                settings.db_statement_timeout,
            )?;
            println!(
                "generating {calls} calls over {days} days for {agents} agents and {campaigns} campaigns into `{}` (seed {seed})",
                generator.org_slug
            );
            let report = crate::seed::generator::run(&settings.database_url, &pool, &generator, &mut |p| {
                println!(
                    "  {:>11} / {} calls ({:>3.0} %)  {:>11} intervals  {:>7.1} s  {:>9.0} calls/s",
                    p.calls,
                    p.calls_total,
                    100.0 * p.calls as f64 / p.calls_total.max(1) as f64,
                    p.intervals,
                    p.elapsed.as_secs_f64(),
                    p.calls as f64 / p.elapsed.as_secs_f64().max(1e-9)
                );
            })
            .await?;
            println!(
                "organization `{}` {} (run {}): {} calls and {} agent-state intervals in {} batches, \
                 {:.1} s (+{:.1} s setup): {:.0} calls/s; handle times scaled ×{:.2} to fit the agents; \
                 foreign keys checked {}",
                generator.org_slug,
                if report.created_organization {
                    "created"
                } else {
                    "extended"
                },
                report.run,
                report.calls,
                report.intervals,
                report.batches,
                report.load.as_secs_f64(),
                report.setup.as_secs_f64(),
                report.calls_per_second(),
                report.handle_time_scale,
                match report.reference_checks {
                    crate::kpi::writer::ReferenceChecks::PerRow => "per row",
                    crate::kpi::writer::ReferenceChecks::PerBatch => "per batch",
                }
            );
            Ok(())
        }
        Command::Import {
            what:
                ImportCommand::Calls {
                    file,
                    org,
                    format,
                    batch_calls,
                    per_row_fk_checks,
                },
        } => {
            prepare_database(&settings).await?;
            let state = AppState::new(settings)?;
            import_calls(&state, file, &org, format.as_deref(), batch_calls, per_row_fk_checks).await
        }
        Command::Demo {
            password,
            speed,
            no_simulator,
            simulator_seed,
        } => {
            prepare_database(&settings).await?;
            let state = AppState::new(settings)?;
            let summary = seed::seed_demo(&state, &password).await?;
            let graphiql = state.settings.graphiql_enabled();
            let (listening, listening_rx) = tokio::sync::oneshot::channel::<()>();
            if !no_simulator {
                let live = crate::seed::live::LiveSettings {
                    speed,
                    seed: simulator_seed,
                };
                tokio::spawn(run_simulator(state.clone(), live, listening_rx));
            }
            serve(state, move |addr| {
                println!("\nOmnivox demo is running.\n");
                if graphiql {
                    println!("  GraphiQL:  http://{addr}/graphiql");
                }
                println!("  GraphQL:   http://{addr}/graphql  (POST, GET for queries, WebSocket)");
                println!("  Wallboard: http://{addr}/wallboard  (sign in as viewer@ or supervisor@)");
                println!("  Health:    http://{addr}/livez  http://{addr}/readyz\n");
                print_logins(&summary, &password);
                println!(
                    "\nSign in with the `login` mutation and send the accessToken as `Authorization: Bearer <token>`."
                );
                if no_simulator {
                    println!("Live simulator: off (--no-simulator); the data stays still.");
                }
                println!("Press Ctrl-C to stop.");
                let _ = listening.send(());
            })
            .await
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join(", "))
    }
}

fn print_logins(summary: &seed::DemoSummary, password: &str) {
    println!(
        "Demo organization `{}` ({}){}:",
        seed::DEMO_SLUG,
        seed::DEMO_NAME,
        if summary.created_organization { ", created" } else { "" }
    );
    for (email, role) in &summary.logins {
        println!("  {role:<12} {email:<28} password: {password}");
    }
}

/// Starts the live simulator once the demo listens, and prints when it started and how long the
/// process took from its start to the simulator's first committed event.
async fn run_simulator(
    state: AppState,
    settings: crate::seed::live::LiveSettings,
    listening: tokio::sync::oneshot::Receiver<()>,
) {
    if listening.await.is_err() {
        return;
    }
    let simulator = match crate::seed::live::start(state, settings).await {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!("Live simulator could not start: {}", error.operator_message());
            return;
        }
    };
    println!(
        "Live simulator: started at speed ×{} (seed {}), simulated clock at {}; --no-simulator turns it off.",
        settings.speed,
        settings.seed,
        simulator.simulated_start_local()
    );
    if let Some(first) = simulator.first_event().await {
        let elapsed = first.at.saturating_duration_since(process_start());
        println!(
            "Live simulator: first live event ({}) committed {:.2} s after process start.",
            first.kind,
            elapsed.as_secs_f64()
        );
    }
}

/// Creates the database when missing and applies pending migrations.
pub async fn prepare_database(settings: &Settings) -> AppResult<()> {
    db::create_database_if_missing(&settings.database_url).await?;
    let applied = db::run_migrations(&settings.database_url).await?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "applied migrations");
    }
    Ok(())
}

/// Serves until SIGINT or SIGTERM (or until something else starts draining `state.lifecycle`),
/// then drains:
///
/// 1. readiness turns 503 and the listener closes: no new connection is accepted;
/// 2. every WebSocket is closed 1001 "server going away" (clients reconnect elsewhere);
/// 3. requests already read run to their response; keep-alive connections close after it;
/// 4. work that outlives requests finishes: queued webhook deliveries are committed and the
///    live simulator ends its batch.
///
/// When all of it is done the process exits 0. Whatever is still running when
/// `--drain-timeout` passes is cut: logged, and the command fails (exit status 1).
pub async fn serve(state: AppState, on_listening: impl FnOnce(SocketAddr)) -> AppResult<()> {
    let bind = state.settings.bind;
    let drain_timeout = state.settings.drain_timeout;
    let lifecycle = state.lifecycle.clone();
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot listen on {bind}: {e}")))?;
    let addr = listener.local_addr().map_err(AppError::internal)?;
    // Row-level security means nothing to a role that bypasses it.
    state.db.check_role().await?;
    // Report runs queued by any instance; stops claiming when draining.
    crate::reports::jobs::spawn(&state);
    // Report schedules and their deliveries: every instance runs both (claims are exclusive).
    crate::reports::scheduler::spawn(&state);
    crate::reports::delivery::spawn(&state);
    on_listening(addr);
    let stop_accepting = {
        let lifecycle = lifecycle.clone();
        async move { lifecycle.draining().await }
    };
    // The peer's address reaches handlers (rate limits per client address).
    let app = crate::http::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(stop_accepting)
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            // Only an accept loop that failed ends before a shutdown.
            return served.map_err(|e| AppError::internal(format!("server: {e}")));
        }
        () = shutdown_signal() => {}
        () = lifecycle.draining() => {}
    }
    lifecycle.start_draining();
    let draining_since = Instant::now();
    tracing::info!(
        deadline_s = drain_timeout.as_secs_f64(),
        "draining: readiness 503, no new connections, WebSockets closed 1001; finishing in-flight requests and ingest"
    );
    let drained = tokio::time::timeout(drain_timeout, async {
        let served = (&mut server).await;
        lifecycle.idle().await;
        served
    })
    .await;
    match drained {
        Ok(served) => {
            served.map_err(|e| AppError::internal(format!("server: {e}")))?;
            tracing::info!(
                elapsed_ms = draining_since.elapsed().as_millis() as u64,
                "drained; shut down cleanly"
            );
            Ok(())
        }
        Err(_) => {
            let work = lifecycle.work_in_flight();
            tracing::warn!(
                work_in_flight = work,
                deadline_s = drain_timeout.as_secs_f64(),
                "drain deadline passed: cutting the connections and work still open"
            );
            Err(AppError::Unavailable(format!(
                "the drain deadline ({} s) passed with work still in flight ({work} background unit(s), \
                 plus any open connection); it was cut",
                drain_timeout.as_secs_f64()
            )))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// `omnivox import calls`: progress on stderr, the outcome (or every bad row) on stdout.
async fn import_calls(
    state: &AppState,
    file: std::path::PathBuf,
    org: &str,
    format: Option<&str>,
    batch_calls: usize,
    per_row_fk_checks: bool,
) -> AppResult<()> {
    use crate::ingest::history::{self, Format, ImportOptions, Importer, Progress, Source};

    let format = match format {
        Some(name) => Format::from_name(&format!(".{name}")),
        None => Format::from_name(&file.to_string_lossy()),
    }
    .ok_or_else(|| AppError::bad_input("say --format csv or ndjson (the file name does not tell)"))?;
    let org_row = {
        // Cross-tenant (`db::tenancy`): the slug finds the organization.
        let mut conn = state.system_db.get().await?;
        crate::db::orgs::find_by_slug(&mut conn, org)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no organization `{org}`")))?
    };
    let tenant = crate::auth::Tenant::for_system(org_row.id);
    let mut options = ImportOptions::new(format);
    options.batch_calls = batch_calls;
    options.checks = if per_row_fk_checks {
        crate::kpi::writer::ReferenceChecks::PerRow
    } else {
        crate::kpi::writer::ReferenceChecks::PerBatch
    };
    let started = Instant::now();
    let progress = std::sync::Arc::new(move |p: Progress| match p {
        Progress::Checked(rows) => eprintln!("  checked {rows} rows"),
        Progress::Loaded { done, total, imported } => eprintln!(
            "  {done} / {total} rows ({:.0} %), {imported} imported, {:.0} rows/s",
            100.0 * done as f64 / total.max(1) as f64,
            done as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ),
    });
    eprintln!("importing {} into `{org}`", file.display());
    let report = history::import_calls(
        state,
        &tenant,
        Importer::operator(),
        Source::File(file),
        options,
        progress,
    )
    .await?;
    if report.rejected_rows > 0 {
        for error in &report.errors {
            println!("line {}: {}: {}", error.line, error.field, error.reason);
        }
        if report.errors.len() < usize::try_from(report.rejected_rows).unwrap_or(usize::MAX) {
            println!("(the first {} problems are shown)", report.errors.len());
        }
        return Err(AppError::bad_input(format!(
            "{} of {} rows refused; nothing imported",
            report.rejected_rows, report.rows
        )));
    }
    println!(
        "imported {} calls, {} already there, from {} rows in {:.1} s ({:.0} calls/s)",
        report.imported,
        report.duplicates,
        report.rows,
        report.seconds,
        report.imported as f64 / report.seconds.max(1e-9)
    );
    Ok(())
}
