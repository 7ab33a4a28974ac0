//! Chaos: the whole pipeline under faults, checked voter by voter.
//!
//! The promise under test is the README's: *every acknowledged ballot is
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
//! `cargo xtask chaos` runs any size with release binaries;
//! `xtask/tests/chaos.rs` runs a CI-sized one with the debug binaries. Both
//! call [`run_single_node`].

pub mod faults;
pub mod fleet;
pub mod oracle;
pub mod voters;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::queue::{DEAD_LETTER_KEY, PROCESSING_PREFIX, QUEUE_KEY};
use fastrand::Rng;
use tokio::sync::watch;

pub use faults::{Fault, RedisFsync, SingleNode, Stores};
use fleet::{Votes, WorkerSettings, Workers};
pub use oracle::Verdict;
use voters::{Counters, Manner, Posting};

/// The size and shape of a run. Every field is a flag of `cargo xtask
/// chaos`; the defaults are the CI run's.
#[derive(clap::Args, Debug, Clone)]
pub struct Plan {
    /// Ballots to cast in all: one per voter, the rest changes of mind.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ballots: u64,
    /// Voters casting them (at most `--ballots`).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub voters: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// vote processes; each request goes to one of them at random.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub vote_replicas: u32,
    /// Requests in flight at once (each for a different voter).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub concurrency: u32,
    /// Worker SIGKILLs, spread over the run.
    #[arg(long, default_value_t = 20)]
    pub worker_kills: u32,
    /// vote SIGKILLs, spread over the run: requests in flight get no
    /// answer, though their ballot may have been queued.
    #[arg(long, default_value_t = 5)]
    pub vote_kills: u32,
    /// Redis crash-restarts, spread over the run.
    #[arg(long, default_value_t = 3)]
    pub redis_crashes: u32,
    /// Postgres crash-restarts, spread over the run.
    #[arg(long, default_value_t = 3)]
    pub postgres_crashes: u32,
    /// Longest a killed worker or crashed store stays down before it is
    /// started again, in ms (each fault draws a downtime up to this).
    #[arg(long, default_value_t = 500)]
    pub max_downtime_ms: u64,
    /// Share of worker restarts under a new id: their batch is then taken
    /// back by a live worker once the old heartbeat lapses. The others
    /// restart under their old id and resume their batch themselves.
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    pub fresh_id_share: f64,
    /// How Redis persists the queue. Only `always` promises that a crash
    /// loses no acknowledged ballot.
    #[arg(long, value_enum, default_value_t = RedisFsync::Always)]
    pub redis_fsync: RedisFsync,
    /// The workers' BATCH_SIZE.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,
    /// The workers' HEARTBEAT_SECONDS: how soon a batch left under an
    /// abandoned id is taken back.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_seconds: u64,
    /// Longest one POST may take, in ms; a slower one is an unknown outcome.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// A voter whose ballot is still unacknowledged after this many seconds
    /// of retrying gives up and casts nothing more.
    #[arg(long, default_value_t = 120)]
    pub give_up_after_s: u64,
    /// Longest wait for the queue to drain after the last ballot, in seconds.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_s: u64,
    /// Seed for every random choice: voters' ids and plans, fault points,
    /// targets and downtimes (random if not given). Timing still differs
    /// between runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the services' logs in this folder (default: a temporary one,
    /// removed after a run that passes).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Print a progress line every this many seconds (0: never).
    #[arg(long, default_value_t = 10)]
    pub progress_every_s: u64,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let share: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    /// The seed used (the plan's, or the one drawn).
    pub seed: u64,
    /// The durability the run measured, in words.
    pub durability: String,
    pub ballots: Ballots,
    pub faults: Vec<faults::Record>,
    /// From the first ballot to the last voter done.
    pub posting: Duration,
    /// From the last voter done to an empty queue and processing lists.
    pub drain: Duration,
    /// The whole run, start-up and shutdown included.
    pub total: Duration,
    /// Entries in `votes:dead` (none of our ballots may land there).
    pub dead_letters: u64,
    /// `vote_tally` agrees with `SELECT vote, COUNT(id) … GROUP BY vote`.
    pub tally_consistent: bool,
    pub verdict: Verdict,
    /// Services that did not stop cleanly on SIGTERM at the end.
    pub stop_problems: Vec<String>,
    /// Where the services' logs are (kept after a failed run).
    pub logs: Option<PathBuf>,
}

/// What the voters did, in numbers.
#[derive(Debug, Clone, Default)]
pub struct Ballots {
    pub planned: u64,
    pub attempts: u64,
    pub acked: u64,
    /// Attempts of unknown outcome, by cause.
    pub unknown: BTreeMap<String, u64>,
    pub gave_up_voters: u64,
    pub abandoned: u64,
    /// For each Redis crash: from the crash until the first ballot sent
    /// after it was acknowledged (how long voting stood still).
    pub voting_resumed_after: Vec<Duration>,
}

impl Report {
    /// 0 lost, 0 stale, 0 extra, nothing dead-lettered, the tally right.
    pub fn passed(&self) -> bool {
        self.verdict.passed() && self.dead_letters == 0 && self.tally_consistent
    }

    /// How many faults of `kind` were injected.
    pub fn count(&self, kind: Fault) -> usize {
        self.faults.iter().filter(|r| r.fault == kind).count()
    }

    /// Worker kills that left a batch in the victim's processing list.
    pub fn kills_mid_batch(&self) -> usize {
        self.faults
            .iter()
            .filter(|r| r.fault == Fault::KillWorker && r.mid_batch == Some(true))
            .count()
    }

