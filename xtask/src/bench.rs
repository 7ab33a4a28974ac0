//! `xtask bench`: measures the native stack and writes
//! `docs/benchmarks.md` and `docs/benchmarks.json`.
//!
//! Each run starts a fresh stack (release binaries, throwaway Redis with
//! AOF and Postgres with fsync on, all on loopback) and measures, in order:
//! idle memory; vote throughput and latency at concurrency 50, driven by the
//! `seed` binary (with the worker held meanwhile, so the figure is vote's);
//! the worker's drain rate for a pre-queued backlog; the end to end latency
//! from a vote's POST to the result page's WebSocket update; the result
//! service's fan-out (commit → last of N clients) at each crowd
//! size; and memory after load. Every figure reported is the median of the
//! runs. Then, once, on a stack of their own, the memory figures of
//! [`memory`]: growth under steady load with nothing scraping `/metrics`,
//! the cost of an open connection, and RSS a minute after load. Numbers are
//! what was measured — nothing here asserts thresholds.

mod memory;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use contract::{Ballot, Vote, VoterId};
use serde_json::{Value, json};

use crate::stack::{Logs, Stack, StackOptions, signal};

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
    /// Sequential votes timed from POST to the live update.
    #[arg(long, default_value_t = 100)]
    e2e_samples: usize,
    /// Crowd sizes for the fan-out measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    clients: Vec<usize>,
    /// Commits timed per crowd size.
    #[arg(long, default_value_t = 20)]
    fanout_rounds: usize,
    /// Use the binaries in this directory instead of building release ones.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where to write benchmarks.md and benchmarks.json.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
}

pub async fn bench(args: BenchArgs, root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => crate::build_release(&["vote", "worker", "result", "hits", "seed"]).await?,
    };
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
            // Room for the largest crowd, even while the sockets of an
            // earlier measurement are still being closed.
            env: vec![(
                "MAX_CLIENTS".into(),
                (args.clients.iter().max().unwrap_or(&0) + 1_000).to_string(),
            )],
        };
        let stack = Stack::start(&options).await?;
        let measured = measure(&args, &bin_dir, &stack).await;
        let problems = stack.stop().await;
        let figures = measured?;
        anyhow::ensure!(
            problems.is_empty(),
            "stack did not stop cleanly: {problems:?}"
        );
        println!("bench: run {run}: {figures}");
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
        "machine": machine(),
        "runs": args.runs,
        "settings": {
            "seed_votes": args.votes,
            "seed_concurrency": 50,
            "backlog": args.backlog,
            "e2e_samples": args.e2e_samples,
            "fanout_rounds": args.fanout_rounds,
        },
        "median": median_of(&runs),
        "each_run": runs,
        "memory": memory,
        "binary_bytes": binary_sizes(&bin_dir),
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&args.out)?;
    let json_path = args.out.join("benchmarks.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")?;
    let md_path = args.out.join("benchmarks.md");
    std::fs::write(&md_path, markdown(&report))?;
    println!(
        "bench: wrote {} and {} in {:.0} s",
        md_path.display(),
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One run's figures.
async fn measure(args: &BenchArgs, bin_dir: &Path, stack: &Stack) -> anyhow::Result<Value> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&stack.database_url)
        .await?;
    let redis = redis::Client::open(stack.redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    // A missing pid must not become `kill -STOP 0`, which would stop us too.
    let pid = |s: &'static str| {
        stack
            .pid(s)
            .map(|pid| (s, pid))
            .with_context(|| format!("{s} is not running"))
    };
    let pids = [pid("vote")?, pid("worker")?, pid("result")?];

    // Idle: ready, settled, nothing happening.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss: Value = pids
        .iter()
        .map(|(name, pid)| (name.to_string(), json!(proc_status_kib(*pid, "VmRSS"))))
        .collect::<serde_json::Map<_, _>>()
        .into();

    // Vote throughput, driven by the seed binary. The worker is held while
    // the seed runs, so the figure is the vote service's own (on a 2-core
    // machine it would otherwise share the CPUs with the worker and
    // Postgres as well as the seed); the queue is drained right after.
    signal(pids[1].1, "STOP").await?;
    let seed = seed_votes(bin_dir, &stack.vote_url, args.votes, 50).await;
    signal(pids[1].1, "CONT").await?;
    let seed = seed?;
    let mut stored = args.votes;
    wait_for_rows(&pool, &mut conn, stored, Duration::from_secs(120)).await?;

    // Worker drain: hold the worker, queue a backlog, let it go.
    signal(pids[1].1, "STOP").await?;
    let queued = queue_backlog(&mut conn, "drain", args.backlog).await;
    signal(pids[1].1, "CONT").await?;
    let queued = queued?;
    let drain_started = Instant::now();
    stored += queued;
    wait_for_rows(&pool, &mut conn, stored, Duration::from_secs(300)).await?;
    let drain_secs = drain_started.elapsed().as_secs_f64();

    // End to end: POST a vote, wait for the live feed to count it. Samples
    // are spaced like a person clicking, not back to back, so each one is
    // a vote arriving on its own.
    let http = reqwest::Client::new();
    let mut feed = seed::verify::Feed::connect(&stack.result_url).await?;
    let mut total = {
        let (a, b) = feed.next_tally(Duration::from_secs(5)).await?;
        a + b
    };
    let mut e2e_ms = Vec::with_capacity(args.e2e_samples);
    for _ in 0..args.e2e_samples {
        let t0 = Instant::now();
        let res = http
            .post(&stack.vote_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("vote=b")
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "vote answered {}", res.status());
        total += 1;
        feed.wait_until(Duration::from_secs(10), |a, b| a + b >= total)
            .await?;
        e2e_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(feed);

    // Fan-out: commit a row by SQL, time until the last client has it.
    let mut fanout = serde_json::Map::new();
    for &size in &args.clients {
        let mut crowd = seed::crowd::Crowd::connect(&stack.result_url, size).await?;
        let cpu_before = proc_cpu_seconds(pids[2].1);
        let wall = Instant::now();
        let mut samples = Vec::with_capacity(args.fanout_rounds);
        for round in 0..args.fanout_rounds {
            let id = format!("fanout-{size}-{round}-{}", std::process::id());
            sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, 'a')")
                .bind(&id)
                .execute(&pool)
                .await?;
            let committed = Instant::now();
            total += 1;
            let took = crowd
                .all_see(total, committed, Duration::from_secs(30))
                .await?;
            samples.push(took.as_secs_f64() * 1000.0);
        }
        let cpu = proc_cpu_seconds(pids[2].1) - cpu_before;
        fanout.insert(
            size.to_string(),
            json!({
                "commit_to_last_client_ms": percentiles(&mut samples),
                "result_rss_kib": proc_status_kib(pids[2].1, "VmRSS"),
                "result_cpu_percent": 100.0 * cpu / wall.elapsed().as_secs_f64(),
            }),
        );
        crowd.close().await;
    }

    let peak_rss: Value = pids
        .iter()
        .map(|(name, pid)| (name.to_string(), json!(proc_status_kib(*pid, "VmHWM"))))
        .collect::<serde_json::Map<_, _>>()
        .into();

    Ok(json!({
        "vote": {
            "requests_per_second": seed["requests_per_second"],
            "p50_ms": seed["latency_ms"]["p50"],
            "p99_ms": seed["latency_ms"]["p99"],
            "failed": seed["failed"],
        },
        "worker": {
            "backlog": queued,
            "drain_seconds": drain_secs,
            "ballots_per_second": queued as f64 / drain_secs,
        },
        "end_to_end_ms": percentiles(&mut e2e_ms),
        "fanout": fanout,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": peak_rss,
    }))
}

