//! What each process of the replicated Redis is told at start.
//!
//! Every data node gets the same settings, since any of them may be
//! promoted: AOF (`everysec`), `min-replicas-to-write`/`min-replicas-max-lag`
//! so a primary that cannot see its replicas refuses writes instead of
//! accepting ballots that a failover would drop, and no delay before a
//! diskless full sync (Redis waits 5 s by default, hoping for more
//! replicas). Each node has a writable, initially empty config file,
//! because Sentinel persists its reconfigurations with `CONFIG REWRITE`;
//! each Sentinel's file names the primary to monitor and how soon to give
//! up on it.

use std::path::Path;
use std::process::Command;

use super::RedisHaOptions;

/// A data node's config file as first written: empty but writable, for
/// Sentinel to rewrite. The node's settings are on its command line.
pub(super) const NODE_CONF: &str = "# Rewritten by Sentinel (CONFIG REWRITE).\n";

/// Puts a data node's settings on its `redis-server` command line, after
/// its config file; `replica_of` is the primary's port for a node that
/// starts as a replica.
pub(super) fn add_node_args(
    cmd: &mut Command,
    options: &RedisHaOptions,
    port: u16,
    dir: &Path,
    replica_of: Option<u16>,
) {
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
    cmd.arg("--dir").arg(dir);
    cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
    cmd.args(["--save", "", "--repl-diskless-sync-delay", "0"]);
    cmd.args([
        "--min-replicas-to-write",
        &options.min_replicas_to_write.to_string(),
        "--min-replicas-max-lag",
        &options.min_replicas_max_lag_secs.to_string(),
    ]);
    if let Some(primary) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
    }
    cmd.args(["--logfile", "", "--daemonize", "no", "--loglevel", "notice"]);
}

/// A Sentinel's config file, watching the primary at `primary_port`.
/// Sentinel rewrites this file as it learns the topology.
pub(super) fn sentinel_conf(
    options: &RedisHaOptions,
    port: u16,
    dir: &Path,
    primary_port: u16,
) -> String {
    let name = &options.master_name;
    format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile \"\"\ndaemonize no\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {name} 127.0.0.1 {primary_port} {quorum}\n\
         sentinel down-after-milliseconds {name} {down}\n\
         sentinel failover-timeout {name} {failover}\n\
         sentinel parallel-syncs {name} 1\n",
        dir = dir.display(),
        quorum = options.quorum,
        down = options.down_after.as_millis(),
        failover = options.failover_timeout.as_millis(),
    )
}
