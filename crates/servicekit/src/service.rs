//! The shared ends of every service's `main`: the `healthcheck`
//! subcommand, and the exit code of a run.

use std::future::Future;
use std::process::ExitCode;

/// The subcommands every service binary has besides running.
#[derive(clap::Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Exit 0 if this service, running on its configured port, is ready
    /// (the stores it needs answer), 1 if not. For container health checks:
    /// no curl needed.
    Healthcheck {
        /// Only check that the process answers (`/healthz`), not its stores
        /// (`/readyz`): for orchestrators that restart unhealthy containers,
        /// where restarting would not bring a store back.
        #[arg(long)]
        live: bool,
    },
}

impl Command {
    /// The endpoint the check asks.
    pub fn path(self) -> &'static str {
        match self {
            Command::Healthcheck { live: true } => "/healthz",
            Command::Healthcheck { live: false } => "/readyz",
        }
    }
}

/// Runs the `healthcheck` subcommand: asks the service listening on
/// `listen` for `path`; exit 0 on a 2xx answer, else 1 with the reason on
/// stderr.
pub async fn healthcheck(name: &str, listen: std::net::SocketAddr, path: &str) -> ExitCode {
    match crate::health::healthcheck(listen, path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} healthcheck failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Awaits a service's run and turns its outcome into the exit code,
/// logging the error if there is one.
pub async fn exit_code(name: &str, run: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                service = name,
                error = format!("{e:#}"),
                "stopped with an error"
            );
            ExitCode::FAILURE
        }
    }
}
