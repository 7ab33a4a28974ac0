//! What a failover test does to the replicated Postgres: kill a node like
//! the loss of its machine (Patroni and its postmaster), and start a
//! killed node again so it rejoins as the standby.

use super::PostgresHa;
use super::launch::start_patroni;
use super::node::is_running;
use super::topology::{PROBE_TIMEOUT, SETTLE_TIMEOUT};
use crate::ha::wait_for;

impl PostgresHa {
    /// Kills the primary node (Patroni and Postgres, SIGKILL), like the
    /// loss of its machine; returns which node it was.
    pub async fn kill_primary_node(&mut self) -> anyhow::Result<usize> {
        let node = self.primary_node().await?;
        self.kill_node(node).await;
        Ok(node)
    }

    /// SIGKILLs node `node`'s Patroni and postmaster and waits until the
    /// postmaster is gone (its backends follow on their own).
    pub async fn kill_node(&mut self, node: usize) {
        if let Some(pid) = self.nodes[node].stop("KILL") {
            let _ = wait_for("the killed postmaster to exit", PROBE_TIMEOUT * 5, || {
                std::future::ready(Ok((!is_running(pid)).then_some(())))
            })
            .await;
        }
    }

    /// Starts a killed node's Patroni again; it rejoins as the standby
    /// (rewinding with `pg_rewind` what it wrote after the split). Returns
    /// once it is the synchronous standby and HAProxy routes to it.
    pub async fn restart_node(&mut self, node: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes[node].patroni.is_none(),
            "node {node} is still running"
        );
        let child = start_patroni(&self.nodes[node]).await?;
        self.nodes[node].patroni = Some(child);
        self.wait_healthy(SETTLE_TIMEOUT).await
    }
}
