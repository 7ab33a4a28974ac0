//! The worker's figure: how fast it drains a backlog into Postgres. This is
//! the one place the drain rate is measured.

use std::time::{Duration, Instant};

use anyhow::bail;
use contract::{Ballot, Vote, VoterId};
use serde_json::{Value, json};

use super::Run;
use crate::stack::signal;

/// Holds the worker, queues `--backlog` ballots of new voters, lets it go,
/// and times until the queue is empty and every row is stored.
pub async fn worker_drain(run: &Run<'_>) -> anyhow::Result<Value> {
    let before = run.stored().await?;
    let mut conn = run.redis.clone();
    signal(run.worker, "STOP").await?;
    let queued = queue_backlog(&mut conn, "drain", run.args.backlog).await;
    signal(run.worker, "CONT").await?;
    let queued = queued?;
    let started = Instant::now();
    run.wait_for_rows(before + queued, Duration::from_secs(300))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "backlog": queued,
        "drain_seconds": seconds,
        "ballots_per_second": queued as f64 / seconds,
    }))
}

/// The floor for [`worker_drain`]: the same number of rows of new voters
/// upserted into the same table by the worker's own statement, one
/// statement (one durable commit) per batch of the worker's batch size, in
/// sequence — with no Redis, no parsing, no acknowledgement.
pub async fn drain_floor(run: &Run<'_>) -> anyhow::Result<Value> {
    let n = run.args.backlog;
    let batch = u64::from(run.args.worker_batch_size.unwrap_or(DEFAULT_BATCH_SIZE));
    let mut ballots = backlog_ballots("floor", 0..n)?;
    // The worker writes each batch sorted by voter id.
    ballots.sort_by(|x, y| x.voter_id.as_str().cmp(y.voter_id.as_str()));
    let started = Instant::now();
    for chunk in ballots.chunks(batch as usize) {
        let ids: Vec<&str> = chunk.iter().map(|b| b.voter_id.as_str()).collect();
        let votes: Vec<&str> = chunk.iter().map(|b| b.vote.as_str()).collect();
        let seqs: Vec<Option<i64>> = chunk.iter().map(|b| b.seq).collect();
        sqlx::query(worker::store::UPSERT)
            .bind(&ids)
            .bind(&votes)
            .bind(&seqs)
            .execute(&run.pool)
            .await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "rows": n,
        "batch_size": batch,
        "seconds": seconds,
        "rows_per_second": n as f64 / seconds,
    }))
}

/// The worker's `BATCH_SIZE` when `--worker-batch-size` is not given.
const DEFAULT_BATCH_SIZE: u32 = 1000;

/// Queues `n` ballots of distinct voters (named after `label`, so calls with
/// different labels add voters) with increasing `seq`, as the vote service
/// would, in pipelined chunks. Returns how many were queued.
pub async fn queue_backlog(
    conn: &mut redis::aio::MultiplexedConnection,
    label: &str,
    n: u64,
) -> anyhow::Result<u64> {
    let mut queued = 0;
    while queued < n {
        let chunk = (n - queued).min(5_000);
        let ballots: Vec<String> = backlog_ballots(label, queued..queued + chunk)?
            .iter()
            .map(Ballot::to_json)
            .collect();
        let _: () = redis::cmd("RPUSH")
            .arg(contract::queue::QUEUE_KEY)
            .arg(ballots)
            .query_async(conn)
            .await?;
        queued += chunk;
    }
    Ok(queued)
}

/// Ballots `range` of a backlog named `label`: one new voter each, two `a`
/// to one `b`, `seq` counting up from 1.
pub fn backlog_ballots(label: &str, range: std::ops::Range<u64>) -> anyhow::Result<Vec<Ballot>> {
    let run = std::process::id();
    range
        .map(|i| {
            let voter = VoterId::parse(format!("bench-{run}-{label}-{i}"))?;
            let vote = if i % 3 == 2 { Vote::B } else { Vote::A };
            Ok(Ballot {
                seq: Some(i64::try_from(i + 1)?),
                ..Ballot::new(voter, vote)
            })
        })
        .collect()
}

/// Waits until the queue is empty and `votes` holds `rows` rows.
pub async fn wait_for_rows(
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
