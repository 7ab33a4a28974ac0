//! `xtask bench`: measures the native stack and writes
//! `docs/benchmarks.md` and `docs/benchmarks.json`.
//!
//! Each run starts a fresh stack (release binaries, throwaway Redis with
//! AOF and Postgres with fsync on, all on loopback) and measures, in order,
//! one function per figure: idle memory; vote throughput and latency at
//! concurrency 50 ([`vote`]); the worker's drain rate for a pre-queued
//! backlog ([`drain`]); the end to end latency from a vote's POST to the
//! result page's WebSocket update and the result service's fan-out
//! (commit → last of N clients) at each crowd size ([`fanout`]); and peak
//! memory. Every figure reported is the median of the
//! runs. Then, once, on a stack of their own, the memory figures of
//! [`memory`]: growth under steady load with nothing scraping `/metrics`,
//! the cost of an open connection, and RSS a minute after load. Numbers are
//! what was measured — nothing here asserts thresholds.

pub mod broadcaster;
mod drain;
mod fanout;
mod memory;
pub(crate) mod procfs;
mod replicated;
mod report;
mod vote;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::stack::{Logs, Stack, StackOptions};
use drain::{queue_backlog, wait_for_rows};
use procfs::proc_status_kib;
use vote::seed_votes;

/// What to measure.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Runs per figure; the report shows the median. 0 skips to the memory
    /// figures.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Leave out the memory figures (they take two to three minutes).
    #[arg(long)]
    skip_memory: bool,
    #[command(flatten)]
    memory: memory::MemoryArgs,
    /// Votes the seed posts per run (split 2:1 like the default seed).
    #[arg(long, default_value_t = 30_000)]
    votes: u64,
    /// Ballots pre-queued for the worker's drain measurement.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// The worker's `BATCH_SIZE` (its default when not given).
    #[arg(long)]
    worker_batch_size: Option<u32>,
    /// Sequential votes timed from POST to the live update.
    #[arg(long, default_value_t = 100)]
    e2e_samples: usize,
    /// Crowd sizes for the fan-out measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    clients: Vec<usize>,
    /// Commits timed per crowd size.
    #[arg(long, default_value_t = 20)]
    fanout_rounds: usize,
    /// Seconds of replicated votes (REDIS_MIN_REPLICAS_ACK=1, healthy
    /// replica) at c=10 and again at c=50, counting answers other than 200.
    #[arg(long, default_value_t = 60)]
    soak_seconds: u64,
    /// Use the binaries in this directory instead of building release ones.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where to write benchmarks.md and benchmarks.json.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
}

