//! Throwaway `redis-server` and `postgres` processes.
//!
//! Each server lives in its own temporary directory and listens on a Unix
//! socket there (and on a loopback TCP port only when asked), so servers of
//! parallel test processes never collide on ports. A server is ready when it
//! logs so — the harness reads its log instead of polling.
//!
//! Processes are started through `setpriv --pdeathsig=TERM` from one
//! long-lived launcher thread, so they die with the process that started
//! them even if it is killed; dropping a handle stops its server at once.
//! Each runs in a process group of its own, so a Ctrl-C in the terminal
//! reaches only the process that started it, which stops it in its own
//! time (`cargo xtask up` stops the services that use it first).
//! Postgres refuses to run as root: when we are root, `initdb` and
//! `postgres` run as Debian's `postgres` account.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a server may take to report that it is ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for [`RedisServer::start`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Also listen on `127.0.0.1:<port>`.
    pub tcp_port: Option<u16>,
    /// Keep an append-only file (fsync every write) so data survives a restart.
    pub appendonly: bool,
    /// With `appendonly`: fsync once a second instead, as the compose file
    /// runs Redis (a crash may lose the last second; a clean stop loses
    /// nothing).
    pub fsync_everysec: bool,
}

/// A `redis-server` of our own.
pub struct RedisServer {
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(options: RedisOptions) -> anyhow::Result<Self> {
        let dir = scratch_dir("redis")?;
        let mut server = RedisServer {
            dir,
            options,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// The socket path; URLs are built from it.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// A URL for logical database `db` of this server.
    pub fn url(&self, db: u32) -> String {
        match self.options.tcp_port {
            Some(port) => format!("redis://127.0.0.1:{port}/{db}"),
            None => format!("redis+unix://{}?db={db}", self.socket().display()),
        }
    }

    /// Starts the server after [`stop`](Self::stop) or [`kill`](Self::kill),
    /// on the same socket and data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=TERM").arg(binary);
        cmd.args(["--port", &self.options.tcp_port.unwrap_or(0).to_string()]);
        cmd.args(["--bind", "127.0.0.1"]);
        cmd.arg("--unixsocket").arg(self.socket());
        cmd.args(["--unixsocketperm", "700"]);
        cmd.arg("--dir").arg(self.dir.path());
        cmd.args(["--databases", "10000", "--save", ""]);
        if self.options.appendonly {
            let fsync = if self.options.fsync_everysec {
                "everysec"
            } else {
                "always"
            };
            cmd.args(["--appendonly", "yes", "--appendfsync", fsync]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(["--logfile", "", "--daemonize", "no", "--loglevel", "notice"]);
        let log = self.dir.path().join("redis.log");
        self.child =
            Some(launch(cmd, Some("ready to accept connections"), log, READY_TIMEOUT).await?);
        Ok(())
    }

    /// Shuts the server down gracefully (SIGTERM), as `docker stop` would.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, "TERM");
    }

    /// Kills the server outright (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings for [`PostgresServer::start`].
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Also listen on `127.0.0.1:<port>`.
    pub tcp_port: Option<u16>,
    /// Flush to disk. Off for tests: faster, and a crash loses only
    /// throwaway data.
    pub fsync: bool,
}

/// A Postgres cluster of our own, superuser `postgres` with trust auth.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    options: PostgresOptions,
    child: Option<Child>,
}

impl PostgresServer {
    pub async fn start(options: PostgresOptions) -> anyhow::Result<Self> {
        let dir = scratch_dir("postgres")?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        if is_root() {
            chown_to_postgres(dir.path())?;
            chown_to_postgres(&data)?;
        }
        let initdb = find_postgres_binary("initdb")?;
        let mut cmd = as_postgres_user(&initdb);
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C.UTF-8"]);
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut server = PostgresServer {
            dir,
            options,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL for database `name` as superuser `postgres`.
    pub fn url(&self, name: &str) -> String {
        match self.options.tcp_port {
            Some(port) => format!("postgres://postgres@127.0.0.1:{port}/{name}"),
            None => format!(
                "postgres://postgres@localhost/{name}?host={}",
                self.socket_dir().display()
            ),
        }
    }

    /// Starts the server after [`stop`](Self::stop) or [`kill`](Self::kill),
    /// on the same data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let postgres = find_postgres_binary("postgres")?;
        let mut cmd = as_postgres_user(&postgres);
        cmd.arg("-D").arg(self.dir.path().join("data"));
        cmd.arg("-k").arg(self.dir.path());
        match self.options.tcp_port {
            Some(port) => cmd.args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]),
            None => cmd.args(["-c", "listen_addresses="]),
        };
        if !self.options.fsync {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            cmd.args(["-c", "full_page_writes=off"]);
        }
        cmd.args(["-c", "max_connections=300", "-c", "shared_buffers=128MB"]);
        let log = self.dir.path().join("postgres.log");
        self.child = Some(
            launch(
                cmd,
                Some("database system is ready to accept connections"),
                log,
                READY_TIMEOUT,
            )
            .await?,
        );
        Ok(())
    }

