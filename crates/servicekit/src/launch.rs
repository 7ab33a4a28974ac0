//! One way to start a service: every binary of the voting app (vote,
//! result, worker, hits) is a [`Service`] started by [`main`], and its
//! `main.rs` is the one line of [`crate::main!`].
//!
//! What [`main`] does, in order:
//!
//! 1. parses the settings (flags and environment variables; `--help`
//!    lists them all) and the `healthcheck` subcommand, which asks the
//!    service's admin listener and exits ([`crate::healthcheck`]);
//! 2. sets up logging and the metrics recorder ([`crate::telemetry`]),
//!    describes its metrics and the kit's ([`Service::METRICS`]), raises
//!    the open-files limit ([`crate::limits`]) and logs the settings,
//!    passwords hidden ([`Service::log_settings`]);
//! 3. builds the service from its settings, contacting no store yet
//!    ([`Service::build`]);
//! 4. binds the admin listener (health, readiness, metrics: see
//!    [`crate::admin`]) and, for a web service, the public one;
//! 5. runs the service until SIGTERM or Ctrl-C ([`crate::shutdown`]):
//!    on SIGTERM, a web service first drains for its drain delay
//!    ([`Service::shutdown_delay`]: `/servingz` answers 503 while it still
//!    serves), then stops; the admin endpoints answer until it has
//!    finished;
//! 6. exits 0, or 1 with the error logged.
//!
//! Tests start a service in-process the same way, minus the process-wide
//! steps: [`serve`] with listeners they bound themselves.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::Probe;
use crate::healthcheck::Healthcheck;
use crate::metric::Metric;
use crate::shutdown::Stop;

/// A long-running service of the voting app, as [`main`] starts it.
pub trait Service: Sized + Send + 'static {
    /// The binary's name: in `--help`, in the log and in the healthcheck's
    /// messages.
    const NAME: &'static str;
    /// What it is, in one line, for `--help`.
    const ABOUT: &'static str;
    /// Said after the flags in `--help`, if anything.
    const AFTER_HELP: &'static str = "";
    /// The metrics it exports besides the kit's own ([`crate::metric`]):
    /// described at start, so `/metrics` explains every series.
    const METRICS: &'static [Metric];

    /// Its settings, as flags and environment variables.
    type Settings: clap::Args + Send + 'static;

    /// Where its listeners listen.
    fn listeners(settings: &Self::Settings) -> Listeners;

    /// Logs the settings once at start, passwords hidden: one INFO line,
    /// `starting <name>`, with a field per setting. Where the listeners
    /// listen is logged by the scaffold, as each is bound.
    fn log_settings(settings: &Self::Settings);

    /// The service, built from its settings without contacting any store:
    /// connections are made on first use.
    fn build(settings: Self::Settings) -> anyhow::Result<Self>;

    /// What its `/readyz` checks.
    fn probe(&self) -> Probe;

    /// How long it keeps serving after SIGTERM, readiness answering 503,
    /// before it stops ([`crate::shutdown`]). None unless it says so: only
    /// a service that traffic is routed to needs one.
    fn shutdown_delay(_settings: &Self::Settings) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Runs until `shutdown` fires, then finishes what is in flight.
    /// `public` is the bound public listener, given exactly when
    /// [`Service::listeners`] names one ([`public_listener`] takes it).
    fn serve(
        self,
        public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Where a service's listeners listen: always an admin listener (health,
/// readiness, metrics), and a public one for a web service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The public listener's address; `None` for a service without one
    /// (the worker).
    pub public: Option<SocketAddr>,
}

impl Listeners {
    /// A web service: its pages on `public`, its admin endpoints on `admin`.
    pub fn web(public: SocketAddr, admin: SocketAddr) -> Self {
        Listeners {
            admin,
            public: Some(public),
        }
    }

    /// A service without a public side: only the admin listener.
    pub fn admin_only(admin: SocketAddr) -> Self {
        Listeners {
            admin,
            public: None,
        }
    }
}

/// The public listener a web service's [`Service::serve`] is given; an
/// error if it was started without one (a service that names a public
/// address in [`Service::listeners`] always gets it).
pub fn public_listener<S: Service>(public: Option<TcpListener>) -> anyhow::Result<TcpListener> {
    public.with_context(|| format!("{} serves on a public listener, and got none", S::NAME))
}

