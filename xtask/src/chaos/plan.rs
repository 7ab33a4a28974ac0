//! The size and shape of a chaos run: every knob of `cargo xtask chaos`,
//! with the CI run's values as defaults.

use std::path::PathBuf;

use super::faults::RedisFsync;

/// The size and shape of a run. Every field is a flag of `cargo xtask
/// chaos`; the defaults are the CI run's.
#[derive(clap::Args, Debug, Clone)]
pub struct Plan {
    /// Ballots to cast in all: one per voter, the rest changes of mind.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ballots: u64,
    /// Voters casting them (at most `--ballots`).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub voters: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// vote processes; each request goes to one of them at random.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub vote_replicas: u32,
    /// Requests in flight at once (each for a different voter).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub concurrency: u32,
    /// Worker SIGKILLs, spread over the run.
    #[arg(long, default_value_t = 20)]
    pub worker_kills: u32,
    /// vote SIGKILLs, spread over the run: requests in flight get no
    /// answer, though their ballot may have been queued.
    #[arg(long, default_value_t = 5)]
    pub vote_kills: u32,
    /// Redis crash-restarts, spread over the run.
    #[arg(long, default_value_t = 3)]
    pub redis_crashes: u32,
    /// Postgres crash-restarts, spread over the run.
    #[arg(long, default_value_t = 3)]
    pub postgres_crashes: u32,
    /// Longest a killed worker or crashed store stays down before it is
    /// started again, in ms (each fault draws a downtime up to this).
    #[arg(long, default_value_t = 500)]
    pub max_downtime_ms: u64,
    /// Share of worker restarts under a new id: their batch is then taken
    /// back by a live worker once the old heartbeat lapses. The others
    /// restart under their old id and resume their batch themselves.
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    pub fresh_id_share: f64,
    /// How Redis persists the queue. Only `always` promises that a crash
    /// loses no acknowledged ballot.
    #[arg(long, value_enum, default_value_t = RedisFsync::Always)]
    pub redis_fsync: RedisFsync,
    /// The workers' BATCH_SIZE.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,
    /// The workers' HEARTBEAT_SECONDS: how soon a batch left under an
    /// abandoned id is taken back.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_seconds: u64,
    /// Longest one POST may take, in ms; a slower one is an unknown outcome.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// A voter whose ballot is still unacknowledged after this many seconds
    /// of retrying gives up and casts nothing more.
    #[arg(long, default_value_t = 120)]
    pub give_up_after_s: u64,
    /// Longest wait for the queue to drain after the last ballot, in seconds.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_s: u64,
    /// Seed for every random choice: voters' ids and plans, fault points,
    /// targets and downtimes (random if not given). Timing still differs
    /// between runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the services' logs in this folder (default: a temporary one,
    /// removed after a run that passes).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Print a progress line every this many seconds (0: never).
    #[arg(long, default_value_t = 10)]
    pub progress_every_s: u64,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let share: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}