pub async fn bench(args: BenchArgs, root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    // The crowds of live pages need as many open files.
    servicekit::limits::raise_open_files_limit();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => {
            crate::build_release(&["vote", "worker", "result", "hits", "seed", "xtask"]).await?
        }
    };
    if cfg!(debug_assertions) {
        if args.bin_dir.is_none() {
            // The floors and the crowd run in this process: measured by an
            // unoptimised build they would flatter every ratio.
            println!("bench: going on in the release build of xtask");
            let status = tokio::process::Command::new(bin_dir.join("xtask"))
                .arg("bench")
                .args(std::env::args_os().skip(2))
                .arg("--bin-dir")
                .arg(&bin_dir)
                .status()
                .await
                .context("running the release xtask")?;
            anyhow::ensure!(status.success(), "the release bench failed");
            return Ok(());
        }
        println!("bench: warning: a debug build of xtask measures the floors and drives the crowd");
    }
    let logs = root.join("target").join("xtask-bench");
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        println!("bench: run {run} of {}", args.runs);
        let options = StackOptions {
            bin_dir: bin_dir.clone(),
            vote_port: crate::stack::free_port_or_any(0)?,
            result_port: crate::stack::free_port_or_any(0)?,
            redis_url: None,
            database_url: None,
            redis_port: 0,
            postgres_port: 0,
            logs: Logs::Files(logs.join(format!("run-{run}"))),
            log_level: "warn".into(),
            env: stack_env(&args),
        };
        let mut stack = Stack::start(&options).await?;
        let measured = measure(&args, &bin_dir, &mut stack, &options).await;
        let problems = stack.stop().await;
        let figures = measured?;
        anyhow::ensure!(
            problems.is_empty(),
            "stack did not stop cleanly: {problems:?}"
        );
        println!("bench: run {run}: {figures}");
        println!("bench: run {run} against the floors: {}", figures["ratios"]);
        runs.push(figures);
    }
    let memory = if args.skip_memory {
        Value::Null
    } else {
        println!("bench: memory figures");
        let figures = memory::measure(&args.memory, &bin_dir, &logs.join("memory")).await?;
        println!("bench: memory: {figures}");
        figures
    };
    let report = json!({
        "machine": report::machine(),
        "xtask_build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": args.runs,
        "settings": {
            "seed_votes": args.votes,
            "seed_concurrency": 50,
            "backlog": args.backlog,
            "e2e_samples": args.e2e_samples,
            "soak_seconds": args.soak_seconds,
            "fanout_rounds": args.fanout_rounds,
        },
        "median": report::median_of(&runs),
        "each_run": runs,
        "memory": memory,
        "binary_bytes": report::binary_sizes(&bin_dir),
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&args.out)?;
    let json_path = args.out.join("benchmarks.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")?;
    let md_path = args.out.join("benchmarks.md");
    std::fs::write(&md_path, report::markdown(&report))?;
    println!(
        "bench: wrote {} and {} in {:.0} s",
        md_path.display(),
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Settings for every run's stack.
fn stack_env(args: &BenchArgs) -> Vec<(String, String)> {
    // Room for the largest crowd, even while the sockets of an earlier
    // measurement are still being closed.
    let mut env = vec![(
        "MAX_CLIENTS".into(),
        (args.clients.iter().max().unwrap_or(&0) + 1_000).to_string(),
    )];
    if let Some(size) = args.worker_batch_size {
        env.push(("BATCH_SIZE".into(), size.to_string()));
    }
    env
}

/// What one run's figure functions share: the stack, connections to its
/// stores and its processes' ids.
pub struct Run<'a> {
    args: &'a BenchArgs,
    bin_dir: &'a Path,
    stack: &'a Stack,
    pool: sqlx::PgPool,
    redis: redis::aio::MultiplexedConnection,
    vote: u32,
    worker: u32,
    result: u32,
}

impl<'a> Run<'a> {
    async fn new(args: &'a BenchArgs, bin_dir: &'a Path, stack: &'a Stack) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&stack.database_url)
            .await?;
        let redis = redis::Client::open(stack.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        // A missing pid must not become `kill -STOP 0`, which would stop us too.
        let pid = |s: &'static str| stack.pid(s).with_context(|| format!("{s} is not running"));
        Ok(Run {
            args,
            bin_dir,
            stack,
            pool,
            redis,
            vote: pid("vote")?,
            worker: pid("worker")?,
            result: pid("result")?,
        })
    }

    /// Votes stored so far.
    async fn stored(&self) -> anyhow::Result<u64> {
        Ok(result::tally::read_tally(&self.pool).await?.total())
    }

    /// Waits until the queue is empty and `rows` votes are stored.
    async fn wait_for_rows(&self, rows: u64, limit: Duration) -> anyhow::Result<()> {
        wait_for_rows(&self.pool, &mut self.redis.clone(), rows, limit).await
    }

    /// Each service's RSS, or its high-water mark, in KiB.
    fn rss(&self, field: &str) -> Value {
        [
            ("vote", self.vote),
            ("worker", self.worker),
            ("result", self.result),
        ]
        .iter()
        .map(|(name, pid)| (name.to_string(), json!(proc_status_kib(*pid, field))))
        .collect::<serde_json::Map<_, _>>()
        .into()
    }
}

/// One run's figures, one function each.
async fn measure(
    args: &BenchArgs,
    bin_dir: &Path,
    stack: &mut Stack,
    options: &StackOptions,
) -> anyhow::Result<Value> {
    let replication = replicated::Replication::start(stack, options).await?;
    let run = Run::new(args, bin_dir, stack).await?;
    // Idle: ready, settled, nothing happening.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = run.rss("VmRSS");
    let vote = vote::throughput(&run).await?;
    let http_floor = vote::http_floor(&run).await?;
    let redis_floor = vote::redis_floor(&run).await?;
    let worker = drain::worker_drain(&run).await?;
    let drain_floor = drain::drain_floor(&run).await?;
    let end_to_end = fanout::end_to_end(&run).await?;
    let fanout = fanout::result_fanout(&run).await?;
    let broadcast_floor = fanout::broadcast_floor(&run).await?;
    replication.follow().await?;
    let replicated = json!({
        "throughput": replicated::throughput(&run, &replication, &vote).await?,
        "soak_c10": replicated::soak(&run, &replication, 10).await?,
        "soak_c50": replicated::soak(&run, &replication, vote::CONCURRENCY).await?,
        "replica_lost": replicated::replica_lost(&run, &replication).await?,
    });
    let ratios = ratios(
        &vote,
        &http_floor,
        &redis_floor,
        &worker,
        &drain_floor,
        &fanout,
        &broadcast_floor,
    );
    Ok(json!({
        "vote": vote,
        "replicated_vote": replicated,
        "worker": worker,
        "end_to_end_ms": end_to_end,
        "fanout": fanout,
        "floors": {
            "vote_http": http_floor,
            "vote_redis": redis_floor,
            "worker_drain": drain_floor,
            "fanout": broadcast_floor,
        },
        "ratios": ratios,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": run.rss("VmHWM"),
    }))
}

/// Each figure against its floor, in this run: throughputs as a share of
/// the floor (1.0 = at the floor), latencies as a multiple of it.
fn ratios(
    vote: &Value,
    http_floor: &Value,
    redis_floor: &Value,
    worker: &Value,
    drain_floor: &Value,
    fanout: &Value,
    broadcast_floor: &Value,
) -> Value {
    let ratio = |ours: &Value, floor: &Value| match (ours.as_f64(), floor.as_f64()) {
        (Some(ours), Some(floor)) if floor > 0.0 => json!(ours / floor),
        _ => Value::Null,
    };
    let rps = "requests_per_second";
    let lower_floor = match (http_floor[rps].as_f64(), redis_floor[rps].as_f64()) {
        (Some(h), Some(r)) => json!(h.min(r)),
        _ => Value::Null,
    };
    let mut fanout_ratios = serde_json::Map::new();
    if let Some(sizes) = fanout.as_object() {
        for (size, ours) in sizes {
            let ours = &ours["commit_to_last_client_ms"];
            let floor = &broadcast_floor[size]["send_to_last_client_ms"];
            fanout_ratios.insert(
                size.clone(),
                json!({ "p50": ratio(&ours["p50"], &floor["p50"]), "p99": ratio(&ours["p99"], &floor["p99"]) }),
            );
        }
    }
    json!({
        "vote_of_lower_floor": ratio(&vote[rps], &lower_floor),
        "vote_of_http_floor": ratio(&vote[rps], &http_floor[rps]),
        "vote_of_redis_floor": ratio(&vote[rps], &redis_floor[rps]),
        "worker_of_drain_floor": ratio(&worker["ballots_per_second"], &drain_floor["rows_per_second"]),
        "fanout_over_floor": fanout_ratios,
    })
}
