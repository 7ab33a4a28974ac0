//! How long each replicated store takes to serve writes again after its
//! primary is SIGKILLed.
//!
//! ```text
//! cargo run -p testkit --features postgres --example failover_times -- [--kills 10] [--store redis|postgres|both]
//! ```
//!
//! Starts a [`RedisHa`] and/or a [`PostgresHa`], then `--kills` times:
//! waits until the topology is healthy, SIGKILLs the primary, polls every
//! 20 ms from the moment of the kill until the store takes writes again,
//! and restarts the dead node as a replica. Prints each kill and, per
//! milestone, the median and the maximum:
//!
//! - Redis — *promoted*: Sentinel names another node and it says `master`;
//!   *write*: a `SET` on the node Sentinel names succeeds (it needs a
//!   replica, `min-replicas-to-write 1`); *acked*: `WAIT 1` confirms a
//!   replica has it (what vote with `REDIS_MIN_REPLICAS_ACK=1` waits for).
//! - Postgres — *promoted*: the standby, asked directly, is out of
//!   recovery; *write*: a transaction commits through HAProxy's primary
//!   endpoint (what the worker and result see).
//!
//! The timing settings are flags (defaults: the harness's), so other
//! values can be compared on the same machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sqlx::{Connection, PgConnection};
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};

/// Give up on one failover after this long.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Parser)]
struct Args {
    /// Primary kills per store.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    #[arg(long, value_enum, default_value_t = Store::Both)]
    store: Store,
    /// Sentinel's down-after-milliseconds.
    #[arg(long)]
    down_after_ms: Option<u64>,
    /// Sentinel's failover-timeout, in milliseconds.
    #[arg(long)]
    failover_timeout_ms: Option<u64>,
    /// Patroni's ttl, in seconds.
    #[arg(long)]
    ttl: Option<u32>,
    /// Patroni's loop_wait, in seconds.
    #[arg(long)]
    loop_wait: Option<u32>,
    /// Patroni's retry_timeout, in seconds.
    #[arg(long)]
    retry_timeout: Option<u32>,
    /// HAProxy's check interval, in milliseconds.
    #[arg(long)]
    check_interval_ms: Option<u64>,
    /// Keep the topologies' folders (logs, data) even when all went well.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Store {
    Redis,
    Postgres,
    Both,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.store != Store::Postgres {
        redis_failovers(&args).await?;
    }
    if args.store != Store::Redis {
        postgres_failovers(&args).await?;
    }
    Ok(())
}

async fn redis_failovers(args: &Args) -> anyhow::Result<()> {
    let mut options = RedisHaOptions::default();
    if let Some(ms) = args.down_after_ms {
        options.down_after = Duration::from_millis(ms);
    }
    if let Some(ms) = args.failover_timeout_ms {
        options.failover_timeout = Duration::from_millis(ms);
    }
    println!(
        "Redis: {} replicas, {} sentinels (quorum {}), down-after-milliseconds {}, \
         failover-timeout {}, min-replicas-to-write {}, min-replicas-max-lag {}",
        options.replicas,
        options.sentinels,
        options.quorum,
        options.down_after.as_millis(),
        options.failover_timeout.as_millis(),
        options.min_replicas_to_write,
        options.min_replicas_max_lag_secs,
    );
    let mut ha = RedisHa::start(options).await?;
    let outcome = redis_kills(&mut ha, args.kills).await;
    if outcome.is_err() || args.keep {
        println!("  files kept in {}", ha.dir().display());
        ha.keep_files();
    }
    outcome
}

