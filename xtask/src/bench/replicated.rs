//! The replicated vote's figures (`REDIS_MIN_REPLICAS_ACK=1`), beside the
//! unreplicated vote of the same run.
//!
//! A second vote process asks one replica to confirm every ballot; the
//! replica is a `redis-server` of its own that follows the run's Redis
//! only while these figures are taken (so the other figures pay nothing
//! for replication). One function per figure:
//!
//! - [`throughput`]: POSTs at c=50 with the worker held, as
//!   [`super::vote::throughput`] measures the unreplicated vote;
//! - [`soak`]: `--soak-seconds` of POSTs at c=10 and at c=50 with a
//!   healthy replica, counting every answer other than 200;
//! - [`replica_lost`]: the replica frozen (SIGSTOP), then killed: the
//!   slowest answer to a vote, what the votes were told, how many were
//!   acknowledged, and the vote page's p99 meanwhile, against its p99
//!   during the same load with the replica healthy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use localstores::{RedisOptions, RedisServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Run;
use super::report::percentiles;
use super::vote::{CONCURRENCY, seed_report};
use crate::stack::{Stack, StackOptions, signal};

/// How long each phase of [`replica_lost`] lasts.
const LOSS_PHASE: Duration = Duration::from_secs(10);
/// Page requests in flight at once while the page's latency is measured.
const PAGE_CONCURRENCY: usize = 4;

/// The replica and the vote process that waits for it.
pub struct Replication {
    replica: RedisServer,
    /// The replicated vote's page.
    pub vote_url: String,
    primary: SocketAddr,
}

impl Replication {
    /// Starts the replica (not yet following) and a vote process with
    /// `REDIS_MIN_REPLICAS_ACK=1` against the stack's Redis.
    pub async fn start(stack: &mut Stack, options: &StackOptions) -> anyhow::Result<Self> {
        let primary = redis::Client::open(stack.redis_url.as_str())?
            .get_connection_info()
            .addr()
            .to_string()
            .parse()
            .context("the stack's Redis listens on a TCP address")?;
        let replica = RedisServer::start(RedisOptions {
            tcp_port: Some(crate::stack::free_port_or_any(0)?),
            appendonly: true,
            fsync_everysec: true,
        })
        .await
        .context("starting the replica")?;
        let (vote_url, _) = stack
            .add_vote(options, &[("REDIS_MIN_REPLICAS_ACK", "1".to_owned())])
            .await?;
        Ok(Replication {
            replica,
            vote_url,
            primary,
        })
    }

    async fn replica(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.replica.url(0))?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// Makes the replica follow the run's Redis and waits until it is in
    /// sync.
    pub async fn follow(&self) -> anyhow::Result<()> {
        let mut conn = self.replica().await?;
        let (host, port) = (self.primary.ip().to_string(), self.primary.port());
        let () = redis::cmd("REPLICAOF")
            .arg(host)
            .arg(port)
            .query_async(&mut conn)
            .await?;
        let started = Instant::now();
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await?;
            if info.contains("master_link_status:up") {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the replica did not sync within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pid(&self) -> anyhow::Result<u32> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.replica().await?)
            .await?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .context("INFO server names no process_id")
    }
}

/// Replicated vote POSTs at [`CONCURRENCY`], the worker held, as many as
/// the unreplicated figure posts; `unreplicated` is that figure's value.
pub async fn throughput(
    run: &Run<'_>,
    replication: &Replication,
    unreplicated: &Value,
) -> anyhow::Result<Value> {
    let before = run.stored().await?;
    signal(run.worker, "STOP").await?;
    let load = ["--total".to_owned(), run.args.votes.to_string()];
    let seed = seed_report(run.bin_dir, &replication.vote_url, &load, CONCURRENCY).await;
    signal(run.worker, "CONT").await?;
    let seed = seed?;
    let acknowledged =
        seed["succeeded"]["a"].as_u64().unwrap_or(0) + seed["succeeded"]["b"].as_u64().unwrap_or(0);
    run.wait_for_rows(before + acknowledged, Duration::from_secs(120))
        .await?;
    let rps = "requests_per_second";
    Ok(json!({
        "requests_per_second": seed[rps],
        "p50_ms": seed["latency_ms"]["p50"],
        "p99_ms": seed["latency_ms"]["p99"],
        "not_200": seed["failed"],
        "of_unreplicated": match (seed[rps].as_f64(), unreplicated[rps].as_f64()) {
            (Some(ours), Some(theirs)) if theirs > 0.0 => json!(ours / theirs),
            _ => Value::Null,
        },
    }))
}

/// `--soak-seconds` of replicated vote POSTs at `concurrency`, the worker
/// running, with a healthy replica.
pub async fn soak(
    run: &Run<'_>,
    replication: &Replication,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let load = ["--duration".to_owned(), run.args.soak_seconds.to_string()];
    let seed = seed_report(run.bin_dir, &replication.vote_url, &load, concurrency).await?;
    Ok(json!({
        "posts": seed["sent"],
        "not_200": seed["failed"],
        "p99_ms": seed["latency_ms"]["p99"],
    }))
}

