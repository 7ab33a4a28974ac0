//! Postgres with automatic failover: two Patroni-managed nodes in
//! synchronous mode, one etcd as Patroni's consensus store, HAProxy as the
//! one address clients use.
//!
//! Synchronous mode makes the standby confirm every commit before the
//! primary reports it, so a failover loses no committed transaction; when
//! the standby is gone the survivor keeps accepting writes alone (plain
//! `synchronous_mode`, not `_strict`). `use_pg_rewind` and `wal_log_hints`
//! let a dead primary rejoin as a standby by rewinding what it wrote after
//! the split, instead of being copied afresh; when rewinding fails Patroni
//! copies it afresh anyway (`remove_data_directory_on_*`).
//!
//! Superuser `postgres`/`postgres`, replication user
//! `replicator`/`replicator`, password (SCRAM) on 127.0.0.1, trust on the
//! node's Unix socket (in its folder, for `psql -h <dir>` by hand).
//!
//! This file holds the topology's handle: starting it, its addresses and
//! files, and stopping it. The rest, one job each: `options` (what a test
//! may tune, and why the defaults), `node` (a Patroni node and the
//! postmaster it starts), `patroni_config` and `haproxy` (what those
//! processes are told), `launch` (starting etcd, Patroni and HAProxy),
//! `topology` (who is primary, whether the standby is synchronous) and
//! `faults` (kill, restart).

mod faults;
mod haproxy;
mod launch;
mod node;
mod options;
mod patroni_config;
mod topology;

pub use options::PostgresHaOptions;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Context;

use self::launch::{start_etcd, start_patroni};
use self::node::{Node, wait_gone_or_kill};
use self::patroni_config::patroni_config;
use super::{free_ports, loopback};
use localstores::process::{
    chown_to_postgres, find_binary, find_postgres_binary, is_root, kill_child, scratch_dir,
};

/// Patroni nodes in the cluster: a primary and its synchronous standby.
const NODES: usize = 2;

/// etcd, two Patroni nodes and HAProxy, all on 127.0.0.1.
pub struct PostgresHa {
    dir: tempfile::TempDir,
    options: PostgresHaOptions,
    etcd: Option<Child>,
    etcd_port: u16,
    nodes: Vec<Node>,
    haproxy: Option<Child>,
    primary_port: u16,
    replica_port: u16,
}

impl PostgresHa {
    /// Starts etcd, both Patroni nodes at once (one wins the race to
    /// initialise the cluster, the other copies it) and HAProxy; returns
    /// once the standby is synchronous and HAProxy routes to both.
    pub async fn start(options: PostgresHaOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            options.retry_timeout >= 2,
            "Patroni with etcd v3 needs retry_timeout ≥ 2 to ever take the leader lock"
        );
        anyhow::ensure!(options.loop_wait >= 1 && options.ttl > options.loop_wait);
        // Fail early, with the apt line, before starting anything.
        find_binary("patroni", "patroni")?;
        find_binary("etcd", "etcd-server")?;
        find_binary("haproxy", "haproxy")?;
        find_postgres_binary("postgres")?;
        let dir = scratch_dir("postgres-ha")?;
        let mut ports = free_ports(4 + 2 * NODES)?.into_iter();
        let mut port = || ports.next().context("free_ports returned too few");
        let (etcd_port, etcd_peer_port) = (port()?, port()?);
        let (primary_port, replica_port) = (port()?, port()?);
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&node_dir)?;
            if is_root() {
                chown_to_postgres(&node_dir)?;
            }
            nodes.push(Node {
                name: format!("node{i}"),
                dir: node_dir,
                pg_port: port()?,
                rest_port: port()?,
                patroni: None,
            });
        }
        let mut ha = PostgresHa {
            etcd: Some(start_etcd(dir.path(), etcd_port, etcd_peer_port).await?),
            dir,
            options,
            etcd_port,
            nodes,
            haproxy: None,
            primary_port,
            replica_port,
        };
        for node in &ha.nodes {
            std::fs::write(
                node.dir.join("patroni.yml"),
                patroni_config(node, &ha.options, etcd_port)?,
            )?;
        }
        let (first, second) =
            tokio::join!(start_patroni(&ha.nodes[0]), start_patroni(&ha.nodes[1]));
        ha.nodes[0].patroni = Some(first?);
        ha.nodes[1].patroni = Some(second?);
        ha.start_haproxy().await?;
        ha.wait_healthy(topology::SETTLE_TIMEOUT).await?;
        Ok(ha)
    }

    /// A URL for database `db` through HAProxy's primary endpoint: the
    /// one `DATABASE_URL` that follows failovers.
    pub fn url(&self, db: &str) -> String {
        pg_url(self.primary_port, db)
    }

    /// A URL for database `db` through HAProxy's standby endpoint
    /// (read-only; refuses connections while no standby runs).
    pub fn read_url(&self, db: &str) -> String {
        pg_url(self.replica_port, db)
    }

    /// A URL for database `db` on node `node` directly, bypassing HAProxy.
    pub fn node_url(&self, node: usize, db: &str) -> String {
        pg_url(self.nodes[node].pg_port, db)
    }

    /// HAProxy's primary endpoint.
    pub fn primary_endpoint(&self) -> SocketAddr {
        loopback(self.primary_port)
    }

    /// etcd's client address (`etcdctl --endpoints`).
    pub fn etcd_endpoint(&self) -> SocketAddr {
        loopback(self.etcd_port)
    }

    /// How many Patroni nodes there are.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The topology's directory; each process has a folder or file in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Leaves the directory (logs, data) in place when dropped, to look
    /// at after a failure; the next process using the harness sweeps it.
    pub fn keep_files(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// Every process's log file: etcd, the nodes (Patroni and its
    /// Postgres share one), HAProxy.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        let mut logs = vec![self.dir.path().join("etcd.log")];
        logs.extend(self.nodes.iter().map(Node::log));
        logs.push(self.dir.path().join("haproxy.log"));
        logs
    }

    /// HAProxy's stats socket: which servers it routes to.
    fn stats_socket(&self) -> PathBuf {
        self.dir.path().join("haproxy.sock")
    }
}

impl Drop for PostgresHa {
    fn drop(&mut self) {
        kill_child(&mut self.haproxy);
        // Patroni first, so it cannot restart Postgres; then a fast
        // shutdown, which waits for the backends, so no process still
        // writes in the folder we are about to delete.
        let postmasters: Vec<u32> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.stop("INT"))
            .collect();
        for pid in postmasters {
            wait_gone_or_kill(pid, Duration::from_secs(10));
        }
        kill_child(&mut self.etcd);
    }
}

/// A URL for database `db` on 127.0.0.1:`port`, as the superuser.
fn pg_url(port: u16, db: &str) -> String {
    format!("postgres://postgres:postgres@127.0.0.1:{port}/{db}")
}
