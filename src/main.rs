//! `omnivox`: parse the command line, start logging, run one subcommand.

use std::process::ExitCode;

use clap::Parser;
use omnivox::cli::{self, Cli};
use omnivox::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    cli::mark_process_start();
    let args = Cli::parse();
    telemetry::init(args.settings.log_format);
    match cli::run(args.settings, args.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("omnivox: {}", error.operator_message());
            ExitCode::FAILURE
        }
    }
}
