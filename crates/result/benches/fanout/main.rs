//! How fast a committed vote reaches every open result page, what that
//! costs the result service, and what one tick's query costs on a big table.
//!
//! ```text
//! cargo bench -p result --bench fanout [-- --clients 1000,10000 --rounds 50 --rows 1000000,10000000]
//! ```
//!
//! Starts a Postgres of its own and the release `result` binary (so RSS and
//! CPU are the service's alone, read from `/proc/<pid>`), then:
//!
//! - **Fan-out.** Opens the first number of live-feed clients
//!   (the [`crowd`]: raw sockets read by one thread, so the clients cost
//!   little next to the service), then per round commits one new vote by
//!   plain SQL and times from the commit returning until the *last* client
//!   has received the new tally; every client's own latency is kept too.
//!   Then opens a crowd of the next size and repeats. Reported:
//!   p50/p99/max over rounds of the last-client latency, the same over all
//!   deliveries, and the service's RSS, peak RSS and CPU.
//! - **Tick query.** Bulk-loads 1M and then 10M votes (`INSERT … SELECT
//!   generate_series`: the tally trigger fires once per statement) and times
//!   `result::tally::TallyReader::read` — the query the poller runs each tick —
//!   against the contract's `GROUP BY`, checking they agree.
//!
//! Clients and service share this machine's cores, so the figures include
//! the clients' own (small) work. Figures go to stdout and
//! `docs/benchmarks/result.json`. Needs an open-files limit of clients + a
//! few hundred in this process and in the service (both raise their soft
//! limit to the hard limit; `ulimit -Hn` must allow it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod service;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::Parser;
use contract::Tally;
use crowd::Crowd;
use localstores::{PostgresOptions, PostgresServer};
use serde_json::json;
use sqlx::PgPool;

use service::{Service, cpu_seconds};

/// How long a round may take before it counts as missed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between rounds: each round is a vote on its own, not part of a
/// burst (bursts are coalesced into one read per 20 ms by design).
const ROUND_GAP: Duration = Duration::from_millis(100);

