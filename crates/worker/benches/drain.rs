//! How fast the worker drains a full queue into Postgres.
//!
//! ```text
//! cargo bench -p worker --bench drain [-- --ballots 100000 --batch-size 1000,5000 --repeat 3]
//! ```
//!
//! Starts a Redis of its own (append-only file, fsync on every write) and a
//! Postgres of its own (fsync on: commits are durable, as in production),
//! then for each run: starts the release `worker` binary, waits until it
//! idles on the empty queue, makes N prepared ballots appear in `votes` at
//! once (`RENAME` of a staging list: the worker wakes from its blocking
//! wait), and times until the queue and the processing list are empty —
//! every ballot committed, since a ballot leaves Redis only after its
//! commit. Then it checks the table row by row, stops the worker and reads
//! its peak RSS (`VmHWM`).
//!
//! Workloads: N distinct voters; N ballots of which 10% change an earlier
//! voter's vote. Each runs `--repeat` times (default 3) on a fresh
//! database; the median counts, since the machine may be shared. Figures go
//! to stdout and `docs/benchmarks/worker.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use contract::queue::QUEUE_KEY;
use localstores::{PostgresOptions, PostgresServer, RedisOptions, RedisServer};
use worker::queue::{heartbeat_key, processing_key};

const STAGING_KEY: &str = "bench:staging";
const WORKER_ID: &str = "bench";

struct Options {
    ballots: usize,
    batch_sizes: Vec<u32>,
    repeat: usize,
}

impl Options {
    /// `--ballots N` / `BENCH_BALLOTS`, `--batch-size N[,N…]` /
    /// `BENCH_BATCH_SIZE` (the worker's `BATCH_SIZE`; each listed size is
    /// measured), `--repeat N` / `BENCH_REPEAT` (runs per workload; the
    /// median counts).
    /// Other arguments (cargo passes `--bench`) are ignored.
    fn parse() -> anyhow::Result<Self> {
        let mut options = Options {
            ballots: env_or("BENCH_BALLOTS", 100_000)?,
            batch_sizes: parse_sizes(&env_or("BENCH_BATCH_SIZE", "1000".to_owned())?)?,
            repeat: env_or("BENCH_REPEAT", 3)?,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--ballots" => options.ballots = args.next().context("--ballots N")?.parse()?,
                "--batch-size" => {
                    options.batch_sizes = parse_sizes(&args.next().context("--batch-size N")?)?
                }
                "--repeat" => options.repeat = args.next().context("--repeat N")?.parse()?,
                _ => {}
            }
        }
        Ok(options)
    }
}

