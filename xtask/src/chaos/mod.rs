//! Chaos: the whole pipeline under faults, checked voter by voter.
//!
//! The promise under test is docs/architecture.md's: *every acknowledged ballot is
//! kept, and each voter's row ends as their latest one*, through worker
//! deaths and store crashes. A run:
//!
//! 1. starts Redis and Postgres ([`Stores`]; by default [`SingleNode`]:
//!    throwaway servers from the test harness on loopback TCP ports that
//!    survive restarts), `vote_replicas` vote processes and `workers`
//!    worker processes — the real binaries;
//! 2. has `voters` voters cast `ballots` ballots over HTTP, each voter's in
//!    order and each acknowledged (200) before the next, every ballot a
//!    change of mind ([`voters`]);
//! 3. meanwhile SIGKILLs workers (each started again after a random
//!    downtime, under its old id or a new one) and vote processes, and
//!    crashes Redis and Postgres, spread over the run ([`faults`]);
//! 4. once every voter is done, waits until the queue and every processing
//!    list are empty;
//! 5. reads every row of `votes` and judges it against what each voter was
//!    told ([`oracle`]: 0 lost, 0 stale, 0 extra), and checks that no
//!    ballot was dead-lettered and that the tally table agrees with the
//!    rows.
//!
//! **What is measured, and under which durability.** With Redis's
//! `appendfsync always` (the default here) Redis fsyncs each write before
//! answering it, so a SIGKILL loses no acknowledged ballot, and the run
//! must find none lost. With `everysec` (the compose file's setting) a
//! crash may lose up to about a second of acknowledged pushes; a run in
//! that mode reports what it lost rather than proving anything. Postgres
//! runs with `fsync` and `synchronous_commit` on, its defaults.
//!
//! The run's size and shape are a [`plan`]; the vote and worker processes
//! are a [`fleet`] of slots that can be killed and restarted; what a run
//! measured and how it is printed is its [`report`].
//!
//! `cargo xtask chaos` runs any size with release binaries;
//! `xtask/tests/chaos.rs` runs a CI-sized one with the debug binaries. Both
//! call [`run_single_node`].

pub mod faults;
pub mod feed;
pub mod fleet;
pub mod oracle;
pub mod plan;
pub mod report;
pub mod voters;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use contract::queue::QUEUE_KEY;
use fastrand::Rng;
use tokio::sync::watch;
use worker::queue::{DEAD_LETTER_KEY, PROCESSING_PREFIX};

pub use faults::{Fault, RedisFsync, SingleNode, Stores};
use fleet::{ResultService, Votes, WorkerSettings, Workers};
pub use oracle::Verdict;
pub use plan::Plan;
pub use report::{Ballots, Report};
use voters::{Counters, Manner, Posting};

/// A run against one Redis and one Postgres of our own, with the binaries
/// in `bin_dir`.
pub async fn run_single_node(plan: &Plan, bin_dir: &Path) -> anyhow::Result<Report> {
    let stores = SingleNode::start(plan.redis_fsync).await?;
    run(plan, bin_dir, stores).await
}

