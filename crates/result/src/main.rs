//! `result`: the live result page. Reads settings, sets up logging, runs
//! the service until SIGTERM or Ctrl-C. All behaviour lives in the library.

use std::process::ExitCode;

use clap::Parser;
use servicekit::settings::redact_url;

/// jemalloc, with a background thread that hands memory freed after a load
/// back to the system within seconds (settings in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The voting app's result page: shows the tally from Postgres, live.
#[derive(Parser, Debug)]
#[command(name = "result", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<servicekit::service::Command>,
    #[command(flatten)]
    settings: result::Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return servicekit::service::healthcheck(
            "result",
            cli.settings.http.addr(),
            command.path(),
        )
        .await;
    }
    servicekit::telemetry::init();
    // Every live page is an open file: thousands of them need more than
    // the usual soft limit of 1,024.
    let open_files = servicekit::limits::raise_open_files_limit();
    let s = &cli.settings;
    tracing::info!(
        port = s.http.port,
        open_files,
        bind_address = %s.http.bind_address,
        max_connections = s.http.max_connections,
        database_url = %redact_url(&s.database.database_url),
        option_a = %s.options.option_a,
        option_b = %s.options.option_b,
        allowed_origins = %s.origins.allowed_origins,
        max_clients = s.max_clients,
        max_clients_per_address = s.max_clients_per_address,
        poll_interval_ms = s.poll_interval_ms,
        ping_interval_ms = s.ping_interval_ms,
        "starting result"
    );
    let shutdown = servicekit::shutdown::on_signals();
    servicekit::service::exit_code("result", result::run(cli.settings, shutdown)).await
}
