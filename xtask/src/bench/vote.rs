//! The vote service's figure: POST throughput and latency, driven by the
//! `seed` binary with the worker held (so the figure is vote's own).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::Run;
use crate::stack::signal;

/// Requests in flight at once, as the original seed's `ab -c 50`.
pub const CONCURRENCY: usize = 50;

/// Vote POST throughput and latency at [`CONCURRENCY`]. The worker is held
/// while the seed runs: on a 2-core machine it would otherwise share the
/// CPUs with the worker and Postgres as well as the seed. The queue is
/// drained right after.
pub async fn throughput(run: &Run<'_>) -> anyhow::Result<Value> {
    let before = run.stored().await?;
    signal(run.worker, "STOP").await?;
    let seed = seed_votes(
        run.bin_dir,
        &run.stack.vote_url,
        run.args.votes,
        CONCURRENCY,
    )
    .await;
    signal(run.worker, "CONT").await?;
    let seed = seed?;
    run.wait_for_rows(before + run.args.votes, Duration::from_secs(120))
        .await?;
    Ok(json!({
        "requests_per_second": seed["requests_per_second"],
        "p50_ms": seed["latency_ms"]["p50"],
        "p99_ms": seed["latency_ms"]["p99"],
        "failed": seed["failed"],
    }))
}

/// Posts `votes` through the vote service with the `seed` binary, split 2:1
/// like the default seed, `concurrency` at a time; returns its JSON report.
pub async fn seed_votes(
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
