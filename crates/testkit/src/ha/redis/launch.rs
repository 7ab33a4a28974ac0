//! Starting the replicated Redis's processes — data nodes and Sentinels,
//! all `redis-server` — each in its own folder, on its own port, logging
//! to its own file, and ready when it says so.

use std::path::PathBuf;
use std::process::Child;

use anyhow::Context;
use localstores::process::{READY_TIMEOUT, find_binary, kill_child, launch, server_command};

use super::RedisHa;
use super::config::{NODE_CONF, add_node_args, sentinel_conf};

/// One `redis-server` (data node or Sentinel) and where it lives.
pub(super) struct Process {
    pub(super) port: u16,
    pub(super) dir: PathBuf,
    pub(super) child: Option<Child>,
}

impl Process {
    pub(super) fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The running process's id.
    pub(super) fn pid(&self) -> anyhow::Result<u32> {
        let child = self.child.as_ref().context("the node is not running")?;
        Ok(child.id())
    }

    /// SIGKILLs the process, if it runs, and reaps it.
    pub(super) fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl RedisHa {
    /// Starts data node `node`, as a replica of node `replica_of` if given.
    pub(super) async fn start_node(
        &mut self,
        node: usize,
        replica_of: Option<usize>,
    ) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let this = &self.nodes[node];
        let conf = this.dir.join("redis.conf");
        if !conf.exists() {
            std::fs::write(&conf, NODE_CONF)?;
        }
        let mut cmd = server_command(&binary);
        cmd.arg(&conf);
        let primary_port = replica_of.map(|primary| self.nodes[primary].port);
        add_node_args(&mut cmd, &self.options, this.port, &this.dir, primary_port);
        let log = this.log();
        let child = launch(cmd, Some("ready to accept connections"), log, READY_TIMEOUT).await?;
        self.nodes[node].child = Some(child);
        Ok(())
    }

    /// Starts Sentinel `index`, watching node 0 (the first primary).
    pub(super) async fn start_sentinel(&mut self, index: usize) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let this = &self.sentinels[index];
        let conf = this.dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            sentinel_conf(&self.options, this.port, &this.dir, self.nodes[0].port),
        )?;
        let mut cmd = server_command(&binary);
        cmd.arg(&conf).arg("--sentinel");
        let log = this.log();
        let child = launch(cmd, Some("+monitor master"), log, READY_TIMEOUT).await?;
        self.sentinels[index].child = Some(child);
        Ok(())
    }
}
