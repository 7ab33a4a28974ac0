//! One Patroni node: its folder and ports, the Patroni process we start,
//! and the postmaster Patroni starts in turn.
//!
//! A Patroni node is two processes: Patroni, and the postmaster it starts,
//! which daemonises away from it (killing Patroni alone leaves Postgres
//! running and still primary until the leader lock expires). A node's
//! death here therefore kills both. The postmaster is not our child, so it
//! is found through its pid file, checked against `/proc` before it is
//! signalled, and waited for by polling.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use localstores::process::{kill_child, signal};

/// One Patroni node.
pub(super) struct Node {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) pg_port: u16,
    pub(super) rest_port: u16,
    /// Patroni itself; the postmaster is found through its pid file.
    pub(super) patroni: Option<Child>,
}

impl Node {
    pub(super) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Patroni's log, which its Postgres shares.
    pub(super) fn log(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }

    /// The running postmaster's pid, from its pid file, if that pid is
    /// still a postgres of this data directory.
    fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        (is_running(pid) && runs_with(pid, &self.data_dir())).then_some(pid)
    }

    /// SIGKILLs Patroni, then sends `postmaster_signal` to Postgres.
    /// Returns the postmaster's pid, for waiting on it.
    pub(super) fn stop(&mut self, postmaster_signal: &str) -> Option<u32> {
        let postmaster = self.postmaster();
        kill_child(&mut self.patroni);
        // Read again: Patroni may have been starting Postgres.
        let postmaster = postmaster.or_else(|| self.postmaster());
        if let Some(pid) = postmaster {
            let _ = signal(pid, postmaster_signal);
        }
        postmaster
    }
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub(super) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` runs a command line mentioning `path`: guards against
/// signalling a recycled pid read from a stale pid file.
fn runs_with(pid: u32, path: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = path.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

/// Blocks until `pid` has exited, for at most `deadline`; then kills it.
/// For processes that are not our children (Postgres daemonises away from
/// Patroni), which we cannot `wait` for.
pub(super) fn wait_gone_or_kill(pid: u32, deadline: Duration) {
    let started = std::time::Instant::now();
    while is_running(pid) {
        if started.elapsed() >= deadline {
            let _ = signal(pid, "KILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_pid_past_pid_max_is_not() {
        assert!(is_running(std::process::id()));
        assert!(!is_running(u32::MAX));
        let exe = std::env::current_exe().unwrap();
        assert!(runs_with(std::process::id(), &exe));
        assert!(!runs_with(std::process::id(), Path::new("/no/such/dir")));
    }
}
