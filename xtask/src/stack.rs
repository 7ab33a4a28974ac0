//! The whole voting app as local processes: Redis and Postgres (throwaway
//! ones from `localstores`, unless URLs are given), then
//! the worker, vote and result binaries.
//!
//! Used by `xtask up` (interactive, logs streamed with a prefix per
//! service) and by `xtask bench` (logs to files).
//!
//! Everything listens on 127.0.0.1 unless `BIND_ADDRESS` in
//! [`StackOptions::env`] says otherwise (then vote, result and every admin
//! listener bind that; the throwaway stores, which have no password, stay
//! on loopback). Each service's admin listener (health, readiness,
//! metrics) gets a free port.
//!
//! Stopping goes in dependency order — vote and result, then the worker
//! (it finishes its batch and deregisters), then Redis and Postgres — and
//! nothing else may stop them first. A Ctrl-C in a terminal signals the
//! whole foreground process group at once, so every child runs in a
//! process group of its own and only xtask hears it; each child still gets
//! SIGTERM if xtask dies (`setpriv --pdeathsig`), so nothing outlives it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use localstores::{PostgresOptions, PostgresServer, RedisOptions, RedisServer};
use tokio::process::{Child, Command};

mod process;
mod prometheus;

use process::{forward_output, stop_service};
pub use process::{signal, wait_ready};

/// Where each service's output goes.
#[derive(Debug, Clone)]
pub enum Logs {
    /// Streamed to our stdout, each line prefixed with the service name.
    Prefixed,
    /// Appended to `<dir>/<service>.log`.
    Files(PathBuf),
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Directory holding the `vote`, `worker` and `result` binaries.
    pub bin_dir: PathBuf,
    pub vote_port: u16,
    pub result_port: u16,
    /// Use this Redis instead of starting one.
    pub redis_url: Option<String>,
    /// Use this Postgres instead of starting one.
    pub database_url: Option<String>,
    /// Ports for the throwaway servers (taken if free, else any free port).
    pub redis_port: u16,
    pub postgres_port: u16,
    pub logs: Logs,
    /// `RUST_LOG` for the services.
    pub log_level: String,
    /// Extra environment for every service (e.g. `OPTION_A`); set last, so
    /// it overrides the stack's own (`BIND_ADDRESS`, `ADMIN_BIND_ADDRESS`).
    pub env: Vec<(String, String)>,
}

impl StackOptions {
    /// Where vote, result and the admin listeners bind:
    /// `BIND_ADDRESS` from [`env`](Self::env), else 127.0.0.1.
    pub fn bind_address(&self) -> anyhow::Result<IpAddr> {
        match self.env.iter().rev().find(|(k, _)| k == "BIND_ADDRESS") {
            Some((_, v)) => v
                .parse()
                .with_context(|| format!("BIND_ADDRESS {v:?} is not an IP address")),
            None => Ok(Ipv4Addr::LOCALHOST.into()),
        }
    }
}

/// A running service process.
pub struct Service {
    pub name: &'static str,
    pub child: Child,
}

