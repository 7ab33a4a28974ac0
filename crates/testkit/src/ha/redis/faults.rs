//! What a failover test does to the replicated Redis: kill a node like a
//! crashed machine, freeze one like a stalled machine, and bring a stopped
//! one back as a replica of whoever is primary now.

use localstores::process::signal;

use super::RedisHa;
use super::topology::SETTLE_TIMEOUT;

impl RedisHa {
    /// SIGKILLs the current primary (as Sentinel names it), like a crash
    /// of its machine; returns which node it was.
    pub async fn kill_primary(&mut self) -> anyhow::Result<usize> {
        let node = self.primary_node().await?;
        self.kill(node);
        Ok(node)
    }

    /// SIGKILLs data node `node`.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Freezes data node `node` (SIGSTOP): it keeps its connections but
    /// answers nothing, like a machine that stalls. [`resume`](Self::resume)
    /// thaws it.
    pub fn pause(&self, node: usize) -> anyhow::Result<()> {
        signal(self.nodes[node].pid()?, "STOP")
    }

    /// Thaws a node [`pause`](Self::pause)d (SIGCONT).
    pub fn resume(&self, node: usize) -> anyhow::Result<()> {
        signal(self.nodes[node].pid()?, "CONT")
    }

    /// Starts a stopped node again as a replica of the current primary
    /// (`--replicaof`), so it never comes back as a second master, and
    /// waits until it has synced and Sentinel counts it again.
    pub async fn restart_as_replica(&mut self, node: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes[node].child.is_none(),
            "node {node} is still running"
        );
        let primary = self.primary_node().await?;
        anyhow::ensure!(
            primary != node,
            "Sentinel still names the stopped node {node} as the primary; \
             wait_for_new_primary first"
        );
        self.start_node(node, Some(primary)).await?;
        self.wait_in_sync(node, SETTLE_TIMEOUT).await?;
        self.wait_healthy(SETTLE_TIMEOUT).await
    }
}
