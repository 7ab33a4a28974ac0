//! Redis with replication and Sentinel: a primary, replicas, and Sentinels
//! that elect a new primary when the old one dies.
//!
//! Every node gets the same settings, since any of them may be promoted:
//! AOF (`everysec`), `min-replicas-to-write`/`min-replicas-max-lag` so a
//! primary that cannot see its replicas refuses writes instead of
//! accepting ballots that a failover would drop, and no delay before a
//! diskless full sync (Redis waits 5 s by default, hoping for more
//! replicas). Each node has a writable, initially empty config file,
//! because Sentinel persists its reconfigurations with `CONFIG REWRITE`.
//!
//! Two replicas, not one, so that after a failover the new primary still
//! has a replica: `WAIT 1` and `min-replicas-to-write 1` keep succeeding
//! while the old primary is down.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{free_ports, wait_for};
use localstores::process::{READY_TIMEOUT, find_binary, launch, scratch_dir};

/// How long [`RedisHa::start`] and [`RedisHa::restart_as_replica`] wait
/// for replication links and Sentinel's view to settle. Sentinels find
/// each other through hello messages every 2 s.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings for [`RedisHa::start`].
///
/// A failover takes about `down_after` plus a second (the Sentinels agree
/// the primary is down, elect one of them, which promotes the replica with
/// the most data and repoints the other). `down_after` is 1500 ms, not
/// less: right after each failover every Sentinel drops its link to the
/// new primary and counts its silence from then (`sentinelResetMaster`),
/// and on the loaded test machine a Sentinel regularly took longer than a
/// second to hear its first PONG — with 1000 ms, 20 kills gave 24 and 27
/// promotions, i.e. failovers away from a healthy new primary; with 1500
/// ms and 2000 ms, exactly 20. Figures: [`crate::ha`].
#[derive(Debug, Clone)]
pub struct RedisHaOptions {
    /// The name Sentinel monitors the primary under
    /// (`REDIS_SENTINEL_MASTER`).
    pub master_name: String,
    /// Replicas besides the primary.
    pub replicas: usize,
    /// Sentinels (an odd number ≥ 3 survives the loss of one).
    pub sentinels: usize,
    /// Sentinels that must agree the primary is down before a failover.
    pub quorum: usize,
    /// Sentinel's `down-after-milliseconds`: how long the primary may
    /// fail to answer before a Sentinel considers it down.
    pub down_after: Duration,
    /// Sentinel's `failover-timeout` (also the back-off before a failed
    /// failover is retried, twice this).
    pub failover_timeout: Duration,
    /// `min-replicas-to-write` on every node (0 = accept writes alone).
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag`, in whole seconds: a replica whose last
    /// acknowledgement is older does not count.
    pub min_replicas_max_lag_secs: u32,
}

impl Default for RedisHaOptions {
    fn default() -> Self {
        RedisHaOptions {
            master_name: "voting".into(),
            replicas: 2,
            sentinels: 3,
            quorum: 2,
            down_after: Duration::from_millis(1500),
            failover_timeout: Duration::from_millis(3000),
            min_replicas_to_write: 1,
            min_replicas_max_lag_secs: 2,
        }
    }
}

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

/// One `redis-server` (data node or Sentinel) and where it lives.
struct Process {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the node is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -{signal} failed: {status}");
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
            ha.wait_in_sync(i, SETTLE_TIMEOUT).await?;
        }
        for i in 0..ha.sentinels.len() {
            ha.start_sentinel(i).await?;
        }
        ha.wait_healthy(SETTLE_TIMEOUT).await?;
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
        self.nodes[node].signal("STOP")
    }

    /// Thaws a node [`pause`](Self::pause)d (SIGCONT).
    pub fn resume(&self, node: usize) -> anyhow::Result<()> {
        self.nodes[node].signal("CONT")
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

    fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| loopback(n.port) == addr)
    }

    async fn start_node(&mut self, node: usize, replica_of: Option<usize>) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let options = &self.options;
        let this = &self.nodes[node];
        let conf = this.dir.join("redis.conf");
        if !conf.exists() {
            std::fs::write(&conf, "# Rewritten by Sentinel (CONFIG REWRITE).\n")?;
        }
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=TERM").arg(binary).arg(&conf);
        cmd.args(["--port", &this.port.to_string(), "--bind", "127.0.0.1"]);
        cmd.arg("--dir").arg(&this.dir);
        cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        cmd.args(["--save", "", "--repl-diskless-sync-delay", "0"]);
        cmd.args([
            "--min-replicas-to-write",
            &options.min_replicas_to_write.to_string(),
            "--min-replicas-max-lag",
            &options.min_replicas_max_lag_secs.to_string(),
        ]);
        if let Some(primary) = replica_of {
            let port = self.nodes[primary].port.to_string();
            cmd.args(["--replicaof", "127.0.0.1", &port]);
        }
        cmd.args(["--logfile", "", "--daemonize", "no", "--loglevel", "notice"]);
        let log = this.log();
        let child = launch(cmd, Some("ready to accept connections"), log, READY_TIMEOUT).await?;
        self.nodes[node].child = Some(child);
        Ok(())
    }

    async fn start_sentinel(&mut self, index: usize) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let options = &self.options;
        let primary = self.nodes[0].port;
        let this = &self.sentinels[index];
        let conf = this.dir.join("sentinel.conf");
        let name = &options.master_name;
        // Sentinel rewrites this file as it learns the topology.
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile \"\"\ndaemonize no\n\
                 sentinel resolve-hostnames no\n\
                 sentinel monitor {name} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down}\n\
                 sentinel failover-timeout {name} {failover}\n\
                 sentinel parallel-syncs {name} 1\n",
                port = this.port,
                dir = this.dir.display(),
                quorum = options.quorum,
                down = options.down_after.as_millis(),
                failover = options.failover_timeout.as_millis(),
            ),
        )?;
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=TERM").arg(binary).arg(&conf);
        cmd.arg("--sentinel");
        let log = this.log();
        let child = launch(cmd, Some("+monitor master"), log, READY_TIMEOUT).await?;
        self.sentinels[index].child = Some(child);
        Ok(())
    }

    /// Waits until replica `node` has a live link to its primary.
    async fn wait_in_sync(&self, node: usize, deadline: Duration) -> anyhow::Result<()> {
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
}

impl Drop for RedisHa {
    fn drop(&mut self) {
        for process in self.sentinels.iter_mut().chain(&mut self.nodes) {
            process.kill();
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// How long one command to one process may take, connecting included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

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