async fn redis_kills(ha: &mut RedisHa, kills: usize) -> anyhow::Result<()> {
    let mut times = Milestones::new(["promoted", "write", "acked"]);
    for kill in 1..=kills {
        let old = ha.primary_node().await?;
        let old_addr = ha.node_addr(old);
        let killed = Instant::now();
        ha.kill(old);
        let mut promoted = None;
        let mut written = None;
        let acked = loop {
            anyhow::ensure!(
                killed.elapsed() < FAILOVER_DEADLINE,
                "no failover after {FAILOVER_DEADLINE:?}"
            );
            if let Ok(addr) = ha.primary().await
                && addr != old_addr
            {
                if promoted.is_none() && redis_role(addr).await.is_ok_and(|r| r == "master") {
                    promoted = Some(killed.elapsed());
                }
                if promoted.is_some()
                    && let Ok(replicas) = redis_write(addr, kill).await
                {
                    written.get_or_insert(killed.elapsed());
                    if replicas >= 1 {
                        break killed.elapsed();
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        };
        let row = [promoted, written, Some(acked)].map(|t| t.unwrap_or(acked));
        println!("  kill {kill:>2} (node {old}): {}", times.record(row));
        ha.restart_as_replica(old).await?;
    }
    times.summary("Redis");
    let logs = ha.log_paths();
    let (nodes, sentinels) = logs.split_at(ha.node_count());
    println!(
        "  promotions seen in the nodes' logs: {} for {kills} kills; \
         failover attempts Sentinel aborted: {}",
        count_in(nodes, "MASTER MODE enabled"),
        count_in(sentinels, "-failover-abort"),
    );
    Ok(())
}

async fn postgres_failovers(args: &Args) -> anyhow::Result<()> {
    let mut options = PostgresHaOptions::default();
    options.ttl = args.ttl.unwrap_or(options.ttl);
    options.loop_wait = args.loop_wait.unwrap_or(options.loop_wait);
    options.retry_timeout = args.retry_timeout.unwrap_or(options.retry_timeout);
    if let Some(ms) = args.check_interval_ms {
        options.check_interval = Duration::from_millis(ms);
    }
    println!(
        "Postgres: Patroni ttl {} s, loop_wait {} s, retry_timeout {} s, synchronous_mode; \
         HAProxy inter {} ms fall 2 rise 1",
        options.ttl,
        options.loop_wait,
        options.retry_timeout,
        options.check_interval.as_millis(),
    );
    let mut ha = PostgresHa::start(options).await?;
    let outcome = postgres_kills(&mut ha, args.kills).await;
    if outcome.is_err() || args.keep {
        println!("  files kept in {}", ha.dir().display());
        ha.keep_files();
    }
    outcome
}

async fn postgres_kills(ha: &mut PostgresHa, kills: usize) -> anyhow::Result<()> {
    let endpoint = ha.url("postgres");
    let mut times = Milestones::new(["promoted", "write"]);
    for kill in 1..=kills {
        let old = ha.primary_node().await?;
        let standby = ha.node_url(1 - old, "postgres");
        let killed = Instant::now();
        ha.kill_node(old).await;
        let mut promoted = None;
        let written = loop {
            anyhow::ensure!(
                killed.elapsed() < FAILOVER_DEADLINE,
                "no failover after {FAILOVER_DEADLINE:?}"
            );
            if promoted.is_none() && pg_probe(&standby, "SELECT NOT pg_is_in_recovery()").await {
                promoted = Some(killed.elapsed());
            }
            if pg_probe(&endpoint, "SELECT txid_current() > 0").await {
                break killed.elapsed();
            }
            tokio::time::sleep(POLL).await;
        };
        let row = [promoted.unwrap_or(written), written];
        println!("  kill {kill:>2} (node {old}): {}", times.record(row));
        ha.restart_node(old).await?;
    }
    times.summary("Postgres");
    println!(
        "  promotions seen in Patroni's logs: {} for {kills} kills",
        count_in(&ha.log_paths(), "promoted self to leader"),
    );
    Ok(())
}

/// How many lines of the files `logs` contain `needle`: more promotions
/// than kills means a failover nobody asked for.
fn count_in(logs: &[std::path::PathBuf], needle: &str) -> usize {
    logs.iter()
        .filter_map(|log| std::fs::read_to_string(log).ok())
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

/// Durations per milestone, one row per kill.
struct Milestones<const N: usize> {
    names: [&'static str; N],
    rows: Vec<[Duration; N]>,
}

impl<const N: usize> Milestones<N> {
    fn new(names: [&'static str; N]) -> Self {
        Milestones {
            names,
            rows: Vec::new(),
        }
    }

    /// Keeps `row` and formats it for the per-kill line.
    fn record(&mut self, row: [Duration; N]) -> String {
        self.rows.push(row);
        self.names
            .iter()
            .zip(row)
            .map(|(name, t)| format!("{name} {:.2} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn summary(&self, store: &str) {
        println!("{store}, {} kills, from SIGKILL to:", self.rows.len());
        for (i, name) in self.names.iter().enumerate() {
            let mut column: Vec<Duration> = self.rows.iter().map(|r| r[i]).collect();
            column.sort();
            let (Some(max), Some(median)) = (column.last(), column.get(column.len() / 2)) else {
                continue;
            };
            println!(
                "  {name:<9} p50 {:.2} s  max {:.2} s",
                median.as_secs_f64(),
                max.as_secs_f64()
            );
        }
    }
}

async fn redis_conn(addr: SocketAddr) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}"))?;
    Ok(
        tokio::time::timeout(PROBE_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .context("connect timed out")??,
    )
}

async fn redis_role(addr: SocketAddr) -> anyhow::Result<String> {
    let reply: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut redis_conn(addr).await?)
        .await?;
    Ok(redis::from_redis_value_ref(
        reply.first().context("empty ROLE")?,
    )?)
}

/// `SET` then `WAIT 1 100`: how many replicas acknowledged the write.
async fn redis_write(addr: SocketAddr, kill: usize) -> anyhow::Result<u32> {
    let mut conn = redis_conn(addr).await?;
    let () = redis::cmd("SET")
        .arg("failover_times:probe")
        .arg(kill)
        .query_async(&mut conn)
        .await?;
    Ok(redis::cmd("WAIT")
        .arg(1)
        .arg(100)
        .query_async(&mut conn)
        .await?)
}

/// Whether `sql` (one boolean) answers true on a fresh connection.
async fn pg_probe(url: &str, sql: &'static str) -> bool {
    let run = async {
        let mut conn = PgConnection::connect(url).await?;
        let yes: bool = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        anyhow::Ok(yes)
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, run).await, Ok(Ok(true)))
}
