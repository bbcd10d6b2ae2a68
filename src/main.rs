//! `omnivox`: parse the command line, start logging, run one subcommand.

use std::process::ExitCode;

use clap::Parser;
use omnivox::cli::{self, Cli};
use omnivox::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    cli::mark_process_start();
    let args = Cli::parse();
    let telemetry = match telemetry::init(args.settings.log_format, args.settings.otlp_endpoint.as_deref()) {
        Ok(telemetry) => telemetry,
        Err(error) => return fail(&error),
    };
    let outcome = cli::run(args.settings, args.command).await;
    telemetry.shutdown().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &omnivox::error::AppError) -> ExitCode {
    eprintln!("omnivox: {}", error.operator_message());
    ExitCode::FAILURE
}