/// What to measure (flags, or the `BENCH_*` environment variables).
#[derive(clap::Parser, Debug)]
struct Options {
    /// Live-feed clients per fan-out run, ascending.
    #[arg(
        long,
        env = "BENCH_CLIENTS",
        value_delimiter = ',',
        default_value = "1000,10000"
    )]
    clients: Vec<usize>,
    /// Commits timed per fan-out run.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 50)]
    rounds: usize,
    /// Stored votes at which the tick query is timed, ascending.
    #[arg(
        long,
        env = "BENCH_ROWS",
        value_delimiter = ',',
        default_value = "1000000,10000000"
    )]
    rows: Vec<u64>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = Options::parse();
    options.clients.sort_unstable();
    options.rows.sort_unstable();
    let open_files = servicekit::limits::raise_open_files_limit();
    let needed = options.clients.last().copied().unwrap_or(0) as u64 + 500;
    if open_files.is_some_and(|limit| limit < needed) {
        bail!(
            "this benchmark needs {needed} open files, the limit is {open_files:?}: raise the hard limit (ulimit -Hn) first"
        );
    }
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load_average.trim());

    let postgres = PostgresServer::start(PostgresOptions::default()).await?;
    let admin = connect(&postgres.url("postgres")).await?;

    let fanout = fanout_runs(&postgres, &admin, &options).await?;
    let ticks = tick_runs(&postgres, &admin, &options).await?;

    let goals = goals(&fanout, &ticks);
    let report = json!({
        "benchmark": "result fan-out",
        "command": "cargo bench -p result --bench fanout",
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average_at_start": load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        },
        "setup": {
            "service": "release `result` binary, default settings (poll 1 s, LISTEN votes_changed)",
            "clients": "the crowd crate: raw sockets read by one thread of the bench process, same machine, loopback",
            "postgres": "own server, Unix socket, fsync off (commit latency is not measured)",
            "measured": "from the commit of one new vote returning to the bench until the last client received the new tally",
            "round_gap_ms": ROUND_GAP.as_millis() as u64,
            "cpu": "CPU time per round (one read, one broadcast to every client) of the service and of the bench's clients, from /proc/<pid>/stat",
            "rounds": options.rounds,
        },
        "fanout": fanout,
        "tick_query": ticks,
        "goals": goals,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        format!("{dir}/result.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    println!("figures written to docs/benchmarks/result.json");
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await?)
}

/// The fan-out runs, one per client count, sharing one service.
async fn fanout_runs(
    postgres: &PostgresServer,
    admin: &PgPool,
    options: &Options,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if options.clients.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("CREATE DATABASE fanout").execute(admin).await?;
    let url = postgres.url("fanout");
    let pool = connect(&url).await?;
    worker::schema::migrate(&pool).await?;

    let service = Service::start(&url).await?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], service.port).into();
    let mut runs = Vec::new();
    let mut votes = 0u64;
    let mut crowd = None;
    for &target in &options.clients {
        let started = Instant::now();
        // One crowd at a time: the previous one closes first.
        drop(crowd.take());
        let opened = tokio::task::spawn_blocking(move || {
            Crowd::connect(addr, target, Duration::from_secs(120))
        })
        .await??;
        let connect_seconds = started.elapsed().as_secs_f64();
        println!("{target} clients connected in {connect_seconds:.1} s");

        let cpu_before = service.cpu_seconds()?;
        let bench_before = cpu_seconds(std::process::id(), service.clock_ticks)?;
        let mut last_client = Vec::new();
        let mut deliveries = Vec::new();
        let mut missed = 0;
        for _ in 0..options.rounds {
            tokio::time::sleep(ROUND_GAP).await;
            votes += 1;
            opened.expect(votes);
            sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, 'a')")
                .bind(format!("voter{votes}"))
                .execute(&pool)
                .await?;
            let committed = Instant::now();
            match tokio::task::block_in_place(|| opened.wait_all(ROUND_TIMEOUT)) {
                Ok(times) => {
                    let ms =
                        |t: Instant| t.saturating_duration_since(committed).as_secs_f64() * 1e3;
                    last_client.push(times.iter().copied().map(ms).fold(0.0, f64::max));
                    deliveries.extend(times.into_iter().map(ms));
                }
                Err(e) => {
                    println!("round missed: {e:#}");
                    missed += 1;
                }
            }
        }
        let cpu = service.cpu_seconds()?;
        let bench_cpu = cpu_seconds(std::process::id(), service.clock_ticks)?;
        let per_round = |after: (f64, f64), before: (f64, f64)| {
            let rounds = options.rounds as f64;
            (
                round2(1000.0 * (after.0 - before.0) / rounds),
                round2(1000.0 * (after.1 - before.1) / rounds),
            )
        };
        let (user, system) = per_round(cpu, cpu_before);
        let (bench_user, bench_system) = per_round(bench_cpu, bench_before);
        let (rss, peak) = service.rss_kib()?;
        let served = result::tally::count_votes(&pool).await?;
        anyhow::ensure!(
            served == Tally { a: votes, b: 0 },
            "GROUP BY disagrees: {served:?}"
        );
        let run = json!({
            "clients": target,
            "rounds": options.rounds,
            "missed_rounds": missed,
            "connect_seconds": round2(connect_seconds),
            "commit_to_last_client_ms": percentiles(&mut last_client),
            "commit_to_each_client_ms": percentiles(&mut deliveries),
            "result_rss_mib": round2(rss as f64 / 1024.0),
            "result_peak_rss_mib": round2(peak as f64 / 1024.0),
            "result_cpu_ms_per_round": { "user": user, "system": system },
            "clients_cpu_ms_per_round": { "user": bench_user, "system": bench_system },
        });
        println!("{run}");
        runs.push(run);
        crowd = Some(opened);
    }

    // Graceful shutdown with everyone connected: each client gets a close frame.
    let started = Instant::now();
    service.stop().await?;
    let stop_seconds = started.elapsed().as_secs_f64();
    if let Some(crowd) = crowd {
        let _ = tokio::task::block_in_place(|| crowd.wait_closed(Duration::from_secs(10)));
        let closed = crowd.going_away();
        println!(
            "service stopped in {stop_seconds:.2} s; {closed} of {} clients got a close frame",
            crowd.size()
        );
        if let Some(last) = runs.last_mut() {
            last["shutdown_seconds"] = json!(round2(stop_seconds));
            last["clients_closed_with_a_close_frame"] = json!(closed);
        }
    }
    Ok(runs)
}

