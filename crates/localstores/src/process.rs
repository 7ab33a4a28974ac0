//! Starting a server process of our own and knowing when it is ready:
//! the launcher thread every server is forked from, readiness read from
//! the server's log, signalling and stopping it, scratch directories and
//! finding binaries.
//!
//! Processes are started through `setpriv --pdeathsig=TERM` from one
//! long-lived launcher thread, so they die with the process that started
//! them even if it is killed. Each runs in a process group of its own, so
//! a Ctrl-C in the terminal reaches only the process that started it,
//! which stops it in its own time (`cargo xtask up` stops the services
//! that use it first). Postgres refuses to run as root: when we are root,
//! `initdb` and `postgres` run as Debian's `postgres` account
//! ([`as_postgres_user`]).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a server may take to report that it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `signal` (`TERM`, `INT`, `STOP`, …) to `pid` with `kill`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// Sends `signal` to a server we started and waits until it has exited.
pub fn stop_child(child: &mut Option<Child>, signal: &str) {
    if let Some(mut child) = child.take() {
        let _ = self::signal(child.id(), signal);
        let _ = child.wait();
    }
}

/// SIGKILLs a server we started, like a crash, and waits until it has
/// exited.
pub fn kill_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts `cmd` from the launcher thread, then waits until a line of its
/// output contains `ready_line` (lowercase; matched case-insensitively);
/// with `None`, returns as soon as it is spawned (the caller probes it).
/// All output is appended to `log`, so a restarted process adds to the
/// same file.
pub async fn launch(
    mut cmd: Command,
    ready_line: Option<&'static str>,
    log: PathBuf,
    ready_timeout: Duration,
) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let program = format!("{cmd:?}");
    let mut child = launcher()
        .spawn(cmd)
        .await
        .with_context(|| format!("starting {program}"))?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let ready_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(ready_tx)));
    let log_file = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?,
    ));
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().context("stdout is piped")?),
        Box::new(child.stderr.take().context("stderr is piped")?),
    ];
    for stream in streams {
        let ready_tx = ready_tx.clone();
        let log_file = log_file.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut f) = log_file.lock() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if ready_line.is_some_and(|ready| line.to_ascii_lowercase().contains(ready))
                    && let Some(tx) = ready_tx.lock().ok().and_then(|mut t| t.take())
                {
                    let _ = tx.send(());
                }
            }
        });
    }
    if ready_line.is_none() {
        return Ok(child);
    }
    drop(ready_tx);
    match tokio::time::timeout(ready_timeout, ready_rx).await {
        Ok(Ok(())) => Ok(child),
        outcome => {
            let _ = child.kill();
            let _ = child.wait();
            let why = if outcome.is_err() {
                "did not become ready in time"
            } else {
                "exited before becoming ready"
            };
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{program} {why}; its log:\n{log_text}")
        }
    }
}

/// The thread that forks every server. `--pdeathsig` fires when the
/// *thread* that forked a child exits, so this one never does.
struct Launcher {
    requests: mpsc::Sender<(
        Command,
        tokio::sync::oneshot::Sender<std::io::Result<Child>>,
    )>,
}

impl Launcher {
    async fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("launcher thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("launcher thread is gone"))?
    }
}

fn launcher() -> &'static Launcher {
    static LAUNCHER: OnceLock<Launcher> = OnceLock::new();
    LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, tokio::sync::oneshot::Sender<_>)>();
        std::thread::Builder::new()
            .name("localstores-launcher".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // All senders gone means the process is exiting; park so
                // children are not signalled early.
                loop {
                    std::thread::park();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| panic!("cannot start the launcher thread: {e}"));
        Launcher { requests: tx }
    })
}

/// A fresh directory under the system temp dir, readable by the `postgres`
/// account. Directories left by earlier processes that have exited are
/// removed first, so killed test runs do not fill the disk.
pub fn scratch_dir(kind: &str) -> anyhow::Result<tempfile::TempDir> {
    sweep_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix(&format!("voting-scratch-{}-{kind}-", std::process::id()))
        .tempdir()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

fn sweep_stale_dirs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| sweep_stale_dirs_in(&std::env::temp_dir()));
}

/// Removes the scratch folders in `dir` whose process is gone.
fn sweep_stale_dirs_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("voting-scratch-") else {
            continue;
        };
        // Only names `scratch_dir` made: `<pid>-<kind>-…`.
        let pid = rest.split('-').next().unwrap_or("");
        let is_pid = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if is_pid && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A command that runs `binary` and dies with this process
/// (`setpriv --pdeathsig=TERM`), for [`launch`].
pub fn server_command(binary: &Path) -> Command {
    setpriv(&[], binary)
}

/// A command that runs `binary` as the `postgres` account when we are
/// root, and dies with this process either way.
pub fn as_postgres_user(binary: &Path) -> Command {
    let account: &[&str] = if is_root() {
        &["--reuid=postgres", "--regid=postgres", "--init-groups"]
    } else {
        &[]
    };
    setpriv(account, binary)
}

fn setpriv(options: &[&str], binary: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(options).arg("--pdeathsig=TERM").arg(binary);
    cmd
}

pub fn chown_to_postgres(path: &Path) -> anyhow::Result<()> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        anyhow::ensure!(
            out.status.success(),
            "no `postgres` account to run Postgres as (it refuses to run as root): \
             apt-get install postgresql"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    std::os::unix::fs::chown(path, Some(id("-u")?), Some(id("-g")?))
        .with_context(|| format!("chown postgres {}", path.display()))
}

/// Finds `name` on `PATH`, or explains which package provides it.
pub fn find_binary(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    find_on_path(name).with_context(|| {
        format!("`{name}` is not installed; the tests need it: apt-get install {package}")
    })
}

/// The first `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Finds a Postgres server binary: on `PATH`, else in the newest
/// `/usr/lib/postgresql/<version>/bin` (where Debian puts them).
pub fn find_postgres_binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = find_binary(name, "postgresql") {
        return Ok(path);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin").join(name);
            bin.is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).with_context(|| {
        format!("Postgres `{name}` is not installed; the tests need it: apt-get install postgresql")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_folders_of_processes_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let own = format!("voting-scratch-{}-redis-a", std::process::id());
        // Far above any pid_max, so no such process.
        let dead = "voting-scratch-4294967295-postgres-b";
        let not_ours = "voting-scratch-chromium-c";
        for name in [own.as_str(), dead, not_ours] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
        }
        sweep_stale_dirs_in(tmp.path());
        assert!(tmp.path().join(&own).exists());
        assert!(!tmp.path().join(dead).exists());
        assert!(tmp.path().join(not_ours).exists());
    }
}
