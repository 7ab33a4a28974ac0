//! The memory figures of `xtask bench`: whether steady traffic grows a
//! service's memory while nothing scrapes `/metrics`, what one open
//! connection costs, and what a load leaves behind.
//!
//! Measured once per bench, on a stack of their own (fresh processes, so
//! "idle" is a service that has served nothing yet) plus a `hits` process
//! on the stack's Redis. For each service, one function per figure:
//!
//! - [`growth_per_million`]: RSS growth per million requests (ballots for
//!   the worker) after a warm-up, with nothing scraping. The exporter's
//!   upkeep keeps it at about zero; without it, 20 bytes per request.
//! - [`connection_cost`] / [`live_client_cost`]: bytes per connection held
//!   open, from bursts of connections held open together: idle after one
//!   answered request, and (the worst a client can make one cost) midway
//!   through a request head just under the 16 KiB limit; and per live page
//!   for result. The connection caps are sized by these.
//! - [`churn`]: hits only, the burst of more connections than the
//!   cap, each answered and closed.
//! - [`rss_a_minute_after`]: RSS one minute after the service's last load
//!   ended; the goal is at most twice its idle figure. The peak is the
//!   process's high-water mark (`VmHWM`).

mod load;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::{proc_status_kib, queue_backlog, seed_votes, wait_for_rows};
use crate::stack::{Logs, Stack, StackOptions};

/// How much load the memory figures use.
#[derive(clap::Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Requests (ballots for the worker) per service for the growth figure,
    /// after a warm-up of a fifth as many.
    #[arg(long, default_value_t = 500_000)]
    steady_requests: u64,
    /// Connections held open together per burst. At most the connection
    /// cap (`MAX_CONNECTIONS`, 2,048 by default): the rest would wait
    /// unserved and the figure would be wrong.
    #[arg(long, default_value_t = 2_000)]
    burst_connections: usize,
    /// Bursts per service and kind of connection.
    #[arg(long, default_value_t = 5)]
    burst_rounds: usize,
    /// Connections made to hits in one go, each answered and closed; more
    /// than the connection cap, so the rest wait their turn.
    #[arg(long, default_value_t = 10_000)]
    churn_connections: usize,
    /// How long after its last load a service's RSS is taken again.
    #[arg(long, default_value_t = 60)]
    after_load_seconds: u64,
}

/// Votes in flight at once while the seed drives steady load.
const CONCURRENCY: usize = 50;
/// Time for a service to finish what a phase left it (and for the
/// allocator's background purge) before RSS is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Before and after a growth phase: also long enough for the metrics
/// upkeep to have folded the phase's histogram samples.
const GROWTH_SETTLE: Duration =
    Duration::from_secs(servicekit::metric::METRICS_UPKEEP_INTERVAL.as_secs() + 2);
/// Request-head bytes sent by the connections of the worst-case burst: just
/// under the server's 16 KiB limit.
const LONG_HEAD_BYTES: usize = 15 * 1024;

/// Starts a stack, measures every memory figure, stops it.
pub async fn measure(args: &MemoryArgs, bin_dir: &Path, logs: &Path) -> anyhow::Result<Value> {
    // Thousands of connections held open at once need as many files.
    servicekit::limits::raise_open_files_limit();
    let options = StackOptions {
        bin_dir: bin_dir.to_path_buf(),
        vote_port: crate::stack::free_port_or_any(0)?,
        result_port: crate::stack::free_port_or_any(0)?,
        redis_url: None,
        database_url: None,
        redis_port: 0,
        postgres_port: 0,
        logs: Logs::Files(logs.to_path_buf()),
        log_level: "warn".into(),
        env: Vec::new(),
    };
    let stack = Stack::start(&options).await?;
    let measured = match load::Hits::start(bin_dir, &stack.redis_url, logs).await {
        Ok(hits) => {
            let measured = measure_stack(args, bin_dir, &stack, &hits).await;
            hits.stop().await;
            measured
        }
        Err(e) => Err(e),
    };
    let problems = stack.stop().await;
    let figures = measured?;
    anyhow::ensure!(
        problems.is_empty(),
        "stack did not stop cleanly: {problems:?}"
    );
    Ok(figures)
}