/// Posts `votes` through the vote service with the `seed` binary, split 2:1
/// like the default seed, `concurrency` at a time; returns its JSON report.
async fn seed_votes(
    bin_dir: &Path,
    vote_url: &str,
    votes: u64,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let report_file = std::env::temp_dir().join(format!("seed-report-{}.json", std::process::id()));
    let votes_a = votes * 2 / 3;
    let status = tokio::process::Command::new(bin_dir.join("seed"))
        .args(["--target", vote_url, "--progress", "none"])
        .args(["-c", &concurrency.to_string()])
        .args(["-a", &votes_a.to_string()])
        .args(["-b", &(votes - votes_a).to_string()])
        .arg("--report-json")
        .arg(&report_file)
        .stdout(Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "the seed reported failures");
    let report = serde_json::from_slice(&std::fs::read(&report_file)?)?;
    let _ = std::fs::remove_file(&report_file);
    Ok(report)
}

/// Queues `n` ballots of distinct voters (named after `label`, so calls with
/// different labels add voters) with increasing `seq`, as the vote service
/// would, in pipelined chunks. Returns how many were queued.
async fn queue_backlog(
    conn: &mut redis::aio::MultiplexedConnection,
    label: &str,
    n: u64,
) -> anyhow::Result<u64> {
    let run = std::process::id();
    let mut queued = 0;
    while queued < n {
        let chunk = (n - queued).min(5_000);
        let ballots: Vec<String> = (queued..queued + chunk)
            .map(|i| {
                let voter = VoterId::parse(format!("bench-{run}-{label}-{i}"))?;
                let vote = if i % 3 == 2 { Vote::B } else { Vote::A };
                let seq = i64::try_from(i + 1)?;
                Ok(Ballot {
                    seq: Some(seq),
                    ..Ballot::new(voter, vote)
                }
                .to_json())
            })
            .collect::<anyhow::Result<_>>()?;
        let _: () = redis::cmd("RPUSH")
            .arg(contract::queue::QUEUE_KEY)
            .arg(ballots)
            .query_async(conn)
            .await?;
        queued += chunk;
    }
    Ok(queued)
}

