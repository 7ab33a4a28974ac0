//! What a test may tune about the replicated Redis, with defaults chosen
//! from measured failovers: kept apart so the reasons for each number sit
//! beside it.

use std::time::Duration;

/// Settings for [`RedisHa::start`](super::RedisHa::start).
///
/// A failover takes about `down_after` plus a second (the Sentinels agree
/// the primary is down, elect one of them, which promotes the replica with
/// the most data and repoints the other). `down_after` is 1500 ms, not
/// less: right after each failover every Sentinel drops its link to the
/// new primary and counts its silence from then (`sentinelResetMaster`),
/// and on the loaded test machine a Sentinel regularly took longer than a
/// second to hear its first PONG — with 1000 ms, 20 kills gave 24 and 27
/// promotions, i.e. failovers away from a healthy new primary; with 1500
/// ms and 2000 ms, exactly 20. Figures: [`crate::ha`].
#[derive(Debug, Clone)]
pub struct RedisHaOptions {
    /// The name Sentinel monitors the primary under
    /// (`REDIS_SENTINEL_MASTER`).
    pub master_name: String,
    /// Replicas besides the primary.
    pub replicas: usize,
    /// Sentinels (an odd number ≥ 3 survives the loss of one).
    pub sentinels: usize,
    /// Sentinels that must agree the primary is down before a failover.
    pub quorum: usize,
    /// Sentinel's `down-after-milliseconds`: how long the primary may
    /// fail to answer before a Sentinel considers it down.
    pub down_after: Duration,
    /// Sentinel's `failover-timeout` (also the back-off before a failed
    /// failover is retried, twice this).
    pub failover_timeout: Duration,
    /// `min-replicas-to-write` on every node (0 = accept writes alone).
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag`, in whole seconds: a replica whose last
    /// acknowledgement is older does not count.
    pub min_replicas_max_lag_secs: u32,
}

impl Default for RedisHaOptions {
    fn default() -> Self {
        RedisHaOptions {
            master_name: "voting".into(),
            replicas: 2,
            sentinels: 3,
            quorum: 2,
            down_after: Duration::from_millis(1500),
            failover_timeout: Duration::from_millis(3000),
            min_replicas_to_write: 1,
            min_replicas_max_lag_secs: 2,
        }
    }
}
