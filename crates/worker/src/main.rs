//! `worker`: moves ballots from Redis into Postgres. Reads settings, sets
//! up logging, runs until SIGTERM or Ctrl-C. All behaviour lives in the
//! library.

use std::process::ExitCode;

use clap::Parser;
use servicekit::settings::redact_url;

/// jemalloc, with a background thread that hands memory freed after a load
/// back to the system within seconds (settings in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The voting app's worker: stores each voter's latest ballot from the
/// Redis queue `votes` in the Postgres table `votes`.
#[derive(Parser, Debug)]
#[command(name = "worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<servicekit::service::Command>,
    #[command(flatten)]
    settings: worker::Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return servicekit::service::healthcheck(
            "worker",
            cli.settings.admin_addr(),
            command.path(),
        )
        .await;
    }
    servicekit::telemetry::init();
    let s = &cli.settings;
    tracing::info!(
        worker_id = %s.worker_id(),
        redis_url = %redact_url(&s.redis.redis_url),
        database_url = %redact_url(&s.database.database_url),
        batch_size = s.batch_size,
        block_seconds = s.block_seconds,
        heartbeat_seconds = s.heartbeat_seconds,
        summary_seconds = s.summary_seconds,
        admin_port = s.admin_port,
        admin_bind_address = %s.admin_bind_address,
        "starting worker"
    );
    let shutdown = servicekit::shutdown::on_signals();
    servicekit::service::exit_code("worker", worker::run(cli.settings, shutdown)).await
}
