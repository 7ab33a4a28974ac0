//! Starting the replicated Postgres's processes — etcd, a Patroni per
//! node, HAProxy — each logging to its own file in the topology's folder
//! and ready when it says so (HAProxy: when its stats socket answers).
//! Patroni runs as `postgres` when we are root (Postgres refuses root).

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, bail};
use localstores::process::{READY_TIMEOUT, as_postgres_user, find_binary, launch, server_command};

use super::PostgresHa;
use super::haproxy::{self, Backend};
use super::node::Node;
use crate::ha::wait_for;

/// How long a Patroni node may take to initialise, copy or rewind its
/// data and report its role (a copy is slower on a loaded machine).
const PATRONI_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// One etcd member on 127.0.0.1, data in `<dir>/etcd`.
pub(super) async fn start_etcd(dir: &Path, port: u16, peer_port: u16) -> anyhow::Result<Child> {
    let binary = find_binary("etcd", "etcd-server")?;
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = server_command(&binary);
    cmd.args(["--name", "etcd", "--data-dir"])
        .arg(dir.join("etcd"));
    cmd.args([
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
    ]);
    cmd.args([
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
    ]);
    cmd.args(["--initial-cluster", &format!("etcd={peer}")]);
    // Patroni writes its member keys every loop; keep the history short.
    cmd.args(["--auto-compaction-mode", "revision"]);
    cmd.args(["--auto-compaction-retention", "1000"]);
    cmd.args(["--logger", "zap", "--log-outputs", "stderr"]);
    launch(
        cmd,
        Some("serving client traffic insecurely"),
        dir.join("etcd.log"),
        READY_TIMEOUT,
    )
    .await
}

/// Node `node`'s Patroni, with the `patroni.yml` in its folder.
pub(super) async fn start_patroni(node: &Node) -> anyhow::Result<Child> {
    let patroni = find_binary("patroni", "patroni")?;
    let mut cmd = as_postgres_user(&patroni);
    cmd.arg(node.dir.join("patroni.yml"));
    // Logged every loop once the node has settled, as leader or standby.
    launch(
        cmd,
        Some("no action. i am ("),
        node.log(),
        PATRONI_READY_TIMEOUT,
    )
    .await
}

impl PostgresHa {
    /// Writes HAProxy's config for the nodes and starts it; returns once
    /// its stats socket answers.
    pub(super) async fn start_haproxy(&mut self) -> anyhow::Result<()> {
        let binary = find_binary("haproxy", "haproxy")?;
        let backends: Vec<Backend<'_>> = self
            .nodes
            .iter()
            .map(|n| Backend {
                name: &n.name,
                pg_port: n.pg_port,
                rest_port: n.rest_port,
            })
            .collect();
        let config = self.dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            haproxy::config(
                &self.stats_socket(),
                self.primary_port,
                self.replica_port,
                self.options.check_interval,
                &backends,
            ),
        )?;
        let mut cmd = server_command(&binary);
        // -db: stay in the foreground, no daemon, no master process.
        cmd.arg("-db").arg("-f").arg(&config);
        let log = self.dir.path().join("haproxy.log");
        let mut child = launch(cmd, None, log.clone(), READY_TIMEOUT).await?;
        let socket = self.stats_socket();
        let ready = wait_for("HAProxy's stats socket", READY_TIMEOUT, || {
            let exited = child.try_wait();
            let socket = &socket;
            async move {
                if let Ok(Some(status)) = exited {
                    bail!("haproxy exited ({status})");
                }
                Ok(haproxy::up_servers(socket, "primary")
                    .await
                    .ok()
                    .map(|_| ()))
            }
        })
        .await;
        self.haproxy = Some(child);
        ready.with_context(|| {
            format!(
                "starting HAProxy; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }
}
