//! The result service's figures: end to end latency (a vote's POST to the
//! live update) and fan-out (a commit to the last of N open pages), read by
//! the [`crowd`] of cheap clients.

use std::time::{Duration, Instant};

use anyhow::Context;
use crowd::Crowd;
use serde_json::{Value, json};

use super::Run;
use super::broadcaster::BroadcasterProcess;
use super::procfs::{proc_cpu_seconds, proc_status_kib};
use super::report::percentiles;

/// POSTs a vote, waits for the live feed to count it, `--e2e-samples`
/// times. Samples are spaced like a person clicking, not back to back, so
/// each one is a vote arriving on its own.
pub async fn end_to_end(run: &Run<'_>) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let mut feed = seed::verify::Feed::connect(&run.stack.result_url).await?;
    let mut total = {
        let (a, b) = feed.next_tally(Duration::from_secs(5)).await?;
        a + b
    };
    let mut samples = Vec::with_capacity(run.args.e2e_samples);
    for _ in 0..run.args.e2e_samples {
        let t0 = Instant::now();
        let res = http
            .post(&run.stack.vote_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("vote=b")
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "vote answered {}", res.status());
        total += 1;
        feed.wait_until(Duration::from_secs(10), |a, b| a + b >= total)
            .await?;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(percentiles(&mut samples))
}

/// For each crowd size: commits a row by SQL, times until the last client
/// has the new tally; result's RSS and CPU meanwhile.
pub async fn result_fanout(run: &Run<'_>) -> anyhow::Result<Value> {
    let addr = crowd::feed_addr(&run.stack.result_url)?;
    let mut figures = serde_json::Map::new();
    for &size in &run.args.clients {
        let crowd = open_crowd(addr, size)
            .await
            .with_context(|| format!("{size} clients of result"))?;
        let cpu_before = proc_cpu_seconds(run.result);
        let wall = Instant::now();
        let mut samples = Vec::with_capacity(run.args.fanout_rounds);
        let mut total = run.stored().await?;
        for round in 0..run.args.fanout_rounds {
            total += 1;
            crowd.expect(total);
            let id = format!("fanout-{size}-{round}-{}", std::process::id());
            sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, 'a')")
                .bind(&id)
                .execute(&run.pool)
                .await?;
            let committed = Instant::now();
            samples.push(last_arrival_ms(&crowd, committed)?);
            tokio::time::sleep(ROUND_GAP).await;
        }
        let cpu = proc_cpu_seconds(run.result) - cpu_before;
        let rounds = run.args.fanout_rounds as f64;
        figures.insert(
            size.to_string(),
            json!({
                "commit_to_last_client_ms": percentiles(&mut samples),
                "result_rss_kib": proc_status_kib(run.result, "VmRSS"),
                "result_cpu_percent": 100.0 * cpu / wall.elapsed().as_secs_f64(),
                "result_cpu_us_per_broadcast_per_client":
                    cpu * 1e6 / rounds / size as f64,
            }),
        );
    }
    Ok(figures.into())
}

/// The floor for [`result_fanout`]: the same frames to the same number of
/// clients of the same crowd, from the bench's minimal broadcaster in a
/// process of its own; timed from the command to broadcast to the last
/// client's read.
pub async fn broadcast_floor(run: &Run<'_>) -> anyhow::Result<Value> {
    let mut figures = serde_json::Map::new();
    for &size in &run.args.clients {
        let mut broadcaster = tokio::task::block_in_place(BroadcasterProcess::start)?;
        let crowd = open_crowd(broadcaster.addr, size)
            .await
            .with_context(|| format!("{size} clients of the floor broadcaster"))?;
        let mut samples = Vec::with_capacity(run.args.fanout_rounds);
        for round in 1..=run.args.fanout_rounds as u64 {
            crowd.expect(round);
            let started = Instant::now();
            tokio::task::block_in_place(|| broadcaster.send(round))?;
            samples.push(last_arrival_ms(&crowd, started)?);
            tokio::time::sleep(ROUND_GAP).await;
        }
        figures.insert(
            size.to_string(),
            json!({ "send_to_last_client_ms": percentiles(&mut samples) }),
        );
    }
    Ok(figures.into())
}

/// Pause between rounds: each is a vote on its own (result coalesces
/// bursts into one read per 20 ms by design).
const ROUND_GAP: Duration = Duration::from_millis(100);

/// Opens a crowd of `size` clients off the async threads.
async fn open_crowd(addr: std::net::SocketAddr, size: usize) -> anyhow::Result<Crowd> {
    tokio::task::spawn_blocking(move || Crowd::connect(addr, size, Duration::from_secs(120)))
        .await?
}

/// Waits for every client of `crowd` to see the expected tally; how long
/// after `since` the last one did, in ms.
fn last_arrival_ms(crowd: &Crowd, since: Instant) -> anyhow::Result<f64> {
    let times = tokio::task::block_in_place(|| crowd.wait_all(Duration::from_secs(30)))?;
    let last = times.into_iter().max().unwrap_or(since);
    Ok(last.saturating_duration_since(since).as_secs_f64() * 1000.0)
}
