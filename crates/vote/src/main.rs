//! `vote`: the voting web page. Reads settings, sets up logging, runs the
//! service until SIGTERM or Ctrl-C. All behaviour lives in the library.

use std::process::ExitCode;

use clap::Parser;
use servicekit::settings::redact_url;

/// jemalloc, with a background thread that hands memory freed after a load
/// back to the system within seconds (settings in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The voting app's vote page: queues each visitor's choice in Redis.
#[derive(Parser, Debug)]
#[command(name = "vote", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<servicekit::service::Command>,
    #[command(flatten)]
    settings: vote::Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return servicekit::service::healthcheck("vote", cli.settings.http.addr(), command.path())
            .await;
    }
    servicekit::telemetry::init();
    let open_files = servicekit::limits::raise_open_files_limit();
    let s = &cli.settings;
    tracing::info!(
        port = s.http.port,
        open_files,
        bind_address = %s.http.bind_address,
        max_connections = s.http.max_connections,
        redis_url = %redact_url(&s.redis.redis_url),
        option_a = %s.options.option_a,
        option_b = %s.options.option_b,
        allowed_origins = %s.origins.allowed_origins,
        "starting vote"
    );
    let shutdown = servicekit::shutdown::on_signals();
    servicekit::service::exit_code("vote", vote::run(cli.settings, shutdown)).await
}
