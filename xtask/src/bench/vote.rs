//! The vote service's figure: POST throughput and latency, driven by the
//! `seed` binary with the worker held (so the figure is vote's own).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use contract::{Ballot, Vote, VoterId};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Run;
use super::procfs::{machine_busy_seconds, proc_cpu_seconds};
use super::report::percentiles;
use crate::stack::signal;

/// Requests in flight at once, as the original seed's `ab -c 50`.
pub const CONCURRENCY: usize = 50;

/// Vote POST throughput and latency at [`CONCURRENCY`]. The worker is held
/// while the seed runs: on a 2-core machine it would otherwise share the
/// CPUs with the worker and Postgres as well as the seed. The queue is
/// drained right after.
pub async fn throughput(run: &Run<'_>) -> anyhow::Result<Value> {
    let before = run.stored().await?;
    let redis = redis_pid(run).await?;
    signal(run.worker, "STOP").await?;
    let cpu_before = [
        proc_cpu_seconds(run.vote),
        proc_cpu_seconds(redis),
        machine_busy_seconds(),
    ];
    let seed = seed_votes(
        run.bin_dir,
        &run.stack.vote_url,
        run.args.votes,
        CONCURRENCY,
    )
    .await;
    let cpu_after = [
        proc_cpu_seconds(run.vote),
        proc_cpu_seconds(redis),
        machine_busy_seconds(),
    ];
    signal(run.worker, "CONT").await?;
    let seed = seed?;
    let per_request = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / run.args.votes as f64;
    run.wait_for_rows(before + run.args.votes, Duration::from_secs(120))
        .await?;
    Ok(json!({
        "requests_per_second": seed["requests_per_second"],
        "p50_ms": seed["latency_ms"]["p50"],
        "p99_ms": seed["latency_ms"]["p99"],
        "failed": seed["failed"],
        "cpu_us_per_request": {
            "vote": per_request(0),
            "redis": per_request(1),
            "machine": per_request(2),
        },
    }))
}

/// The HTTP floor for [`throughput`]: the same server stack
/// (`servicekit::http::serve`, the same limits) answering every request with
/// vote's own page as a static 200, driven by the same seed at the same
/// concurrency. It runs in this process; vote runs in its own.
pub async fn http_floor(run: &Run<'_>) -> anyhow::Result<Value> {
    let page = reqwest::get(&run.stack.vote_url).await?.bytes().await?;
    let router = axum::Router::new().route(
        "/",
        axum::routing::any(move || {
            let page = page.clone();
            async move { ([("content-type", "text/html; charset=utf-8")], page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let cpu_before = [proc_cpu_seconds(std::process::id()), machine_busy_seconds()];
    let server = tokio::spawn(servicekit::http::serve(
        listener,
        router,
        shutdown.clone(),
        servicekit::http::ServeOptions::default(),
    ));
    let seed = seed_votes(run.bin_dir, &url, run.args.votes, CONCURRENCY).await;
    let cpu_after = [proc_cpu_seconds(std::process::id()), machine_busy_seconds()];
    shutdown.cancel();
    server.await??;
    let seed = seed?;
    let per_request = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / run.args.votes as f64;
    Ok(json!({
        "requests_per_second": seed["requests_per_second"],
        "p50_ms": seed["latency_ms"]["p50"],
        "p99_ms": seed["latency_ms"]["p99"],
        // The server runs in this process, which does nothing else meanwhile.
        "cpu_us_per_request": { "server": per_request(0), "machine": per_request(1) },
    }))
}

/// The process id of the stack's Redis, as it tells it.
async fn redis_pid(run: &Run<'_>) -> anyhow::Result<u32> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut run.redis.clone())
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .context("INFO server names no process_id")
}

/// The Redis floor for [`throughput`]: the enqueue script alone, run by a
/// bare client (one multiplexed connection, as vote's) [`CONCURRENCY`] at a
/// time for as many ballots, with the worker held as for vote.
pub async fn redis_floor(run: &Run<'_>) -> anyhow::Result<Value> {
    let before = run.stored().await?;
    let n = run.args.votes;
    let next = Arc::new(AtomicU64::new(0));
    signal(run.worker, "STOP").await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, mut conn) = (next.clone(), run.redis.clone());
            let label = std::process::id();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let voter = VoterId::parse(format!("floor-{label}-{i}"))?;
                    let ballot = Ballot::new(voter, if i % 3 == 2 { Vote::B } else { Vote::A });
                    let t0 = Instant::now();
                    contract::queue::enqueue(&mut conn, &ballot).await?;
                    latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n as usize);
    let mut failed = None;
    for task in tasks {
        match task.await {
            Ok(Ok(mut done)) => latencies.append(&mut done),
            Ok(Err(e)) => failed = Some(e.context("the enqueue script failed")),
            Err(e) => failed = Some(e.into()),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    signal(run.worker, "CONT").await?;
    if let Some(e) = failed {
        return Err(e);
    }
    run.wait_for_rows(before + n, Duration::from_secs(120))
        .await?;
    let p = percentiles(&mut latencies);
    Ok(json!({
        "requests_per_second": n as f64 / seconds,
        "p50_ms": p["p50"],
        "p99_ms": p["p99"],
    }))
}

/// Posts `votes` through the vote service with the `seed` binary, split 2:1
/// like the default seed, `concurrency` at a time; returns its JSON report.
/// Fails if any vote failed.
pub async fn seed_votes(
    bin_dir: &Path,
    vote_url: &str,
    votes: u64,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let votes_a = votes * 2 / 3;
    let load = [
        "-a".to_owned(),
        votes_a.to_string(),
        "-b".to_owned(),
        (votes - votes_a).to_string(),
    ];
    let report = seed_report(bin_dir, vote_url, &load, concurrency).await?;
    anyhow::ensure!(
        report["failed"].as_u64() == Some(0),
        "the seed reported failures: {}",
        report["failures"]
    );
    Ok(report)
}

/// Runs the `seed` binary against `vote_url` with `load` (its count or
/// duration flags), `concurrency` requests at a time; returns its JSON
/// report whatever the answers were.
pub async fn seed_report(
    bin_dir: &Path,
    vote_url: &str,
    load: &[String],
    concurrency: usize,
) -> anyhow::Result<Value> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let report_file = std::env::temp_dir().join(format!(
        "seed-report-{}-{}.json",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let status = tokio::process::Command::new(bin_dir.join("seed"))
        .args(["--target", vote_url, "--progress", "none"])
        .args(["-c", &concurrency.to_string()])
        .args(load)
        .arg("--report-json")
        .arg(&report_file)
        .stdout(Stdio::null())
        .status()
        .await?;
    let report = std::fs::read(&report_file)
        .with_context(|| format!("the seed wrote no report (it exited with {status})"))?;
    let _ = std::fs::remove_file(&report_file);
    Ok(serde_json::from_slice(&report)?)
}
