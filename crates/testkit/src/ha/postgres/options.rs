//! What a test may tune about the replicated Postgres, with defaults
//! chosen from measured failovers and the limits Patroni puts on them:
//! kept apart so the reasons for each number sit beside it.

use std::time::Duration;

/// Settings for [`PostgresHa::start`](super::PostgresHa::start); the
/// Patroni ones go into `bootstrap.dcs`, i.e. they are the cluster's, not
/// a node's.
///
/// A dead leader cannot release its lock, so the standby waits for it to
/// expire: the failover takes about `ttl` minus the time since the leader
/// last renewed the lock (up to `loop_wait`), plus etcd noticing the
/// expiry, the promotion, and up to one HAProxy `check_interval`. Measured
/// (figures in [`crate::ha`]): a write through HAProxy succeeds again after
/// 3.15 s and 3.51 s at the median in two runs of 20 kills with `ttl` 3,
/// 4.46 s with 4, 5.39 s with 5 (10 kills); no run promoted more often
/// than it killed.
///
/// Limits and the trade-off:
/// - Patroni's etcd v3 client gives up taking the lock when less than a
///   second of `retry_timeout` is left after renewing its lease, so
///   `retry_timeout` below 2 means the standby never takes over (refused
///   here).
/// - Patroni's rule `loop_wait + 2 × retry_timeout ≤ ttl` (here 5) keeps a
///   leader whose etcd is slow from still acting as leader when its lock
///   expires. `ttl` 3 breaks it: a leader stalled for about 2 s loses the
///   lock and the standby takes over while the old primary may still take
///   connections. No acknowledged commit can be lost that way — commits
///   wait for the synchronous standby, which stops following the old
///   primary when promoted, and HAProxy cuts the old primary's sessions
///   once its Patroni stops answering `/primary` — but such a stall costs
///   an unneeded failover. The default is 3 because the issue asks for
///   the result feed to move again within 5 s at the median, and `ttl` 4
///   leaves the services about half a second of it.
/// - Debian bookworm's Patroni 3.0.2 accepts any `ttl`. Patroni ≥ 3.2
///   raises `ttl` below 20 to 20 and `retry_timeout` below 3 to 3 (with a
///   warning), so an image with a newer Patroni fails over in ~20 s
///   whatever it is told; production should use those values anyway.
#[derive(Debug, Clone)]
pub struct PostgresHaOptions {
    /// Seconds the leader lock lives without renewal.
    pub ttl: u32,
    /// Seconds between Patroni's health-check rounds.
    pub loop_wait: u32,
    /// Seconds Patroni retries etcd and Postgres before giving up.
    pub retry_timeout: u32,
    /// How often HAProxy asks each node's Patroni for its role.
    pub check_interval: Duration,
    /// Flush to disk. Off for tests: a SIGKILLed process loses nothing the
    /// kernel already has, and the machine does not crash in a test.
    pub fsync: bool,
}

impl Default for PostgresHaOptions {
    fn default() -> Self {
        PostgresHaOptions {
            ttl: 3,
            loop_wait: 1,
            retry_timeout: 2,
            check_interval: Duration::from_millis(500),
            fsync: false,
        }
    }
}
