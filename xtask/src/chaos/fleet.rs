//! The services under test, as real processes: worker slots and vote
//! slots, each of which can be SIGKILLed and started again.
//!
//! Each worker slot is what an orchestrator restarts: a process with an
//! id, an admin port and a log file (appended across restarts, each start
//! marked). A slot comes back either under its old id — it then resumes
//! the batch it left in its processing list at once, as a restarted
//! container with a stable hostname does — or under a new one, as a
//! replaced pod does, leaving that batch for a live worker to take back
//! once the old heartbeat lapses. Both recovery paths get exercised.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use super::voters::Endpoint;
use crate::stack::{free_port_or_any, signal, wait_ready};

/// How long a service may take to become ready at the start of a run.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a service may take to stop after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// How the worker processes run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub redis_url: String,
    pub database_url: String,
    /// More environment for the stores (Sentinel settings).
    pub store_env: Vec<(String, String)>,
    pub batch_size: u32,
    pub heartbeat_seconds: u64,
}

struct Slot {
    id: String,
    admin_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// The worker processes, one per slot.
pub struct Workers {
    binary: PathBuf,
    settings: WorkerSettings,
    slots: Vec<Slot>,
    /// Starts so far, for new ids.
    starts: u64,
}

impl Workers {
    /// Starts `count` workers and waits until each is ready.
    pub async fn start(
        bin_dir: &Path,
        settings: WorkerSettings,
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<Workers> {
        let mut workers = Workers {
            binary: binary(bin_dir, "worker")?,
            settings,
            slots: Vec::with_capacity(count),
            starts: 0,
        };
        for n in 0..count {
            workers.slots.push(Slot {
                id: String::new(),
                admin_port: free_port_or_any(0)?,
                child: None,
                log: log_dir.join(format!("worker-{n}.log")),
            });
            workers.launch(n, true)?;
        }
        for slot in &workers.slots {
            let url = format!("http://127.0.0.1:{}/readyz", slot.admin_port);
            wait_ready(&slot.id, &url, READY_WITHIN).await?;
        }
        Ok(workers)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// SIGKILLs the worker in `slot`; returns the id it ran under.
    pub async fn kill(&mut self, slot: usize) -> anyhow::Result<String> {
        let slot = &mut self.slots[slot];
        if let Some(mut child) = slot.child.take() {
            child.start_kill().context("SIGKILL to a worker")?;
            child.wait().await.context("waiting for a killed worker")?;
        }
        Ok(slot.id.clone())
    }

    /// Starts the worker in `slot` again, under a new id if `fresh_id`.
    pub fn restart(&mut self, slot: usize, fresh_id: bool) -> anyhow::Result<()> {
        self.launch(slot, fresh_id)
    }

    fn launch(&mut self, n: usize, fresh_id: bool) -> anyhow::Result<()> {
        self.starts += 1;
        let slot = &mut self.slots[n];
        if fresh_id {
            slot.id = format!("chaos-w{n}-{}", self.starts);
        }
        let s = &self.settings;
        let mut cmd = command(&self.binary);
        cmd.env("REDIS_URL", &s.redis_url)
            .env("DATABASE_URL", &s.database_url)
            .envs(s.store_env.iter().map(|(k, v)| (k, v)))
            .env("WORKER_ID", &slot.id)
            .env("BATCH_SIZE", s.batch_size.to_string())
            .env("HEARTBEAT_SECONDS", s.heartbeat_seconds.to_string())
            .env("ADMIN_PORT", slot.admin_port.to_string())
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1");
        slot.child = Some(spawn(cmd, &slot.log, &format!("worker {}", slot.id))?);
        Ok(())
    }

    /// Stops every worker with SIGTERM; returns what did not go cleanly.
    pub async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for slot in &mut self.slots {
            if let Some(child) = slot.child.take() {
                problems.extend(stop(child, &format!("worker {}", slot.id)).await);
            }
        }
        problems
    }
}

/// The vote processes, each on a loopback port of its own that it keeps
/// across restarts (the voters hold the addresses).
pub struct Votes {
    binary: PathBuf,
    redis_url: String,
    store_env: Vec<(String, String)>,
    slots: Vec<VoteSlot>,
}

struct VoteSlot {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Votes {
    /// Starts `count` vote processes on free loopback ports and waits until
    /// each is ready.
    pub async fn start(
        bin_dir: &Path,
        redis_url: &str,
        store_env: &[(String, String)],
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<Votes> {
        let mut votes = Votes {
            binary: binary(bin_dir, "vote")?,
            redis_url: redis_url.to_owned(),
            store_env: store_env.to_vec(),
            slots: Vec::with_capacity(count),
        };
        for n in 0..count {
            votes.slots.push(VoteSlot {
                port: free_port_or_any(0)?,
                child: None,
                log: log_dir.join(format!("vote-{n}.log")),
            });
            votes.launch(n)?;
        }
        for n in 0..count {
            votes.wait_ready(n, READY_WITHIN).await?;
        }
        Ok(votes)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Where the voters post.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.slots
            .iter()
            .map(|s| Endpoint::on_port(s.port))
            .collect()
    }

    /// SIGKILLs the vote process in `slot`, requests in flight and all.
    pub async fn kill(&mut self, slot: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.slots[slot].child.take() {
            child.start_kill().context("SIGKILL to a vote process")?;
            child
                .wait()
                .await
                .context("waiting for a killed vote process")?;
        }
        Ok(())
    }

    /// Starts the vote process in `slot` again on its port and waits until
    /// it answers.
    pub async fn restart(&mut self, slot: usize) -> anyhow::Result<()> {
        self.launch(slot)?;
        self.wait_ready(slot, READY_WITHIN).await
    }

    fn launch(&mut self, n: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[n];
        let mut cmd = command(&self.binary);
        cmd.env("REDIS_URL", &self.redis_url)
            .envs(self.store_env.iter().map(|(k, v)| (k, v)))
            .env("PORT", slot.port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("ADMIN_PORT", "0")
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1");
        slot.child = Some(spawn(cmd, &slot.log, &format!("vote {n}"))?);
        Ok(())
    }

    async fn wait_ready(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", self.slots[n].port);
        wait_ready(&format!("vote {n}"), &url, within).await
    }

    /// Stops every vote process with SIGTERM; returns what did not go
    /// cleanly.
    pub async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (n, slot) in self.slots.iter_mut().enumerate() {
            if let Some(child) = slot.child.take() {
                problems.extend(stop(child, &format!("vote {n}")).await);
            }
        }
        problems
    }
}

/// One result process, whose live feed [`super::feed`] watches.
pub struct ResultService {
    port: u16,
    child: Option<Child>,
}

impl ResultService {
    /// Starts result on a free loopback port and waits until it is ready.
    pub async fn start(
        bin_dir: &Path,
        database_url: &str,
        log_dir: &Path,
    ) -> anyhow::Result<ResultService> {
        let port = free_port_or_any(0)?;
        let mut cmd = command(&binary(bin_dir, "result")?);
        cmd.env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("ADMIN_PORT", "0")
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1");
        let child = spawn(cmd, &log_dir.join("result.log"), "result")?;
        let url = format!("http://127.0.0.1:{port}/readyz");
        wait_ready("result", &url, READY_WITHIN).await?;
        Ok(ResultService {
            port,
            child: Some(child),
        })
    }

