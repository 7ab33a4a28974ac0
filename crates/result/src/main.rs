//! `result`: the live result page. Reads settings, sets up logging, runs
//! the service until SIGTERM or Ctrl-C. All behaviour lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::config::redact_url;

/// The voting app's result page: shows the tally from Postgres, live.
#[derive(Parser, Debug)]
#[command(name = "result", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: result::Settings,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Exit 0 if the service on PORT is ready (Postgres reachable), 1 if
    /// not. For container health checks: no curl needed.
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return match common::health::healthcheck(cli.settings.port, "/readyz").await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("result is not ready: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    common::telemetry::init();
    // Every live page is an open file: thousands of them need more than
    // the usual soft limit of 1,024.
    let open_files = common::limits::raise_open_files_limit();
    let s = &cli.settings;
    tracing::info!(
        port = s.port,
        open_files,
        bind_address = %s.bind_address,
        database_url = %redact_url(&s.database.database_url),
        option_a = %s.options.option_a,
        option_b = %s.options.option_b,
        max_clients = s.max_clients,
        poll_interval_ms = s.poll_interval_ms,
        ping_interval_ms = s.ping_interval_ms,
        "starting result"
    );
    let shutdown = common::shutdown::on_signals();
    match result::run(cli.settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "result failed");
            ExitCode::FAILURE
        }
    }
}
