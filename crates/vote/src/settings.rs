//! The vote service's settings: its listener, where Redis is, the two
//! options' names, which other sites' pages may post, and how replicas
//! confirm ballots. Flags and environment variables, with defaults that
//! fit the compose file.

use std::time::Duration;

use contract::BallotChoices;
use servicekit::settings::{AdminArgs, HttpArgs, OriginArgs, RedisArgs};

use crate::confirm::Replication;

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8081;

/// The vote service's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub choices: BallotChoices,
    #[command(flatten)]
    pub origins: OriginArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
    /// Answer a vote only after this many Redis replicas confirm they hold
    /// its ballot (`WAIT`, for at most `REDIS_REPLICA_ACK_TIMEOUT_MS`); if
    /// fewer do, the visitor is told the vote is unconfirmed. 0: answer as
    /// soon as the primary has it. Set it with Sentinel, so that an
    /// acknowledged ballot survives the primary's loss.
    #[arg(long, env = "REDIS_MIN_REPLICAS_ACK", default_value_t = 0)]
    pub redis_min_replicas_ack: u32,
    /// With `REDIS_MIN_REPLICAS_ACK`, the longest a vote waits for the
    /// replicas' confirmation, in milliseconds, counted from its arrival;
    /// then it is answered with a 503 that says so.
    #[arg(long, env = "REDIS_REPLICA_ACK_TIMEOUT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_replica_ack_timeout_ms: u64,
}

impl Settings {
    /// How ballots must be confirmed, if replicas must confirm them.
    pub fn replication(&self) -> Option<Replication> {
        (self.redis_min_replicas_ack > 0).then(|| Replication {
            replicas: self.redis_min_replicas_ack,
            timeout: Duration::from_millis(self.redis_replica_ack_timeout_ms),
        })
    }
}