    /// `cargo xtask chaos` flags that repeat this run's plan and seed.
    pub fn command(&self) -> String {
        let p = &self.plan;
        format!(
            "cargo xtask chaos --ballots {} --voters {} --workers {} --vote-replicas {} \
             --concurrency {} --worker-kills {} --vote-kills {} --redis-crashes {} \
             --postgres-crashes {} \
             --max-downtime-ms {} --fresh-id-share {} --redis-fsync {} --batch-size {} \
             --heartbeat-seconds {} --seed {}",
            p.ballots,
            p.voters,
            p.workers,
            p.vote_replicas,
            p.concurrency,
            p.worker_kills,
            p.vote_kills,
            p.redis_crashes,
            p.postgres_crashes,
            p.max_downtime_ms,
            p.fresh_id_share,
            match p.redis_fsync {
                RedisFsync::Always => "always",
                RedisFsync::Everysec => "everysec",
                RedisFsync::Off => "off",
            },
            p.batch_size,
            p.heartbeat_seconds,
            self.seed
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        let b = &self.ballots;
        writeln!(f, "chaos run: {}", self.command())?;
        writeln!(f, "  stores      {}", self.durability)?;
        writeln!(
            f,
            "  services    {} workers (BATCH_SIZE {}, HEARTBEAT_SECONDS {}), {} vote processes, \
             {} requests in flight",
            p.workers, p.batch_size, p.heartbeat_seconds, p.vote_replicas, p.concurrency
        )?;
        let unknown: Vec<String> = b.unknown.iter().map(|(c, n)| format!("{n} {c}")).collect();
        writeln!(
            f,
            "  ballots     {} planned from {} voters; {} POSTs: {} acknowledged, {} unknown outcome{}",
            b.planned,
            p.voters,
            b.attempts,
            b.acked,
            b.attempts - b.acked,
            if unknown.is_empty() {
                String::new()
            } else {
                format!(" ({})", unknown.join(", "))
            }
        )?;
        if b.gave_up_voters > 0 {
            writeln!(
                f,
                "              {} voters gave up, {} ballots never cast",
                b.gave_up_voters, b.abandoned
            )?;
        }
        let kills: Vec<&faults::Record> = self
            .faults
            .iter()
            .filter(|r| r.fault == Fault::KillWorker)
            .collect();
        let fresh = kills.iter().filter(|r| r.fresh_id).count();
        writeln!(
            f,
            "  faults      {} worker SIGKILLs ({} with a batch in flight, {} restarted under a new id), \
             {} vote SIGKILLs, {} Redis crash-restarts, {} Postgres crash-restarts",
            kills.len(),
            self.kills_mid_batch(),
            fresh,
            self.count(Fault::KillVote),
            self.count(Fault::CrashRedis),
            self.count(Fault::CrashPostgres)
        )?;
        for (kind, what) in [
            (Fault::CrashRedis, "Redis down and back"),
            (Fault::CrashPostgres, "Postgres down and back"),
        ] {
            let took: Vec<Duration> = self
                .faults
                .iter()
                .filter(|r| r.fault == kind)
                .map(|r| r.took)
                .collect();
            if !took.is_empty() {
                writeln!(f, "              {what}: {}", spread(&took))?;
            }
        }
        if !b.voting_resumed_after.is_empty() {
            writeln!(
                f,
                "              voting stood still after a Redis crash: {}",
                spread(&b.voting_resumed_after)
            )?;
        }
        writeln!(
            f,
            "  time        posting {}, drain {}, whole run {}",
            secs(self.posting),
            secs(self.drain),
            secs(self.total)
        )?;
        writeln!(
            f,
            "  checks      dead letters {}, tally table {}",
            self.dead_letters,
            if self.tally_consistent {
                "agrees with the rows"
            } else {
                "DISAGREES with the rows"
            }
        )?;
        for problem in &self.stop_problems {
            writeln!(f, "  stop        {problem}")?;
        }
        if let Some(logs) = &self.logs {
            writeln!(f, "  logs        {}", logs.display())?;
        }
        write!(
            f,
            "  verdict     {}: {}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.verdict
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `p50 0.4 s, max 0.9 s` over `values`.
fn spread(values: &[Duration]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort();
    let p50 = sorted[(sorted.len() - 1) / 2];
    let max = sorted[sorted.len() - 1];
    format!("p50 {}, max {}", secs(p50), secs(max))
}

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
    let workers = Workers::start(
        bin_dir,
        WorkerSettings {
            redis_url: redis_url.clone(),
            database_url: database_url.clone(),
            batch_size: plan.batch_size,
            heartbeat_seconds: plan.heartbeat_seconds,
        },
        plan.workers as usize,
        log_dir,
    )
    .await?;
    let votes = Votes::start(bin_dir, &redis_url, plan.vote_replicas as usize, log_dir).await?;
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

    let drain_started = Instant::now();
    wait_until_drained(&redis_url, Duration::from_secs(plan.drain_timeout_s)).await?;
    let drain = drain_started.elapsed();
    let dead_letters = list_length(&redis_url, DEAD_LETTER_KEY).await?;
    let (rows, tally_consistent) = read_rows(&database_url).await?;
    let verdict = oracle::judge(&posting.ledger, &rows);

    let mut stop_problems = driver.votes.stop().await;
    stop_problems.extend(driver.workers.stop().await);
    drop(driver.stores);

    let voting_resumed_after = records
        .iter()
        .filter(|r| r.fault == Fault::CrashRedis)
        .filter_map(|r| {
            posting
                .acks
                .iter()
                .filter(|(sent, _)| *sent >= r.at)
                .map(|(_, done)| *done - r.at)
                .min()
        })
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
    let counted = common::db::count_votes(&pool).await?;
    let kept = common::db::read_tally(&pool).await?;
    pool.close().await;
    Ok((rows.into_iter().collect(), counted == kept))
}
