//! Redis with replication and Sentinel: a primary, replicas, and Sentinels
//! that elect a new primary when the old one dies.
//!
//! Two replicas, not one, so that after a failover the new primary still
//! has a replica: `WAIT 1` and `min-replicas-to-write 1` keep succeeding
//! while the old primary is down.
//!
//! This file holds the topology's handle: starting it, where its processes
//! listen and keep their files, and stopping it. The rest, one job each:
//! `options` (what a test may tune, and the measured defaults), `config`
//! (what each process is told), `launch` (starting a process), `topology`
//! (who is primary, whether replication is healthy) and `faults` (kill,
//! pause, restart).

mod config;
mod faults;
mod launch;
mod options;
mod topology;

pub use options::RedisHaOptions;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use self::launch::Process;
use super::{free_ports, loopback};
use localstores::process::scratch_dir;

/// A Redis primary with replicas and Sentinels, all on 127.0.0.1.
///
/// Nodes are numbered from 0; node 0 starts as the primary. Which node is
/// the primary later is Sentinel's word: [`primary_node`](Self::primary_node).
pub struct RedisHa {
    dir: tempfile::TempDir,
    options: RedisHaOptions,
    nodes: Vec<Process>,
    sentinels: Vec<Process>,
}

impl RedisHa {
    /// Starts the primary, then the replicas (waiting until each is in
    /// sync), then the Sentinels, and returns once every Sentinel knows
    /// the primary, every replica and every other Sentinel, so a failover
    /// can happen at once.
    pub async fn start(options: RedisHaOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            options.quorum >= 1 && options.quorum <= options.sentinels,
            "quorum {} needs 1..={} sentinels",
            options.quorum,
            options.sentinels
        );
        let dir = scratch_dir("redis-ha")?;
        let count = 1 + options.replicas + options.sentinels;
        let mut ports = free_ports(count)?.into_iter();
        let mut make = |name: String| -> anyhow::Result<Process> {
            let path = dir.path().join(name);
            std::fs::create_dir(&path)?;
            Ok(Process {
                port: ports.next().context("free_ports returned too few")?,
                dir: path,
                child: None,
            })
        };
        let nodes = (0..=options.replicas)
            .map(|i| make(format!("node{i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sentinels = (0..options.sentinels)
            .map(|i| make(format!("sentinel{i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut ha = RedisHa {
            dir,
            options,
            nodes,
            sentinels,
        };
        ha.start_node(0, None).await?;
        for i in 1..ha.nodes.len() {
            ha.start_node(i, Some(0)).await?;
        }
        for i in 1..ha.nodes.len() {
            ha.wait_in_sync(i, topology::SETTLE_TIMEOUT).await?;
        }
        for i in 0..ha.sentinels.len() {
            ha.start_sentinel(i).await?;
        }
        ha.wait_healthy(topology::SETTLE_TIMEOUT).await?;
        Ok(ha)
    }

    /// The name the Sentinels monitor the primary under.
    pub fn master_name(&self) -> &str {
        &self.options.master_name
    }

    /// Where the Sentinels listen.
    pub fn sentinels(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(|s| loopback(s.port)).collect()
    }

    /// The Sentinels as `host:port,host:port,…` (`REDIS_SENTINELS`).
    pub fn sentinels_env(&self) -> String {
        self.sentinels()
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many data nodes (primary and replicas) there are.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Where data node `node` listens.
    pub fn node_addr(&self, node: usize) -> SocketAddr {
        loopback(self.nodes[node].port)
    }

    /// A URL for logical database `db` of data node `node`.
    pub fn node_url(&self, node: usize, db: u32) -> String {
        format!("redis://{}/{db}", self.node_addr(node))
    }

    /// URLs of every data node (database 0), node 0 first.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|n| self.node_url(n, 0)).collect()
    }

    /// The topology's directory; each process has a folder in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Leaves the directory (logs, data) in place when dropped, to look
    /// at after a failure; the next process using the harness sweeps it.
    pub fn keep_files(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// Every process's log file, data nodes first.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(Process::log)
            .collect()
    }
}

impl Drop for RedisHa {
    fn drop(&mut self) {
        for process in self.sentinels.iter_mut().chain(&mut self.nodes) {
            process.kill();
        }
    }
}