/// The running stack.
pub struct Stack {
    redis: Option<RedisServer>,
    postgres: Option<PostgresServer>,
    pub services: Vec<Service>,
    pub redis_url: String,
    pub database_url: String,
    /// Where to reach each service: its address, or loopback when it
    /// listens on every interface.
    pub vote_url: String,
    pub result_url: String,
    /// The admin listeners (`/healthz`, `/readyz`, `/metrics`).
    pub vote_admin_url: String,
    pub result_admin_url: String,
    pub worker_admin_url: String,
    /// Where each listens: (name, address), in the order to print them.
    pub listening: Vec<(&'static str, String)>,
    /// Prometheus's configuration and data, with `up --monitoring`.
    prometheus_dir: Option<tempfile::TempDir>,
}

impl Stack {
    pub async fn start(options: &StackOptions) -> anyhow::Result<Stack> {
        for bin in ["vote", "worker", "result"] {
            let path = options.bin_dir.join(bin);
            anyhow::ensure!(
                path.is_file(),
                "{} is missing: build it with `cargo build --release -p vote -p worker -p result`",
                path.display()
            );
        }
        let bind = options.bind_address()?;
        let admin_ports = [
            free_port_or_any(0)?,
            free_port_or_any(0)?,
            free_port_or_any(0)?,
        ];
        let [vote_admin, result_admin, worker_admin] = admin_ports;
        let at = |port: u16| SocketAddr::new(bind, port);
        let reach = |port: u16| {
            let ip = if bind.is_unspecified() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                bind
            };
            format!("http://{}/", SocketAddr::new(ip, port))
        };
        let mut stack = Stack {
            redis: None,
            postgres: None,
            services: Vec::new(),
            redis_url: String::new(),
            database_url: String::new(),
            vote_url: reach(options.vote_port),
            result_url: reach(options.result_port),
            vote_admin_url: reach(vote_admin),
            result_admin_url: reach(result_admin),
            worker_admin_url: reach(worker_admin),
            listening: vec![
                ("vote", format!("http://{}/", at(options.vote_port))),
                ("result", format!("http://{}/", at(options.result_port))),
                (
                    "vote admin",
                    format!("http://{}/ (/healthz, /readyz, /metrics)", at(vote_admin)),
                ),
                ("result admin", format!("http://{}/", at(result_admin))),
                ("worker admin", format!("http://{}/", at(worker_admin))),
            ],
            prometheus_dir: None,
        };

        stack.redis_url = match &options.redis_url {
            Some(url) => url.clone(),
            None => {
                let port = free_port_or_any(options.redis_port)?;
                let server = RedisServer::start(RedisOptions {
                    tcp_port: Some(port),
                    appendonly: true,
                    fsync_everysec: true,
                })
                .await
                .context("starting redis-server")?;
                let url = server.url(0);
                stack.redis = Some(server);
                url
            }
        };
        stack
            .listening
            .push(("redis", listed(&stack.redis_url, &options.redis_url)));
        stack.database_url = match &options.database_url {
            Some(url) => url.clone(),
            None => {
                let port = free_port_or_any(options.postgres_port)?;
                let server = PostgresServer::start(PostgresOptions {
                    tcp_port: Some(port),
                    fsync: true,
                })
                .await
                .context("starting postgres")?;
                let url = server.url("postgres");
                stack.postgres = Some(server);
                url
            }
        };
        stack.listening.push((
            "postgres",
            listed(&stack.database_url, &options.database_url),
        ));

        let plan: [(&'static str, Vec<(&str, String)>); 3] = [
            ("worker", vec![("ADMIN_PORT", worker_admin.to_string())]),
            (
                "vote",
                vec![
                    ("PORT", options.vote_port.to_string()),
                    ("ADMIN_PORT", vote_admin.to_string()),
                ],
            ),
            (
                "result",
                vec![
                    ("PORT", options.result_port.to_string()),
                    ("ADMIN_PORT", result_admin.to_string()),
                ],
            ),
        ];
        for (name, env) in plan {
            stack.spawn(options, name, &env).await?;
        }

        let deadline = Duration::from_secs(60);
        for (name, url) in [
            ("worker", stack.worker_admin_url.clone()),
            ("vote", stack.vote_admin_url.clone()),
            ("result", stack.result_admin_url.clone()),
        ] {
            wait_ready(name, &format!("{url}readyz"), deadline)
                .await
                .with_context(|| format!("{name} did not become ready"))?;
        }
        Ok(stack)
    }

    /// Starts one more vote process against the same stores, with `env`
    /// on top of the stack's own (e.g. `REDIS_MIN_REPLICAS_ACK`), on free
    /// ports; waits until it is ready. It stops with the stack. Returns its
    /// page's URL and its process id.
    pub async fn add_vote(
        &mut self,
        options: &StackOptions,
        env: &[(&str, String)],
    ) -> anyhow::Result<(String, u32)> {
        let bind = options.bind_address()?;
        let (port, admin) = (free_port_or_any(0)?, free_port_or_any(0)?);
        let mut all = vec![
            ("PORT", port.to_string()),
            ("ADMIN_PORT", admin.to_string()),
        ];
        all.extend(env.iter().cloned());
        let pid = self.spawn(options, "vote", &all).await?;
        let host = if bind.is_unspecified() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            bind
        };
        let url = |port: u16| format!("http://{}/", SocketAddr::new(host, port));
        wait_ready(
            "vote",
            &format!("{}readyz", url(admin)),
            Duration::from_secs(60),
        )
        .await?;
        Ok((url(port), pid))
    }

