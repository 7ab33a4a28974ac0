//! `hits`: the hit counter. Reads settings, sets up logging, runs the
//! service until SIGTERM or Ctrl-C. All behaviour lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc, with a background thread that hands memory freed after a load
/// back to the system within seconds (settings in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A web page that counts its views in Redis: every `GET /` runs
/// `INCR hits` and answers "Hello from Redis! I have been seen N times."
#[derive(Parser, Debug)]
#[command(
    name = "hits",
    version,
    after_help = "Settings come from the environment, as in the original app: REDIS_HOST, \
                  REDIS_PORT, BIND_PORT. Where the original crashes without them, hits uses \
                  the defaults above (Redis at redis:6379, serving on port 5000). Logs go to \
                  stderr; RUST_LOG sets the level, RUST_LOG_FORMAT=json makes them JSON."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: hits::Settings,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Exit 0 if the app on BIND_PORT answers `/healthz`, 1 if not. For
    /// container health checks: no curl needed. Redis being down does not
    /// make the app unhealthy (it answers 503 and recovers by itself).
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return servicekit::service::healthcheck("hits", cli.settings.addr(), "/healthz").await;
    }
    servicekit::telemetry::init();
    let s = &cli.settings;
    tracing::info!(
        redis_host = %s.redis_host,
        redis_port = s.redis_port,
        bind_port = s.bind_port,
        bind_address = %s.bind_address,
        max_connections = s.max_connections,
        "starting hits"
    );
    let shutdown = servicekit::shutdown::on_signals();
    servicekit::service::exit_code("hits", hits::run(cli.settings, shutdown)).await
}