/// Waits until the queue is empty and `votes` holds `rows` rows.
async fn wait_for_rows(
    pool: &sqlx::PgPool,
    conn: &mut redis::aio::MultiplexedConnection,
    rows: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let queued: u64 = redis::cmd("LLEN")
            .arg(contract::queue::QUEUE_KEY)
            .query_async(conn)
            .await?;
        let tally = result::tally::read_tally(pool).await?;
        if queued == 0 && tally.total() >= rows {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "after {limit:?}: {queued} queued, {} stored, {rows} expected",
                tally.total()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User plus system CPU time of a process, in seconds.
fn proc_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// p50, p99 and max of `samples` (milliseconds).
fn percentiles(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    json!({ "p50": at(0.50), "p99": at(0.99), "max": at(1.0), "samples": samples.len() })
}

/// The per-field median of several runs' figures (non-numbers from the
/// first run).
fn median_of(runs: &[Value]) -> Value {
    fn go(values: &[&Value]) -> Value {
        match values.first() {
            Some(Value::Object(first)) => first
                .keys()
                .map(|k| {
                    let children: Vec<&Value> = values.iter().map(|v| &v[k.as_str()]).collect();
                    (k.clone(), go(&children))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Some(Value::Number(_)) => {
                let mut nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                nums.sort_by(f64::total_cmp);
                json!(nums[nums.len() / 2])
            }
            Some(other) => (*other).clone(),
            None => Value::Null,
        }
    }
    go(&runs.iter().collect::<Vec<_>>())
}

fn binary_sizes(bin_dir: &Path) -> Value {
    ["vote", "worker", "result", "hits", "seed"]
        .iter()
        .map(|b| {
            let size = std::fs::metadata(bin_dir.join(b)).map(|m| m.len()).ok();
            (b.to_string(), json!(size))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What the numbers were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "rustc": rustc_version(),
    })
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn markdown(report: &Value) -> String {
    let m = &report["median"];
    let f = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let mib = |v: &Value| {
        v.as_f64()
            .map_or("–".to_owned(), |kib| format!("{:.1}", kib / 1024.0))
    };
    let machine = &report["machine"];
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench` on {} cores ({}), {} GiB RAM, Linux {}, {}. \
         Each figure is the median of {} runs on a fresh native stack (release builds; \
         Redis with AOF fsynced every second as in the compose file, Postgres with fsync on; loopback only). Numbers are what was \
         measured, not targets.\n\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
        report["runs"],
    ));
    out.push_str("| figure | measured | goal |\n| --- | --- | --- |\n");
    out.push_str(&format!(
        "| vote: POST throughput at c=50 (seed, {} votes; worker held meanwhile) | {} req/s | ≥ 14,000 |\n",
        report["settings"]["seed_votes"],
        m["vote"]["requests_per_second"]
            .as_f64()
            .map_or("–".into(), |x| format!("{x:.0}"))
    ));
    out.push_str(&format!(
        "| vote: latency p50 / p99 | {} / {} ms | p99 < 10 ms |\n",
        f(&m["vote"]["p50_ms"]),
        f(&m["vote"]["p99_ms"])
    ));
    out.push_str(&format!(
        "| worker: drain of {} queued ballots | {} ballots/s | ≥ 50,000 |\n",
        report["settings"]["backlog"],
        m["worker"]["ballots_per_second"]
            .as_f64()
            .map_or("–".into(), |x| format!("{x:.0}"))
    ));
    out.push_str(&format!(
        "| end to end: POST → result WebSocket update, p50 / p99 | {} / {} ms | |\n",
        f(&m["end_to_end_ms"]["p50"]),
        f(&m["end_to_end_ms"]["p99"])
    ));
    if let Some(fanout) = m["fanout"].as_object() {
        for (size, v) in fanout {
            out.push_str(&format!(
                "| result: commit → last of {size} clients, p50 / p99 / max | {} / {} / {} ms | p99 ≤ 100 ms |\n",
                f(&v["commit_to_last_client_ms"]["p50"]),
                f(&v["commit_to_last_client_ms"]["p99"]),
                f(&v["commit_to_last_client_ms"]["max"]),
            ));
            out.push_str(&format!(
                "| result: RSS / CPU with {size} clients | {} MiB / {}% | RSS < 100 MB |\n",
                mib(&v["result_rss_kib"]),
                f(&v["result_cpu_percent"]),
            ));
        }
    }
    for service in ["vote", "worker", "result"] {
        out.push_str(&format!(
            "| {service}: RSS idle / peak | {} / {} MiB | idle < 30 MB |\n",
            mib(&m["idle_rss_kib"][service]),
            mib(&m["peak_rss_kib"][service]),
        ));
    }
    out.push_str(&memory::markdown_rows(&report["memory"]));
    if let Some(sizes) = report["binary_bytes"].as_object() {
        for (bin, size) in sizes {
            out.push_str(&format!(
                "| {bin}: release binary size | {} MiB | |\n",
                size.as_f64()
                    .map_or("–".into(), |b| format!("{:.1}", b / 1024.0 / 1024.0))
            ));
        }
    }
    out.push_str(&format!(
        "\nThe whole benchmark took {:.0} s. Raw figures of every run: \
         [benchmarks.json](benchmarks.json).\n",
        report["total_seconds"].as_f64().unwrap_or(0.0)
    ));
    out
}