    /// The live feed's address.
    pub fn feed_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Stops it with SIGTERM; says what did not go cleanly.
    pub async fn stop(mut self) -> Option<String> {
        match self.child.take() {
            Some(child) => stop(child, "result").await,
            None => None,
        }
    }
}

fn binary(bin_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it (`cargo build --release -p vote -p worker -p result`, \
         or `cargo build -p vote -p worker -p result` for debug binaries)",
        path.display()
    );
    Ok(path)
}

/// A command that runs `binary` in a process group of its own (a Ctrl-C
/// meant for xtask does not reach it) and SIGTERMs it when the thread that
/// spawned it ends — a runtime worker, which lives as long as the run — so
/// it never outlives the run, even a SIGKILLed one. `setpriv` execs the
/// binary: the child's pid is the service's, for SIGKILL.
fn command(binary: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig=TERM").arg(binary).process_group(0);
    cmd
}

/// Starts `cmd` with its output appended to `log`, after a line that says
/// which start this is.
fn spawn(mut cmd: Command, log: &Path, what: &str) -> anyhow::Result<Child> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(file, "--- chaos: starting {what}")?;
    let stderr = file.try_clone()?;
    // No load balancer to leave: a SIGTERM stops at once, without the
    // drain delay meant for orchestrators.
    cmd.env("RUST_LOG", "info")
        .env("SHUTDOWN_DELAY_SECONDS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {what}"))
}

/// SIGTERM, then wait; SIGKILL if it takes too long.
async fn stop(mut child: Child, what: &str) -> Option<String> {
    if let Some(pid) = child.id() {
        let _ = signal(pid, "TERM").await;
    }
    match tokio::time::timeout(STOP_WITHIN, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(format!("{what} exited with {status}")),
        Ok(Err(e)) => Some(format!("{what}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Some(format!(
                "{what} did not stop within {STOP_WITHIN:?}; killed"
            ))
        }
    }
}