fn parse_sizes(list: &str) -> anyhow::Result<Vec<u32>> {
    let sizes = list
        .split(',')
        .map(|n| n.trim().parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("batch sizes {list:?}"))?;
    anyhow::ensure!(!sizes.is_empty(), "no batch size given");
    Ok(sizes)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

/// One prepared workload: the queue contents and each voter's last choice.
struct Workload {
    name: &'static str,
    ballots: Vec<String>,
    last: HashMap<String, &'static str>,
}

impl Workload {
    /// `n` ballots; `changes_percent` of them change an earlier voter's vote.
    fn new(name: &'static str, n: usize, changes_percent: u64) -> Self {
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut ballots = Vec::with_capacity(n);
        let mut last = HashMap::with_capacity(n);
        let mut voters: Vec<String> = Vec::with_capacity(n);
        let seq0: i64 = 1_700_000_000_000_000;
        for i in 0..n {
            let voter = if !voters.is_empty() && next() % 100 < changes_percent {
                voters[(next() % voters.len() as u64) as usize].clone()
            } else {
                let id = format!("{:016x}", next());
                voters.push(id.clone());
                id
            };
            let vote = if next() % 3 == 0 { "b" } else { "a" };
            ballots.push(format!(
                r#"{{"voter_id":"{voter}","vote":"{vote}","seq":{}}}"#,
                seq0 + i as i64
            ));
            last.insert(voter, vote);
        }
        Workload {
            name,
            ballots,
            last,
        }
    }
}

/// The figures of one workload: one sample per repeat.
struct Figures {
    name: &'static str,
    batch_size: u32,
    ballots: usize,
    voters: usize,
    samples: Vec<Sample>,
}

#[derive(Clone, Copy)]
struct Sample {
    seconds: f64,
    peak_rss_kib: u64,
}

impl Figures {
    /// The median run by time.
    fn median(&self) -> Sample {
        let mut samples = self.samples.clone();
        samples.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        samples[samples.len() / 2]
    }

    fn per_second(&self, sample: Sample) -> f64 {
        self.ballots as f64 / sample.seconds
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(bench(options))
}

async fn bench(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.repeat > 0, "--repeat must be at least 1");
    println!(
        "worker drain benchmark: {} ballots per run, BATCH_SIZE {:?}, {} runs per workload (median counts)",
        options.ballots, options.batch_sizes, options.repeat
    );
    let redis = RedisServer::start(RedisOptions {
        appendonly: true,
        ..Default::default()
    })
    .await?;
    let postgres = PostgresServer::start(PostgresOptions {
        fsync: true,
        ..Default::default()
    })
    .await?;
    let admin = sqlx::PgPool::connect(&postgres.url("postgres")).await?;

    let workloads = [
        Workload::new("distinct voters", options.ballots, 0),
        Workload::new("10% vote changes", options.ballots, 10),
    ];
    let mut results = Vec::new();
    let mut databases = 0u32;
    for (&batch_size, workload) in options
        .batch_sizes
        .iter()
        .flat_map(|size| workloads.iter().map(move |w| (size, w)))
    {
        let mut figures = Figures {
            name: workload.name,
            batch_size,
            ballots: workload.ballots.len(),
            voters: workload.last.len(),
            samples: Vec::new(),
        };
        for _ in 0..options.repeat {
            databases += 1;
            let db = format!("bench{databases}");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&admin)
                .await?;
            let sample = run(
                workload,
                &redis.url(databases),
                &postgres.url(&db),
                batch_size,
            )
            .await?;
            println!(
                "{:>18}, BATCH_SIZE {:>5}: {} ballots from {} voters in {:.2} s = {:.0} ballots/s; worker peak RSS {:.1} MiB",
                figures.name,
                batch_size,
                figures.ballots,
                figures.voters,
                sample.seconds,
                figures.ballots as f64 / sample.seconds,
                sample.peak_rss_kib as f64 / 1024.0
            );
            figures.samples.push(sample);
        }
        let median = figures.median();
        println!(
            "{:>18}, BATCH_SIZE {:>5}: median {:.0} ballots/s",
            figures.name,
            batch_size,
            figures.per_second(median)
        );
        results.push(figures);
    }
    write_report(&options, &results)
}