    /// Fast shutdown (SIGINT): rolls back open transactions, closes
    /// connections, exits — what `docker stop` does to Postgres.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, "INT");
    }

    /// Kills the postmaster outright (SIGKILL), like a crash. Its backends
    /// notice and exit; the next start runs crash recovery.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Fast shutdown, not SIGKILL: a killed postmaster leaves backends
        // behind for a moment, holding the socket directory we delete.
        self.stop();
    }
}

fn stop_child(child: &mut Option<Child>, signal: &str) {
    if let Some(mut child) = child.take() {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

/// Starts `cmd` from the launcher thread, then waits until a line of its
/// output contains `ready_line` (lowercase; matched case-insensitively);
/// with `None`, returns as soon as it is spawned (the caller probes it).
/// All output is appended to `log`, so a restarted process adds to the
/// same file.
pub(crate) async fn launch(
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
            .name("testkit-launcher".into())
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
            .unwrap_or_else(|e| panic!("cannot start the testkit launcher thread: {e}"));
        Launcher { requests: tx }
    })
}

/// A fresh directory under the system temp dir, readable by the `postgres`
/// account. Directories left by earlier processes that have exited are
/// removed first, so killed test runs do not fill the disk.
pub(crate) fn scratch_dir(kind: &str) -> anyhow::Result<tempfile::TempDir> {
    sweep_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix(&format!("voting-testkit-{}-{kind}-", std::process::id()))
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
        let Some(rest) = name.strip_prefix("voting-testkit-") else {
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

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A command that runs `binary` as the `postgres` account when we are
/// root, and dies with this process either way.
pub(crate) fn as_postgres_user(binary: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.arg("--pdeathsig=TERM").arg(binary);
    cmd
}

pub(crate) fn chown_to_postgres(path: &Path) -> anyhow::Result<()> {
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
pub(crate) fn find_binary(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    find_on_path(name).with_context(|| {
        format!("`{name}` is not installed; the tests need it: apt-get install {package}")
    })
}

/// The first `name` on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Finds a Postgres server binary: on `PATH`, else in the newest
/// `/usr/lib/postgresql/<version>/bin` (where Debian puts them).
pub(crate) fn find_postgres_binary(name: &str) -> anyhow::Result<PathBuf> {
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
        let own = format!("voting-testkit-{}-redis-a", std::process::id());
        // Far above any pid_max, so no such process.
        let dead = "voting-testkit-4294967295-postgres-b";
        let not_ours = "voting-testkit-chromium-c";
        for name in [own.as_str(), dead, not_ours] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
        }
        sweep_stale_dirs_in(tmp.path());
        assert!(tmp.path().join(&own).exists());
        assert!(!tmp.path().join(dead).exists());
        assert!(tmp.path().join(not_ours).exists());
    }
}