/// A service binary's whole `main`, with the services' allocator:
/// `servicekit::main!(vote::AppState);`.
///
/// jemalloc, with a background thread that hands memory freed after a
/// load back to the system within seconds (settings in
/// `.cargo/config.toml`), is the allocator of every service binary.
#[macro_export]
macro_rules! main {
    ($service:ty) => {
        #[global_allocator]
        static ALLOCATOR: $crate::launch::Jemalloc = $crate::launch::Jemalloc;

        fn main() -> ::std::process::ExitCode {
            $crate::launch::main::<$service>()
        }
    };
}

pub use tikv_jemallocator::Jemalloc;

/// What a service binary understands besides its settings.
#[derive(clap::Subcommand, Debug, Clone, Copy)]
enum Command {
    /// Exit 0 if this service is ready (the stores it needs answer), 1 if
    /// not, asking its admin listener. For container health checks: no
    /// curl needed.
    Healthcheck(Healthcheck),
}

#[derive(clap::Parser, Debug)]
struct Cli<S: clap::Args> {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: S,
}

/// The command line of service `S`'s binary: its settings and the
/// `healthcheck` subcommand, as `--help` shows them (the docs test checks
/// the documents against it).
pub fn command<S: Service>() -> clap::Command {
    Cli::<S::Settings>::command()
        .name(S::NAME)
        .bin_name(S::NAME)
        .about(S::ABOUT)
        .after_help(S::AFTER_HELP)
        .version(env!("CARGO_PKG_VERSION"))
}

/// Parses the command line of service `S`; exits with clap's message on
/// bad input or `--help`.
fn parse<S: Service>() -> Cli<S::Settings> {
    let matches = command::<S>().get_matches();
    Cli::<S::Settings>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Starts service `S` as its binary: see the module docs.
pub fn main<S: Service>() -> ExitCode {
    let cli = parse::<S>();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if let Some(Command::Healthcheck(check)) = cli.command {
            return check.run(S::NAME, S::listeners(&cli.settings).admin).await;
        }
        crate::telemetry::init();
        S::log_settings(&cli.settings);
        // Every connection, live page included, is an open file.
        let open_files = crate::limits::raise_open_files_limit();
        tracing::info!(open_files, "open-files limit");
        let shutdown = crate::shutdown::on_signals_after(S::shutdown_delay(&cli.settings));
        match run::<S>(cli.settings, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(
                    service = S::NAME,
                    error = format!("{e:#}"),
                    "stopped with an error"
                );
                ExitCode::FAILURE
            }
        }
    })
}

/// Builds service `S` from `settings`, binds its listeners and serves
/// until `shutdown` stops it (a plain token: no drain delay).
pub async fn run<S: Service>(
    settings: S::Settings,
    shutdown: impl Into<Stop>,
) -> anyhow::Result<()> {
    let listeners = S::listeners(&settings);
    let service = S::build(settings)?;
    let admin = bind(listeners.admin).await?;
    tracing::info!(
        addr = %admin.local_addr().unwrap_or(listeners.admin),
        "{} admin listener (/healthz, /servingz, /readyz, /metrics)",
        S::NAME
    );
    let public = match listeners.public {
        Some(addr) => {
            let listener = bind(addr).await?;
            let addr = listener.local_addr().unwrap_or(addr);
            tracing::info!(%addr, "{} listening", S::NAME);
            Some(listener)
        }
        None => None,
    };
    serve(service, public, admin, shutdown).await?;
    tracing::info!("{} stopped", S::NAME);
    Ok(())
}

/// Serves `service` on listeners bound by the caller — its public one, if
/// it has one, and `admin` — until `shutdown` stops it: `/servingz` answers
/// 503 from [`Stop::draining`] on, the service stops at [`Stop::now`] (a
/// plain token is both). The admin endpoints answer until the service has
/// finished (a stopping worker drains its batch, a web service its
/// connections).
pub async fn serve<S: Service>(
    service: S,
    public: Option<TcpListener>,
    admin: TcpListener,
    shutdown: impl Into<Stop>,
) -> anyhow::Result<()> {
    describe_metrics::<S>();
    let stop = shutdown.into();
    let probe = service.probe().draining(stop.draining);
    crate::admin::alongside(admin, probe, service.serve(public, stop.now)).await
}

/// Gives the recorder the help text of every metric `S` and the kit
/// export, so `/metrics` explains each series.
fn describe_metrics<S: Service>() {
    // The recorder first: a description given to no recorder is lost.
    crate::metric::metrics_handle();
    for metric in crate::metric::kit().iter().chain(S::METRICS) {
        metric.describe();
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
