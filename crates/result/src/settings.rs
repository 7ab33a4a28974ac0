//! The result service's settings: its listener, where Postgres is, the
//! two options' names, which other sites' pages may open the live feed, and
//! how many live pages it keeps and how it times them. Flags and
//! environment variables, with defaults that fit the compose file.

use contract::BallotChoices;
use servicekit::settings::{AdminArgs, DatabaseArgs, HttpArgs, OriginArgs};

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8082;

/// The result service's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub choices: BallotChoices,
    #[command(flatten)]
    pub origins: OriginArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
    /// Most live pages (WebSocket clients) at once; more are refused with
    /// 503. Each costs about 3.5 KiB: the default, with `MAX_CONNECTIONS`
    /// at its default, fits a 128 MiB memory limit.
    #[arg(long, env = "MAX_CLIENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Most live pages from one remote address; more are refused with 503.
    /// 0 (the default) is no limit: behind a proxy every client has the
    /// proxy's address.
    #[arg(long, env = "MAX_CLIENTS_PER_ADDRESS", default_value_t = 0)]
    pub max_clients_per_address: u32,
    /// Longest time between two reads of the tally, in milliseconds.
    /// Changes normally arrive sooner, by notification from Postgres.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub poll_interval_ms: u64,
    /// Time between pings to each live page, in milliseconds; a page that
    /// stays silent for two intervals is disconnected.
    #[arg(long, env = "PING_INTERVAL_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub ping_interval_ms: u64,
}