    /// Starts service `name` from the stack's binaries with the stack's
    /// environment and `env` (then [`StackOptions::env`]); returns its pid.
    async fn spawn(
        &mut self,
        options: &StackOptions,
        name: &'static str,
        env: &[(&str, String)],
    ) -> anyhow::Result<u32> {
        let bind = options.bind_address()?;
        let common_env = [
            ("REDIS_URL", self.redis_url.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("RUST_LOG", options.log_level.clone()),
            ("BIND_ADDRESS", bind.to_string()),
            ("ADMIN_BIND_ADDRESS", bind.to_string()),
            // No load balancer to leave: stop at once, not after the drain
            // delay meant for orchestrators.
            ("SHUTDOWN_DELAY_SECONDS", "0".to_owned()),
        ];
        // Its own process group: a Ctrl-C meant for xtask must not stop
        // it out of order. SIGTERM when the thread that spawns it ends
        // — this one is `main`'s or a runtime worker's, which live as
        // long as xtask — so it never outlives xtask.
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=TERM")
            .arg(options.bin_dir.join(name))
            .envs(common_env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", options.bin_dir.join(name).display()))?;
        forward_output(name, &mut child, &options.logs).await?;
        let pid = child.id().context("the process has exited")?;
        self.services.push(Service { name, child });
        Ok(pid)
    }

    /// Process id of a service.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.child.id())
    }

    /// Waits until any service exits by itself; returns which and how.
    pub async fn any_exited(&mut self) -> (&'static str, std::io::Result<ExitStatus>) {
        let waits = self.services.iter_mut().map(|s| {
            let name = s.name;
            Box::pin(async move { (name, s.child.wait().await) })
        });
        let ((name, status), _, _) = futures_util::future::select_all(waits).await;
        (name, status)
    }

    /// Stops the stack in dependency order: Prometheus (if started), so it
    /// alerts on nothing that stopping does; vote and result (together),
    /// then the worker, which drains what they queued last, finishes its
    /// batch and deregisters, and only then Redis and Postgres, gracefully.
    /// Each service gets SIGTERM and 15 s. Returns the services that did
    /// not exit cleanly.
    pub async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for names in [&["prometheus"][..], &["vote", "result"], &["worker"]] {
            let stopping = self
                .services
                .iter_mut()
                .filter(|s| names.contains(&s.name))
                .map(|s| Box::pin(stop_service(s)));
            for outcome in futures_util::future::join_all(stopping).await {
                problems.extend(outcome.err());
            }
        }
        // Off the runtime's threads: stopping a server waits for its exit.
        let (redis, postgres) = (self.redis.take(), self.postgres.take());
        let stopped = tokio::task::spawn_blocking(move || {
            if let Some(mut server) = redis {
                server.stop();
            }
            if let Some(mut server) = postgres {
                server.stop();
            }
            // Dropping them now removes their data.
        })
        .await;
        if let Err(e) = stopped {
            problems.push(format!("stopping Redis and Postgres: {e}"));
        }
        problems
    }
}

/// How the summary shows a store's URL: without its password, and marked
/// when the user gave it rather than the stack starting it.
fn listed(url: &str, given: &Option<String>) -> String {
    let url = servicekit::redact::redact_url(url);
    if given.is_some() {
        format!("{url} (yours)")
    } else {
        url
    }
}

/// `port` if it is free on 127.0.0.1, otherwise any free port (0 asks for
/// any port directly), from below the ephemeral range
/// ([`localstores::free_port`]).
pub fn free_port_or_any(port: u16) -> anyhow::Result<u16> {
    if port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return Ok(port);
    }
    localstores::free_port()
}

/// The directory of release binaries in this workspace.
pub fn release_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("release")
}