async fn measure_stack(
    args: &MemoryArgs,
    bin_dir: &Path,
    stack: &Stack,
    hits: &load::Hits,
) -> anyhow::Result<Value> {
    let pid = |s: &'static str| stack.pid(s).with_context(|| format!("{s} is not running"));
    let (vote, worker, result) = (pid("vote")?, pid("worker")?, pid("result")?);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&stack.database_url)
        .await?;
    let redis = redis::Client::open(stack.redis_url.as_str())?;
    let conn = redis.get_multiplexed_async_connection().await?;
    let n = args.steady_requests;

    tokio::time::sleep(SETTLE).await;
    let idle = [vote, worker, result, hits.pid].map(rss_kib);

    println!("bench: memory: steady load, nothing scraping /metrics");
    let vote_growth = growth_per_million(vote, n, |count| async move {
        seed_votes(bin_dir, &stack.vote_url, count, CONCURRENCY)
            .await
            .map(drop)
    })
    .await?;
    let result_growth = growth_per_million(result, n, |count| {
        load::get_requests(&stack.result_url, count)
    })
    .await?;
    let hits_growth =
        growth_per_million(hits.pid, n, |count| load::get_requests(&hits.url, count)).await?;
    let mut batch = 0;
    let worker_growth = growth_per_million(worker, n, |count| {
        batch += 1;
        let (pool, mut conn) = (&pool, conn.clone());
        async move { drain_ballots(pool, &mut conn, batch, count).await }
    })
    .await?;
    let worker_ended = Instant::now();

    println!("bench: memory: bursts of open connections");
    let (burst, rounds) = (args.burst_connections, args.burst_rounds);
    let vote_idle_connection = connection_cost(vote, &stack.vote_url, burst, rounds, 0).await?;
    let vote_long_head =
        connection_cost(vote, &stack.vote_url, burst, rounds, LONG_HEAD_BYTES).await?;
    let vote_ended = Instant::now();
    let result_client = live_client_cost(result, &stack.result_url, burst, rounds).await?;
    let result_ended = Instant::now();
    let hits_idle_connection = connection_cost(hits.pid, &hits.url, burst, rounds, 0).await?;
    let hits_long_head =
        connection_cost(hits.pid, &hits.url, burst, rounds, LONG_HEAD_BYTES).await?;
    let hits_churn = churn(hits.pid, &hits.url, args.churn_connections).await?;
    let hits_ended = Instant::now();

    println!(
        "bench: memory: waiting {} s after each service's last load",
        args.after_load_seconds
    );
    let wait = Duration::from_secs(args.after_load_seconds);
    let (vote_after, worker_after, result_after, hits_after) = tokio::join!(
        rss_a_minute_after(vote, vote_ended, wait),
        rss_a_minute_after(worker, worker_ended, wait),
        rss_a_minute_after(result, result_ended, wait),
        rss_a_minute_after(hits.pid, hits_ended, wait),
    );

    let service = |idle: Option<u64>, pid: u32, after: Option<u64>, growth: Value, extra: Value| {
        let mut figures = json!({
            "idle_rss_kib": idle,
            "peak_rss_kib": proc_status_kib(pid, "VmHWM"),
            "rss_a_minute_after_load_kib": after,
            "after_over_idle": after.zip(idle).map(|(a, i)| a as f64 / i as f64),
            "growth": growth,
        });
        if let (Some(figures), Some(extra)) = (figures.as_object_mut(), extra.as_object()) {
            figures.extend(extra.clone());
        }
        figures
    };
    Ok(json!({
        "settings": {
            "steady_requests": n,
            "burst_connections": args.burst_connections,
            "burst_rounds": args.burst_rounds,
            "long_head_bytes": LONG_HEAD_BYTES,
            "churn_connections": args.churn_connections,
            "after_load_seconds": args.after_load_seconds,
        },
        "vote": service(idle[0], vote, vote_after, vote_growth, json!({
            "bytes_per_idle_connection": vote_idle_connection,
            "bytes_per_long_head_connection": vote_long_head,
        })),
        "worker": service(idle[1], worker, worker_after, worker_growth, json!({})),
        "result": service(idle[2], result, result_after, result_growth,
            json!({ "bytes_per_live_client": result_client })),
        "hits": service(idle[3], hits.pid, hits_after, hits_growth, json!({
            "bytes_per_idle_connection": hits_idle_connection,
            "bytes_per_long_head_connection": hits_long_head,
            "churn_peak_rss_kib": hits_churn,
        })),
    }))
}

/// The table rows of the memory figures (none if they were skipped).
pub fn markdown_rows(memory: &Value) -> String {
    let mib = |v: &Value| {
        v.as_f64()
            .map_or("–".to_owned(), |kib| format!("{:.1}", kib / 1024.0))
    };
    let kib = |v: &Value| {
        v.as_f64()
            .map_or("–".to_owned(), |bytes| format!("{:.1}", bytes / 1024.0))
    };
    let settings = &memory["settings"];
    let mut out = String::new();
    for service in ["vote", "worker", "result", "hits"] {
        let m = &memory[service];
        if m.is_null() {
            continue;
        }
        let unit = if service == "worker" {
            "ballots"
        } else {
            "requests"
        };
        out.push_str(&format!(
            "| {service}: RSS growth per million {unit} after {} (nothing scraping /metrics) | {} MiB | ≈ 0 |\n",
            m["growth"]["requests"],
            m["growth"]["kib_per_million"]
                .as_f64()
                .map_or("–".into(), |k| format!("{:.2}", k / 1024.0)),
        ));
        out.push_str(&format!(
            "| {service}: RSS idle / peak / {} s after load | {} / {} / {} MiB | after ≤ 2 × idle |\n",
            settings["after_load_seconds"],
            mib(&m["idle_rss_kib"]),
            mib(&m["peak_rss_kib"]),
            mib(&m["rss_a_minute_after_load_kib"]),
        ));
        let burst = &settings["burst_connections"];
        if !m["bytes_per_idle_connection"].is_null() {
            out.push_str(&format!(
                "| {service}: memory per open connection, idle / mid-way through a {} KiB head (bursts of {burst}, median) | {} / {} KiB | |\n",
                settings["long_head_bytes"].as_u64().unwrap_or(0) / 1024,
                kib(&m["bytes_per_idle_connection"]),
                kib(&m["bytes_per_long_head_connection"]),
            ));
        }
        if !m["churn_peak_rss_kib"].is_null() {
            out.push_str(&format!(
                "| {service}: peak RSS over a burst of {} connections, each answered and closed | {} MiB | < 128 MiB |\n",
                settings["churn_connections"],
                mib(&m["churn_peak_rss_kib"]),
            ));
        }
        if !m["bytes_per_live_client"].is_null() {
            out.push_str(&format!(
                "| {service}: memory per live page (bursts of {burst} WebSockets, median) | {} KiB | |\n",
                kib(&m["bytes_per_live_client"]),
            ));
        }
    }
    out
}