async fn run(
    workload: &Workload,
    redis_url: &str,
    db_url: &str,
    batch_size: u32,
) -> anyhow::Result<Sample> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("REDIS_URL", redis_url)
        .env("DATABASE_URL", db_url)
        .env("WORKER_ID", WORKER_ID)
        .env("BATCH_SIZE", batch_size.to_string())
        .env("ADMIN_PORT", "0")
        .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(worker_log()?)
        .kill_on_drop(true)
        .spawn()?;
    let pid = worker.id().context("worker pid")?;

    // Registered means the schema is ready and it is about to block.
    wait_for(
        "the worker to register",
        Duration::from_secs(60),
        || async {
            let registered: bool = redis::cmd("EXISTS")
                .arg(heartbeat_key(WORKER_ID))
                .query_async(&mut conn.clone())
                .await
                .unwrap_or(false);
            registered
        },
    )
    .await?;
    for chunk in workload.ballots.chunks(10_000) {
        let _: () = redis::cmd("RPUSH")
            .arg(STAGING_KEY)
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
    }

    let started = Instant::now();
    let _: () = redis::cmd("RENAME")
        .arg(STAGING_KEY)
        .arg(QUEUE_KEY)
        .query_async(&mut conn)
        .await?;
    wait_for("the queue to drain", Duration::from_secs(600), || async {
        let (queued, in_flight): (u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(QUEUE_KEY)
            .cmd("LLEN")
            .arg(processing_key(WORKER_ID))
            .query_async(&mut conn.clone())
            .await
            .unwrap_or((1, 1));
        queued == 0 && in_flight == 0
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();

    let peak_rss_kib = peak_rss_kib(pid)?;
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    let status = worker.wait().await?;
    if !status.success() {
        bail!("the worker exited with {status}");
    }
    verify(db_url, &workload.last).await?;
    Ok(Sample {
        seconds,
        peak_rss_kib,
    })
}

/// Where the worker's log goes: the file named by `BENCH_WORKER_LOG`
/// (appended to), else nowhere.
fn worker_log() -> anyhow::Result<std::process::Stdio> {
    match std::env::var_os("BENCH_WORKER_LOG") {
        Some(path) => Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .into()),
        None => Ok(std::process::Stdio::null()),
    }
}

/// Polls `done` every 2 ms.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

/// Every voter's row holds their last ballot, and the tally agrees.
async fn verify(db_url: &str, last: &HashMap<String, &'static str>) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(db_url).await?;
    let rows: HashMap<String, String> = sqlx::query_as("SELECT id, vote FROM votes")
        .fetch_all(&pool)
        .await?
        .into_iter()
        .collect();
    if rows.len() != last.len() {
        bail!("{} rows for {} voters", rows.len(), last.len());
    }
    if let Some((voter, vote)) = last
        .iter()
        .find(|(voter, vote)| rows.get(*voter).map(String::as_str) != Some(**vote))
    {
        bail!(
            "voter {voter} should hold {vote}, holds {:?}",
            rows.get(voter)
        );
    }
    let (kept, counted) = (
        result::tally::read_tally(&pool).await?,
        result::tally::count_votes(&pool).await?,
    );
    if kept != counted {
        bail!("vote_tally {kept:?} disagrees with counting votes {counted:?}");
    }
    Ok(())
}

fn write_report(options: &Options, results: &[Figures]) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|f| {
            let median = f.median();
            let all: Vec<u64> = f
                .samples
                .iter()
                .map(|s| f.per_second(*s).round() as u64)
                .collect();
            let peak_rss_kib = f.samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
            serde_json::json!({
                "name": f.name,
                "batch_size": f.batch_size,
                "ballots": f.ballots,
                "voters": f.voters,
                "seconds": (median.seconds * 1000.0).round() / 1000.0,
                "ballots_per_second": f.per_second(median).round() as u64,
                "ballots_per_second_each_run": all,
                "worker_peak_rss_mib": (peak_rss_kib as f64 / 102.4).round() / 10.0,
            })
        })
        .collect();
    let report = serde_json::json!({
        "benchmark": "worker drain",
        "command": format!(
            "cargo bench -p worker --bench drain -- --ballots {} --batch-size {} --repeat {}",
            options.ballots,
            options.batch_sizes.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            options.repeat
        ),
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "setup": {
            "runs_per_workload": options.repeat,
            "reported": "median run; peak RSS is the highest of the runs",
            "workers": 1,
            "postgres": "fsync on, synchronous_commit on",
            "redis": "appendonly yes, appendfsync always",
            "measured": "from the ballots appearing in `votes` until the queue and the processing list are empty (all committed)",
        },
        "runs": runs,
    });
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks");
    std::fs::create_dir_all(dir)?;
    let path = format!("{dir}/worker.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("figures written to docs/benchmarks/worker.json");
    Ok(())
}