/// The vote page's latency (`GET /`) under replicated POSTs at
/// [`CONCURRENCY`] for [`LOSS_PHASE`], and what the POSTs were told: with
/// the replica healthy, frozen (SIGSTOP), then killed. Ends with the
/// replica gone.
pub async fn replica_lost(run: &Run<'_>, replication: &Replication) -> anyhow::Result<Value> {
    let healthy = phase(run, replication).await?;
    let pid = replication.pid().await?;
    signal(pid, "STOP").await?;
    let frozen = phase(run, replication).await;
    // A frozen process dies of SIGKILL as it is.
    signal(pid, "KILL").await?;
    let killed = phase(run, replication).await;
    Ok(json!({ "healthy": healthy, "frozen": frozen?, "killed": killed? }))
}

/// One [`replica_lost`] phase.
async fn phase(run: &Run<'_>, replication: &Replication) -> anyhow::Result<Value> {
    let load = ["--duration".to_owned(), LOSS_PHASE.as_secs().to_string()];
    let stop = CancellationToken::new();
    let page = page_latency(&replication.vote_url, stop.clone());
    let posts = async {
        let seed = seed_report(run.bin_dir, &replication.vote_url, &load, CONCURRENCY).await;
        stop.cancel();
        seed
    };
    let (page, seed) = tokio::join!(page, posts);
    let seed = seed?;
    Ok(json!({
        "posts": seed["sent"],
        "acknowledged": seed["succeeded"]["a"].as_u64().unwrap_or(0)
            + seed["succeeded"]["b"].as_u64().unwrap_or(0),
        "answers": seed["failures"],
        "slowest_answer_ms": seed["latency_ms"]["max"].as_f64().unwrap_or(0.0)
            .max(seed["latency_ms"]["max_refused"].as_f64().unwrap_or(0.0)),
        "page_ms": page?,
    }))
}

/// `GET /` latencies from [`PAGE_CONCURRENCY`] clients until `stop`.
async fn page_latency(url: &str, stop: CancellationToken) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let clients: Vec<_> = (0..PAGE_CONCURRENCY)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.is_cancelled() {
                    let started = Instant::now();
                    let res = client.get(&url).send().await?;
                    anyhow::ensure!(res.status().is_success(), "GET / answered {}", res.status());
                    res.bytes().await?;
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    Ok(percentiles(&mut latencies))
}

/// The floor table's row: the replicated vote against the unreplicated.
pub fn markdown_ratio_row(median: &Value) -> String {
    let r = &median["replicated_vote"]["throughput"];
    format!(
        "| vote, replicated (REDIS_MIN_REPLICAS_ACK=1): POST req/s at c=50 vs the unreplicated vote; answers not 200 | {} | {} | {} | ≥ 0.60, 0 |\n",
        whole(&r["requests_per_second"]),
        whole(&median["vote"]["requests_per_second"]),
        r["of_unreplicated"]
            .as_f64()
            .map_or("–".to_owned(), |x| format!(
                "{x:.2}; {}",
                whole(&r["not_200"])
            )),
    )
}

/// The replicated vote's rows of the "Every figure" table.
pub fn markdown_rows(median: &Value, soak_seconds: &Value) -> String {
    let m = &median["replicated_vote"];
    let ms = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let mut out = format!(
        "| vote, replicated: latency p50 / p99 at c=50 | {} / {} ms | p99 < 10 ms |\n",
        ms(&m["throughput"]["p50_ms"]),
        ms(&m["throughput"]["p99_ms"]),
    );
    for c in ["10", "50"] {
        let soak = &m[format!("soak_c{c}").as_str()];
        out.push_str(&format!(
            "| vote, replicated: {soak_seconds} s at c={c}, healthy replica: POSTs, answers not 200, p99 | {}, {}, {} ms | 0 not 200 |\n",
            whole(&soak["posts"]),
            whole(&soak["not_200"]),
            ms(&soak["p99_ms"]),
        ));
    }
    let lost = &m["replica_lost"];
    for (phase, what) in [("frozen", "frozen (SIGSTOP)"), ("killed", "killed")] {
        let p = &lost[phase];
        out.push_str(&format!(
            "| vote, replicated, replica {what}: POSTs, acknowledged, slowest answer; GET / p99 vs healthy | {}, {}, {} ms; {} vs {} ms | every answer ≤ 700 ms, 0 acknowledged |\n",
            whole(&p["posts"]),
            whole(&p["acknowledged"]),
            ms(&p["slowest_answer_ms"]),
            ms(&p["page_ms"]["p99"]),
            ms(&lost["healthy"]["page_ms"]["p99"]),
        ));
    }
    out
}

fn whole(v: &Value) -> String {
    v.as_f64().map_or("–".to_owned(), |x| format!("{x:.0}"))
}