/// RSS growth of `pid` per million units of `drive`: a warm-up of `n / 5`
/// (buffers, pools and caches reach their working size), then `n`, with
/// RSS read before and after. Nothing scrapes `/metrics` meanwhile.
async fn growth_per_million<F, Fut>(pid: u32, n: u64, mut drive: F) -> anyhow::Result<Value>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    drive(n / 5).await?;
    tokio::time::sleep(GROWTH_SETTLE).await;
    let before = rss_kib(pid).context("process gone")?;
    let started = Instant::now();
    drive(n).await?;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(GROWTH_SETTLE).await;
    let after = rss_kib(pid).context("process gone")?;
    let growth = (after as f64 - before as f64) * 1e6 / n as f64;
    Ok(json!({
        "requests": n,
        "per_second": n as f64 / seconds,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_million": growth,
    }))
}

/// Bytes one open HTTP connection costs `pid`: `rounds` bursts of `n`
/// connections held open together; the median over the rounds of (RSS with
/// all open − RSS before) / n. With `head_bytes` 0 each connection has had
/// one `GET /` answered and sits idle; otherwise each has sent that many
/// bytes of a request head and not finished it.
async fn connection_cost(
    pid: u32,
    url: &str,
    n: usize,
    rounds: usize,
    head_bytes: usize,
) -> anyhow::Result<Value> {
    let addr = load::socket_addr(url)?;
    let mut costs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let before = rss_kib(pid).context("process gone")?;
        let open = load::open_connections(addr, n, head_bytes).await?;
        let during = rss_kib(pid).context("process gone")?;
        drop(open);
        costs.push((during as f64 - before as f64) * 1024.0 / n as f64);
        tokio::time::sleep(SETTLE).await;
    }
    Ok(median(costs))
}

/// Bytes one live page (an open WebSocket on `/ws`) costs the result
/// service, measured like [`connection_cost`].
async fn live_client_cost(
    pid: u32,
    result_url: &str,
    n: usize,
    rounds: usize,
) -> anyhow::Result<Value> {
    let mut costs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let before = rss_kib(pid).context("process gone")?;
        let addr = crowd::feed_addr(result_url)?;
        let crowd = tokio::task::spawn_blocking(move || {
            crowd::Crowd::connect(addr, n, Duration::from_secs(120))
        })
        .await??;
        let during = rss_kib(pid).context("process gone")?;
        drop(crowd);
        costs.push((during as f64 - before as f64) * 1024.0 / n as f64);
        tokio::time::sleep(SETTLE).await;
    }
    Ok(median(costs))
}

/// Peak RSS of hits (KiB) over a burst of `n` connections, more than its
/// connection cap, each answered once and closed: those beyond the cap wait
/// in the listen backlog, so the peak stays what the cap allows.
async fn churn(pid: u32, url: &str, n: usize) -> anyhow::Result<Option<u64>> {
    let addr = load::socket_addr(url)?;
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = tokio::spawn({
        let peak = peak.clone();
        async move {
            while let Some(rss) = rss_kib(pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let outcome = load::answered_and_closed(addr, n).await;
    sampling.abort();
    outcome?;
    Ok(Some(peak.load(Ordering::Relaxed)).filter(|&kib| kib > 0))
}

/// RSS of `pid` once `wait` has passed since `ended`.
async fn rss_a_minute_after(pid: u32, ended: Instant, wait: Duration) -> Option<u64> {
    tokio::time::sleep_until((ended + wait).into()).await;
    rss_kib(pid)
}

/// Queues `n` ballots of new voters and waits until the worker has stored
/// them. `batch` keeps each call's voters apart.
async fn drain_ballots(
    pool: &sqlx::PgPool,
    conn: &mut redis::aio::MultiplexedConnection,
    batch: u64,
    n: u64,
) -> anyhow::Result<()> {
    let stored = result::tally::read_tally(pool).await?.total();
    let queued = queue_backlog(conn, &format!("memory-{batch}"), n).await?;
    wait_for_rows(pool, conn, stored + queued, Duration::from_secs(600)).await
}

/// RSS of a process in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS")
}

fn median(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len() / 2)
        .map_or(Value::Null, |v| json!(v))
}