/// A run against `stores`, with the `vote` and `worker` binaries in
/// `bin_dir`. An error means the run could not be carried out (a service
/// or store would not start); a run that finds lost ballots returns a
/// report that did not pass.
pub async fn run<S: Stores>(plan: &Plan, bin_dir: &Path, stores: S) -> anyhow::Result<Report> {
    anyhow::ensure!(
        plan.voters <= plan.ballots,
        "--voters ({}) must not exceed --ballots ({}): each voter casts at least one",
        plan.voters,
        plan.ballots
    );
    let started = Instant::now();
    let seed = plan.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut rng = Rng::with_seed(seed);
    let log_dir = match &plan.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        // Kept unless the run passes.
        None => tempfile::Builder::new()
            .prefix("voting-chaos-")
            .tempdir()?
            .keep(),
    };
    let outcome = run_in(plan, bin_dir, stores, seed, &mut rng, &log_dir, started)
        .await
        .with_context(|| format!("the services' logs are in {}", log_dir.display()));
    match outcome {
        Ok(mut report) => {
            if report.passed() && plan.log_dir.is_none() {
                let _ = std::fs::remove_dir_all(&log_dir);
            } else {
                report.logs = Some(log_dir);
            }
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

async fn run_in<S: Stores>(
    plan: &Plan,
    bin_dir: &Path,
    stores: S,
    seed: u64,
    rng: &mut Rng,
    log_dir: &Path,
    started: Instant,
) -> anyhow::Result<Report> {
    let voters = voters::plan(plan.voters, plan.ballots, rng);
    let events = faults::schedule(
        faults::Counts {
            ballots: plan.ballots,
            worker_kills: plan.worker_kills,
            vote_kills: plan.vote_kills,
            redis_crashes: plan.redis_crashes,
            postgres_crashes: plan.postgres_crashes,
        },
        rng,
    );
    let redis_url = stores.redis_url();
    let database_url = stores.database_url();
    let durability = stores.durability();
    let store_env = stores.service_env();
    let result = match stores.watch_feed() {
        true => Some(ResultService::start(bin_dir, &database_url, log_dir).await?),
        false => None,
    };
    let feed = result.as_ref().map(|r| feed::watch(r.feed_url()));
    let workers = Workers::start(
        bin_dir,
        WorkerSettings {
            redis_url: redis_url.clone(),
            database_url: database_url.clone(),
            store_env: store_env.clone(),
            batch_size: plan.batch_size,
            heartbeat_seconds: plan.heartbeat_seconds,
        },
        plan.workers as usize,
        log_dir,
    )
    .await?;
    let votes = Votes::start(
        bin_dir,
        &redis_url,
        &store_env,
        plan.vote_replicas as usize,
        log_dir,
    )
    .await?;
    let endpoints = votes.endpoints();

    let counters = Arc::new(Counters::default());
    let (settled_tx, settled_rx) = watch::channel(0_u64);
    let (limit_tx, limit_rx) = watch::channel(faults::first_limit(&events));
    let mut driver = tokio::spawn(faults::drive(
        faults::Driver {
            workers,
            votes,
            stores,
            rng: rng.fork(),
            max_downtime: Duration::from_millis(plan.max_downtime_ms),
            fresh_id_share: plan.fresh_id_share,
            started,
            counters: counters.clone(),
        },
        events,
        settled_rx.clone(),
        limit_tx,
    ));
    let progress = (plan.progress_every_s > 0).then(|| {
        tokio::spawn(report_progress(
            Duration::from_secs(plan.progress_every_s),
            plan.ballots,
            settled_rx,
            counters.clone(),
            started,
        ))
    });

    let posting_started = Instant::now();
    let posting = voters::post_all(
        voters,
        endpoints,
        Manner {
            concurrency: plan.concurrency as usize,
            request_timeout: Duration::from_millis(plan.request_timeout_ms),
            give_up_after: Duration::from_secs(plan.give_up_after_s),
        },
        started,
        voters::Pace {
            settled: settled_tx,
            limit: limit_rx,
        },
        counters,
        rng,
    );
    tokio::pin!(posting);
    // A fault that cannot be carried out (a store that will not come back)
    // ends the run at once instead of leaving the voters retrying.
    let mut driven = None;
    let posting: Posting = loop {
        tokio::select! {
            posting = &mut posting => break posting?,
            outcome = &mut driver, if driven.is_none() => {
                driven = Some(outcome.context("the fault driver panicked")??);
            }
        }
    };
    let posting_took = posting_started.elapsed();
    let (driver, records) = match driven {
        Some(done) => done,
        None => driver.await.context("the fault driver panicked")??,
    };
    if let Some(progress) = progress {
        progress.abort();
    }

    // With replicas, the primary may have moved since the start.
    let redis_url = driver.stores.redis_url();
    let drain_started = Instant::now();
    wait_until_drained(&redis_url, Duration::from_secs(plan.drain_timeout_s)).await?;
    let drain = drain_started.elapsed();
    let dead_letters = list_length(&redis_url, DEAD_LETTER_KEY).await?;
    let (rows, tally_consistent) = read_rows(&database_url).await?;
    let verdict = oracle::judge(&posting.ledger, &rows);

    let mut stop_problems = driver.votes.stop().await;
    stop_problems.extend(driver.workers.stop().await);
    let feed_stood_still = match feed {
        Some((watcher, arrivals)) => {
            watcher.abort();
            records
                .iter()
                .filter(|r| r.fault == Fault::CrashPostgres)
                .map(|r| feed::resumed_after(&arrivals.times(), started + r.at))
                .collect()
        }
        None => Vec::new(),
    };
    if let Some(result) = result {
        stop_problems.extend(result.stop().await);
    }
    drop(driver.stores);

    // How long after each Redis crash ballots were acknowledged again: how
    // long vote refused (or could not confirm) them.
    let mut acked_at: Vec<Instant> = posting
        .acks
        .iter()
        .map(|(_, done)| started + *done)
        .collect();
    acked_at.sort();
    let voting_resumed_after = records
        .iter()
        .filter(|r| r.fault == Fault::CrashRedis)
        .filter_map(|r| feed::resumed_after(&acked_at, started + r.at))
        .collect();
    Ok(Report {
        plan: plan.clone(),
        seed,
        durability,
        ballots: Ballots {
            planned: plan.ballots,
            attempts: posting.attempts(),
            acked: posting.acked(),
            unknown: posting
                .unknown
                .iter()
                .map(|(cause, n)| (cause.to_string(), *n))
                .collect(),
            gave_up_voters: posting.gave_up_voters,
            abandoned: posting.abandoned_ballots,
            voting_resumed_after,
            feed_stood_still,
        },
        faults: records,
        posting: posting_took,
        drain,
        total: started.elapsed(),
        dead_letters,
        tally_consistent,
        verdict,
        stop_problems,
        logs: None,
    })
}

/// Prints a progress line every `every` until aborted.
async fn report_progress(
    every: Duration,
    ballots: u64,
    settled: watch::Receiver<u64>,
    counters: Arc<Counters>,
    started: Instant,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        println!(
            "chaos: {:>5.0} s  {} of {} ballots settled, {} POSTs acknowledged, {} unknown, {} faults",
            started.elapsed().as_secs_f64(),
            *settled.borrow(),
            ballots,
            counters.acked.load(Ordering::Relaxed),
            counters.unknown.load(Ordering::Relaxed),
            counters.faults.load(Ordering::Relaxed),
        );
    }
}

/// KEYS[1] the queue; ARGV[1] the pattern of processing lists. Returns the
/// ballots in both together, read in one atomic step: a batch moving
/// between them (a claim, a takeover) is never missed.
const QUEUED_LUA: &str = r#"
local n = redis.call('LLEN', KEYS[1])
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  n = n + redis.call('LLEN', key)
end
return n
"#;

/// Waits until `votes` and every processing list are empty.
async fn wait_until_drained(redis_url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url).context("the Redis URL")?;
    let script = redis::Script::new(QUEUED_LUA);
    let started = Instant::now();
    let mut last = String::from("nothing read yet");
    while started.elapsed() < limit {
        match queued(&client, &script).await {
            Ok(0) => return Ok(()),
            Ok(n) => last = format!("{n} ballots queued or in processing lists"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the queue did not drain within {limit:?}: {last}")
}

async fn queued(client: &redis::Client, script: &redis::Script) -> redis::RedisResult<u64> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    script
        .key(QUEUE_KEY)
        .arg(format!("{PROCESSING_PREFIX}*"))
        .invoke_async(&mut conn)
        .await
}

async fn list_length(redis_url: &str, key: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(redis_url).context("the Redis URL")?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    Ok(redis::cmd("LLEN").arg(key).query_async(&mut conn).await?)
}

/// Every row of `votes` (id → choice), and whether the tally table agrees
/// with them.
async fn read_rows(database_url: &str) -> anyhow::Result<(HashMap<String, String>, bool)> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(database_url)
        .await
        .context("connecting to Postgres to read the rows")?;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, vote FROM votes")
        .fetch_all(&pool)
        .await
        .context("reading the votes")?;
    let counted = result::tally::count_votes(&pool).await?;
    let kept = result::tally::read_tally(&pool).await?;
    pool.close().await;
    Ok((rows.into_iter().collect(), counted == kept))
}
