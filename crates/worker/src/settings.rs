//! The worker's settings: where its stores are, its id, and how it
//! batches, blocks, beats and reports. Flags and environment variables,
//! with defaults that fit the compose file.

use std::time::Duration;

use servicekit::settings::{AdminArgs, DatabaseArgs, RedisArgs};

use crate::dead_letter;

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8080;

/// The worker's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// This worker's id; names its processing list and heartbeat. Must be
    /// unique among running workers. A worker restarted with the same id
    /// resumes its unfinished batch at once. [default: <hostname>-<pid>]
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// Most ballots taken and stored per batch (one Redis round trip and one
    /// Postgres statement each). Batches are smaller when fewer are queued.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,
    /// How long one blocking wait on an empty queue lasts, in seconds.
    /// Shutdown is noticed between waits.
    #[arg(long, env = "BLOCK_SECONDS", default_value_t = 1.0, value_parser = parse_block_seconds)]
    pub block_seconds: f64,
    /// Heartbeat lifetime, in seconds: how soon after this worker dies a
    /// live worker puts its unfinished batch back on the queue.
    #[arg(long, env = "HEARTBEAT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_seconds: u64,
    /// Seconds between two summary lines at INFO (ballots, batches, dead
    /// letters, queue depth, commit time p50/p99). No line for an interval
    /// without batches; each batch is logged at DEBUG.
    #[arg(long, env = "SUMMARY_SECONDS", default_value_t = 30.0, value_parser = parse_summary_seconds)]
    pub summary_seconds: f64,
    /// Most dead letters kept in `votes:dead`; the oldest beyond it are
    /// dropped and counted in `dead_letters_dropped_total`. A letter takes
    /// at most 5 KiB: the default keeps at most about 49 MiB in Redis.
    #[arg(long, env = "MAX_DEAD_LETTERS", default_value_t = dead_letter::DEFAULT_KEPT,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_dead_letters: u32,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
}

impl Settings {
    /// The configured worker id, or `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        self.worker_id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("{}-{}", servicekit::host::name(), std::process::id()))
    }

    pub(crate) fn block(&self) -> Duration {
        Duration::from_secs_f64(self.block_seconds)
    }

    pub(crate) fn heartbeat_ttl(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds)
    }

    pub(crate) fn summary_interval(&self) -> Duration {
        Duration::from_secs_f64(self.summary_seconds)
    }
}

fn parse_block_seconds(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.01..=60.0).contains(&secs) {
        Ok(secs)
    } else {
        Err("must be between 0.01 and 60 (0 would block forever)".to_owned())
    }
}

fn parse_summary_seconds(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.1..=86_400.0).contains(&secs) {
        Ok(secs)
    } else {
        Err("must be between 0.1 and 86400".to_owned())
    }
}