/// Tick query cost at each table size.
async fn tick_runs(
    postgres: &PostgresServer,
    admin: &PgPool,
    options: &Options,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if options.rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("CREATE DATABASE ticks").execute(admin).await?;
    let pool = connect(&postgres.url("ticks")).await?;
    worker::schema::migrate(&pool).await?;
    let mut loaded = 0u64;
    let mut runs = Vec::new();
    for &rows in &options.rows {
        let started = Instant::now();
        const CHUNK: u64 = 1_000_000;
        while loaded < rows {
            let n = CHUNK.min(rows - loaded);
            sqlx::query(
                "INSERT INTO votes (id, vote) \
                 SELECT 'v' || g, CASE WHEN g % 3 = 0 THEN 'b' ELSE 'a' END \
                 FROM generate_series($1::bigint + 1, $1::bigint + $2::bigint) g",
            )
            .bind(loaded as i64)
            .bind(n as i64)
            .execute(&pool)
            .await?;
            loaded += n;
        }
        let load_seconds = started.elapsed().as_secs_f64();
        sqlx::query("VACUUM ANALYZE votes").execute(&pool).await?;
        sqlx::query("VACUUM ANALYZE vote_tally")
            .execute(&pool)
            .await?;

        let mut tick = Vec::new();
        let mut tally = Tally::default();
        let mut reader = result::tally::TallyReader::new(result::tally::TallyReader::REPROBE_AFTER);
        for _ in 0..200 {
            let started = Instant::now();
            tally = reader.read(&pool).await?;
            tick.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut group_by = Vec::new();
        let mut counted = Tally::default();
        for _ in 0..3 {
            let started = Instant::now();
            counted = result::tally::count_votes(&pool).await?;
            group_by.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(
            tally == counted && tally.total() == rows,
            "tally {tally:?} vs GROUP BY {counted:?} at {rows} rows"
        );
        let run = json!({
            "votes": rows,
            "load_seconds": round2(load_seconds),
            "read_tally_ms": percentiles(&mut tick),
            "group_by_ms": percentiles(&mut group_by),
        });
        println!("{run}");
        runs.push(run);
    }
    Ok(runs)
}

fn goals(fanout: &[serde_json::Value], ticks: &[serde_json::Value]) -> serde_json::Value {
    let at = |runs: &[serde_json::Value], key: &str, value: u64| {
        runs.iter()
            .find(|r| r[key].as_u64() == Some(value))
            .cloned()
    };
    let fanout_10k = at(fanout, "clients", 10_000);
    let tick_10m = at(ticks, "votes", 10_000_000);
    json!({
        "p99_commit_to_last_client_at_10000_clients_ms_max_100": fanout_10k.as_ref()
            .and_then(|r| r["commit_to_last_client_ms"]["p99"].as_f64())
            .map(|p99| p99 <= 100.0),
        "result_rss_at_10000_clients_mib_max_100": fanout_10k.as_ref()
            .and_then(|r| r["result_peak_rss_mib"].as_f64())
            .map(|rss| rss < 100.0),
        "tick_at_10m_votes_ms_max_10": tick_10m.as_ref()
            .and_then(|r| r["read_tally_ms"]["p99"].as_f64())
            .map(|ms| ms < 10.0),
    })
}

/// p50, p99 and max of `values`, rounded to 0.01.
fn percentiles(values: &mut [f64]) -> serde_json::Value {
    if values.is_empty() {
        return json!(null);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
        round2(values[i])
    };
    json!({ "p50": at(0.50), "p99": at(0.99), "max": round2(values[values.len() - 1]), "n": values.len() })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
