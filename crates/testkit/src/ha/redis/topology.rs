//! Reading the replicated Redis's state from its processes: which node
//! Sentinel names as the primary, whether that primary would take a write,
//! and whether replication and the Sentinels are healthy enough for a
//! failover. Each question opens a fresh connection with a deadline, so a
//! frozen or dead process is an answer, not a hang.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use super::RedisHa;
use crate::ha::{loopback, wait_for};

/// How long [`RedisHa::start`] and [`RedisHa::restart_as_replica`] wait
/// for replication links and Sentinel's view to settle. Sentinels find
/// each other through hello messages every 2 s.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one command to one process may take, connecting included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisHa {
    /// The primary's address as the first Sentinel that answers names it.
    pub async fn primary(&self) -> anyhow::Result<SocketAddr> {
        let mut last = None;
        for sentinel in self.sentinels() {
            match master_addr(sentinel, &self.options.master_name).await {
                Ok(addr) => return Ok(addr),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no sentinels")))
    }

    /// The node Sentinel names as the primary.
    pub async fn primary_node(&self) -> anyhow::Result<usize> {
        let addr = self.primary().await?;
        self.node_at(addr)
            .with_context(|| format!("Sentinel names {addr}, which is none of our nodes"))
    }

    /// Waits until Sentinel names a primary other than node `old` and that
    /// node says it is a master; returns it. It may still refuse writes
    /// until a replica has caught up with it:
    /// [`wait_for_writable_primary`](Self::wait_for_writable_primary).
    pub async fn wait_for_new_primary(
        &self,
        old: usize,
        deadline: Duration,
    ) -> anyhow::Result<usize> {
        wait_for("Sentinel to promote a new primary", deadline, || async {
            let node = self.primary_node().await?;
            if node == old {
                return Ok(None);
            }
            Ok((role(self.node_addr(node)).await? == "master").then_some(node))
        })
        .await
    }

    /// Waits until the primary Sentinel names would accept a write: it is
    /// a master and sees at least `min_replicas_to_write` replicas with a
    /// recent enough acknowledgement. Writes nothing.
    pub async fn wait_for_writable_primary(&self, deadline: Duration) -> anyhow::Result<usize> {
        let needed = self.options.min_replicas_to_write;
        wait_for("a primary that accepts writes", deadline, || async {
            let node = self.primary_node().await?;
            let info = info_replication(self.node_addr(node)).await?;
            let good: u32 = info
                .get("min_slaves_good_slaves")
                .and_then(|n| n.parse().ok())
                .unwrap_or(u32::MAX);
            let master = info.get("role").is_some_and(|r| r == "master");
            Ok((master && (needed == 0 || good >= needed)).then_some(node))
        })
        .await
    }

    /// Waits until every node runs, every Sentinel names the same primary,
    /// sees every other node as a healthy replica of it and knows every
    /// other Sentinel: the state a failover needs.
    pub async fn wait_healthy(&self, deadline: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes.iter().all(|n| n.child.is_some()),
            "a node is stopped; restart it first"
        );
        let name = &self.options.master_name;
        wait_for(
            "Sentinels to agree on a healthy topology",
            deadline,
            || async {
                let mut primary = None;
                for sentinel in self.sentinels() {
                    let addr = master_addr(sentinel, name).await?;
                    if primary.is_some_and(|p| p != addr) {
                        return Ok(None);
                    }
                    primary = Some(addr);
                    let master: HashMap<String, String> =
                        query(sentinel, redis::cmd("SENTINEL").arg("MASTER").arg(name)).await?;
                    let others = self.sentinels.len() - 1;
                    if master.get("num-other-sentinels") != Some(&others.to_string())
                        || master.get("flags").is_none_or(|f| f != "master")
                    {
                        return Ok(None);
                    }
                    let replicas: Vec<HashMap<String, String>> =
                        query(sentinel, redis::cmd("SENTINEL").arg("REPLICAS").arg(name)).await?;
                    let healthy = replicas
                        .iter()
                        .filter(|r| {
                            r.get("flags").is_some_and(|f| f == "slave")
                                && r.get("master-link-status").is_some_and(|s| s == "ok")
                        })
                        .count();
                    if healthy < self.nodes.len() - 1 {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// Waits until replica `node` has a live link to its primary.
    pub(super) async fn wait_in_sync(&self, node: usize, deadline: Duration) -> anyhow::Result<()> {
        let addr = self.node_addr(node);
        wait_for(&format!("replica {addr} to sync"), deadline, || async {
            let info = info_replication(addr).await?;
            Ok(info
                .get("master_link_status")
                .is_some_and(|s| s == "up")
                .then_some(()))
        })
        .await
    }

    fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| loopback(n.port) == addr)
    }
}

/// Runs `cmd` on the Redis (or Sentinel) at `addr` over a new connection.
async fn query<T: redis::FromRedisValue>(addr: SocketAddr, cmd: &redis::Cmd) -> anyhow::Result<T> {
    let client = redis::Client::open(format!("redis://{addr}"))?;
    let run = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .with_context(|| format!("{addr} did not answer within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("asking {addr}"))
}

/// The primary that the Sentinel at `sentinel` names for `name`.
async fn master_addr(sentinel: SocketAddr, name: &str) -> anyhow::Result<SocketAddr> {
    let reply: Option<(String, u16)> = query(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(name),
    )
    .await?;
    let Some((host, port)) = reply else {
        bail!("Sentinel {sentinel} does not monitor {name}");
    };
    Ok(SocketAddr::new(
        host.parse()
            .with_context(|| format!("Sentinel {sentinel} named host {host:?}"))?,
        port,
    ))
}

/// The first element of `ROLE`: `master`, `slave` or `sentinel`.
async fn role(addr: SocketAddr) -> anyhow::Result<String> {
    let reply: Vec<redis::Value> = query(addr, &redis::cmd("ROLE")).await?;
    let first = reply.first().context("empty ROLE reply")?;
    Ok(redis::from_redis_value_ref::<String>(first)?)
}

/// `INFO replication` as field → value.
async fn info_replication(addr: SocketAddr) -> anyhow::Result<HashMap<String, String>> {
    let text: String = query(addr, redis::cmd("INFO").arg("replication")).await?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}
