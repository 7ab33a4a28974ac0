//! Replicated stores with automatic failover, run natively from Debian's
//! packages: the topologies the services must survive a primary's death in.
//!
//! - [`RedisHa`]: a primary, replicas and three Sentinels (quorum 2), AOF
//!   on, the primary refusing writes it cannot replicate
//!   (`min-replicas-to-write`).
//! - `PostgresHa` (the `postgres` feature): one etcd, two Patroni-managed Postgres nodes in
//!   synchronous mode, and HAProxy giving one endpoint that always reaches
//!   the primary (and one for the standby).
//!
//! Every process is a plain child started like the single servers of
//! `localstores` ([`localstores::process::launch`]: launcher thread, `--pdeathsig`, own process group),
//! listens on 127.0.0.1 only, on free ports, and keeps its log in a file
//! under the topology's own temporary directory (`log_paths()`), which is
//! removed on drop. Nothing is installed system-wide and nothing relies on
//! a service manager: on these machines Debian's packages install but never
//! start.
//!
//! # Timing
//!
//! The defaults make a SIGKILLed primary's replacement take writes within
//! a few seconds on a loaded 2-core machine without failovers nobody asked
//! for. `cargo run -p testkit --features postgres --example failover_times -- --kills 20`, on
//! the shared VM (load average 5–10 from other builds), SIGKILL to:
//!
//! | store, settings | promoted p50 / max | write p50 / max |
//! | --- | --- | --- |
//! | Redis, `down-after-milliseconds` 1500, `failover-timeout` 3000 | 2.69 / 2.78 s | 2.69 / 2.80 s (also `WAIT 1`) |
//! | Postgres, Patroni `ttl` 3, `loop_wait` 1, `retry_timeout` 2; HAProxy `inter 500ms fall 2 rise 1` | 3.29 / 3.80 s | 3.51 / 4.03 s (through HAProxy) |
//!
//! 20 promotions for 20 kills in both. Alternatives measured the same way:
//! Redis with `down-after-milliseconds` 1000 took 2.24 s at the median but
//! promoted 24 and 27 times for 20 kills (see [`RedisHaOptions`]), with 2000
//! 3.23 s; Postgres with `ttl` 4 took 4.46 s (20 kills), with 5, 5.39 s
//! (10 kills) — writes, at the median.
//!
//! Each topology is a folder of files, one job each (options, what each
//! process is told, starting processes, reading the topology's state,
//! faults); this module holds what both share: free ports, and the bounded
//! poll every wait uses.

#[cfg(feature = "postgres")]
mod postgres;
mod redis;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresHa, PostgresHaOptions};
pub use redis::{RedisHa, RedisHaOptions};

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `port` on 127.0.0.1, where every process of a topology listens.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

pub(crate) use localstores::free_ports;

/// Polls `check` every 50 ms until it returns `Ok(Some(_))`, for at most
/// `deadline`. The last error (or "not yet") goes into the timeout error,
/// so a failed wait says what it last saw.
pub(crate) async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = tokio::time::Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if started.elapsed() >= deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
