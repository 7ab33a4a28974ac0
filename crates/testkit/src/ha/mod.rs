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
#[cfg(feature = "postgres")]
mod haproxy;
#[cfg(feature = "postgres")]
mod postgres;
mod redis;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresHa, PostgresHaOptions};
pub use redis::{RedisHa, RedisHaOptions};

#[cfg(feature = "postgres")]
use std::path::Path;
#[cfg(feature = "postgres")]
use std::process::Command;
use std::time::Duration;

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

#[cfg(feature = "postgres")]
/// Sends `signal` (e.g. `KILL`, `INT`) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(feature = "postgres")]
/// Whether `pid` is a live process (a zombie counts as gone).
pub(crate) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(feature = "postgres")]
/// Whether `pid` runs a command line mentioning `path`: guards against
/// signalling a recycled pid read from a stale pid file.
pub(crate) fn runs_with(pid: u32, path: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = path.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

#[cfg(feature = "postgres")]
/// Blocks until `pid` has exited, for at most `deadline`; then kills it.
/// For processes that are not our children (Postgres daemonises away from
/// Patroni), which we cannot `wait` for.
pub(crate) fn wait_gone_or_kill(pid: u32, deadline: Duration) {
    let started = std::time::Instant::now();
    while is_running(pid) {
        if started.elapsed() >= deadline {
            signal(pid, "KILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn this_process_is_running_and_a_pid_past_pid_max_is_not() {
        assert!(is_running(std::process::id()));
        assert!(!is_running(u32::MAX));
        let exe = std::env::current_exe().unwrap();
        assert!(runs_with(std::process::id(), &exe));
        assert!(!runs_with(std::process::id(), Path::new("/no/such/dir")));
    }
}
