//! The faults — worker and vote SIGKILLs, store crashes: when they strike,
//! what they do, and the stores they strike.
//!
//! [`schedule`] spreads each kind of fault over the run by progress — the
//! *i*-th of *n* falls at a random point of the *i*-th *n*-th of the
//! ballots, between 3 % and 97 % of them. [`drive`] waits for each point
//! and injects the fault, one at a time: a killed worker or a crashed store
//! is started again before the next fault strikes. It also paces the
//! voters, who may not run past a fault that has not struck yet, so every
//! fault lands while ballots flow, whatever the machine's speed.
//!
//! The stores sit behind [`Stores`], the seam for other fault drivers.
//! [`SingleNode`] is one Redis and one Postgres, crashed with SIGKILL and
//! restarted on the same data and port. A replicated implementation (Redis
//! Sentinel, Patroni) plugs in by killing the current primary and letting
//! the failover happen instead; the voters, the process kills and the
//! oracle stay as they are.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use fastrand::Rng;
use localstores::{PostgresOptions, PostgresServer, RedisOptions, RedisServer};
use tokio::sync::watch;
use worker::queue::processing_key;

use super::fleet::{Votes, Workers};
use super::voters::Counters;
use crate::stack::free_port_or_any;

/// How long a crashed Postgres may refuse to start again (its orphaned
/// backends must exit first) before the run gives up.
const POSTGRES_RESTART_WITHIN: Duration = Duration::from_secs(60);

/// Ballots the voters may start after a fault strikes, whatever the next
/// fault's point (see [`drive`]).
pub const FLOW_DURING_FAULT: u64 = 100;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL one worker process, then start it again.
    KillWorker,
    /// SIGKILL one vote process, requests in flight and all, then start it
    /// again on its port.
    KillVote,
    /// Take Redis down hard and bring it back.
    CrashRedis,
    /// Take Postgres down hard and bring it back.
    CrashPostgres,
}

/// A fault and when it strikes: once `at` ballots are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub at: u64,
    pub fault: Fault,
}

/// How many of each fault, over how many ballots.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub ballots: u64,
    pub worker_kills: u32,
    pub vote_kills: u32,
    pub redis_crashes: u32,
    pub postgres_crashes: u32,
}

/// Every fault of the run, in the order they strike.
pub fn schedule(counts: Counts, rng: &mut Rng) -> Vec<Event> {
    let mut events = Vec::new();
    for (fault, n) in [
        (Fault::KillWorker, counts.worker_kills),
        (Fault::KillVote, counts.vote_kills),
        (Fault::CrashRedis, counts.redis_crashes),
        (Fault::CrashPostgres, counts.postgres_crashes),
    ] {
        for i in 0..n {
            let share = 0.03 + 0.94 * (f64::from(i) + rng.f64()) / f64::from(n);
            events.push(Event {
                at: (share * counts.ballots as f64) as u64,
                fault,
            });
        }
    }
    events.sort_by_key(|e| (e.at, e.fault));
    events
}

/// What one injected fault did.
#[derive(Debug, Clone)]
pub struct Record {
    pub fault: Fault,
    /// Ballots settled when it struck.
    pub at_ballot: u64,
    /// When it struck, since the run started.
    pub at: Duration,
    /// From the kill until the process or store was started again (and,
    /// for a store, serving).
    pub took: Duration,
    /// For a worker kill: whether it held a batch in its processing list.
    pub mid_batch: Option<bool>,
    /// For a worker kill: restarted under a new id.
    pub fresh_id: bool,
}

/// The data stores of a run, and how to crash them. Implementations decide
/// what a crash is (a SIGKILL and restart, a primary's death and a
/// failover); each returns once the store serves again.
pub trait Stores: Send + 'static {
    /// Where vote and the workers find Redis, and where the run reads the
    /// queue (with replicas: the current primary).
    fn redis_url(&self) -> String;
    /// Where the workers find Postgres.
    fn database_url(&self) -> String;
    /// What durability the run measures, in words, for the report.
    fn durability(&self) -> String;
    /// More environment for vote and the workers (Sentinel settings);
    /// none for one Redis at [`redis_url`](Self::redis_url).
    fn service_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether the run also starts a result process and measures how long
    /// its live feed stands still after each Postgres crash.
    fn watch_feed(&self) -> bool {
        false
    }
    /// Crashes Redis; it stays down for `downtime`, then comes back.
    fn crash_redis(
        &mut self,
        downtime: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Crashes Postgres; it stays down for `downtime`, then comes back.
    fn crash_postgres(
        &mut self,
        downtime: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How Redis persists the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisFsync {
    /// AOF, fsync before every acknowledgement: a crash loses no
    /// acknowledged write.
    Always,
    /// AOF, fsync once a second (the compose file's setting): a crash may
    /// lose the last second of writes.
    Everysec,
    /// No persistence: a crash loses the whole queue. Shows what the check
    /// catches.
    Off,
}

/// One Redis and one Postgres of our own on loopback TCP ports, crashed with
/// SIGKILL and started again on the same port and data.
pub struct SingleNode {
    redis: RedisServer,
    postgres: PostgresServer,
    fsync: RedisFsync,
}

impl SingleNode {
    /// Starts Redis (persistence per `fsync`) and Postgres (`fsync` and
    /// `synchronous_commit` on, its defaults).
    pub async fn start(fsync: RedisFsync) -> anyhow::Result<SingleNode> {
        let redis = RedisServer::start(RedisOptions {
            tcp_port: Some(free_port_or_any(0)?),
            appendonly: fsync != RedisFsync::Off,
            fsync_everysec: fsync == RedisFsync::Everysec,
        })
        .await
        .context("starting redis-server")?;
        let postgres = PostgresServer::start(PostgresOptions {
            tcp_port: Some(free_port_or_any(0)?),
            fsync: true,
        })
        .await
        .context("starting postgres")?;
        Ok(SingleNode {
            redis,
            postgres,
            fsync,
        })
    }
}

impl Stores for SingleNode {
    fn redis_url(&self) -> String {
        self.redis.url(0)
    }

    fn database_url(&self) -> String {
        self.postgres.url("postgres")
    }

    fn durability(&self) -> String {
        let redis = match self.fsync {
            RedisFsync::Always => "Redis AOF with appendfsync always",
            RedisFsync::Everysec => "Redis AOF with appendfsync everysec",
            RedisFsync::Off => "Redis without persistence",
        };
        format!("{redis}; Postgres with fsync and synchronous_commit on; crashes are SIGKILL")
    }

    async fn crash_redis(&mut self, downtime: Duration) -> anyhow::Result<()> {
        self.redis.kill();
        tokio::time::sleep(downtime).await;
        self.redis
            .start_again()
            .await
            .context("starting Redis again after a crash")
    }

    async fn crash_postgres(&mut self, downtime: Duration) -> anyhow::Result<()> {
        self.postgres.kill();
        tokio::time::sleep(downtime).await;
        // The killed postmaster's backends exit when they notice; until
        // then a new postmaster refuses to start on the same data.
        let started = Instant::now();
        loop {
            match self.postgres.start_again().await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() >= POSTGRES_RESTART_WITHIN => {
                    return Err(e.context("starting Postgres again after a crash"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// What the fault driver needs besides the schedule.
pub struct Driver<S: Stores> {
    pub workers: Workers,
    pub votes: Votes,
    pub stores: S,
    pub rng: Rng,
    /// Each fault's downtime is random, up to this.
    pub max_downtime: Duration,
    /// Share of worker restarts under a new id.
    pub fresh_id_share: f64,
    /// The run's start, for the records' times.
    pub started: Instant,
    pub counters: Arc<Counters>,
}

/// The first pace limit for the voters: the first fault's point.
pub fn first_limit(events: &[Event]) -> u64 {
    events.first().map_or(u64::MAX, |e| e.at)
}

/// Injects each event once `settled` reaches its point; returns the
/// driver (its processes and stores still running) and what each fault
/// did.
///
/// `limit` paces the voters: they start no ballot once `settled` has
/// reached it. It starts at the first fault's point and moves to the next
/// one as each fault strikes, so the voters post on *during* a fault but
/// never run past a fault that has not struck yet: every fault lands while
/// ballots flow, however slow the faults (a Postgres crash recovery) are
/// next to the posting. At least [`FLOW_DURING_FAULT`] more ballots are
/// allowed after each strike, even past the next fault's point (which then
/// strikes right after), so there are always ballots trying to get through
/// a fault: without them, how long voting or the feed stood still would
/// measure the pacing, not the store.
pub async fn drive<S: Stores>(
    mut driver: Driver<S>,
    events: Vec<Event>,
    mut settled: watch::Receiver<u64>,
    limit: watch::Sender<u64>,
) -> anyhow::Result<(Driver<S>, Vec<Record>)> {
    let mut records = Vec::with_capacity(events.len());
    for (i, &event) in events.iter().enumerate() {
        // The voters hold the sender until they are done, and they settle
        // every ballot: every point is reached.
        let at_ballot = *settled
            .wait_for(|&n| n >= event.at)
            .await
            .context("the voters stopped before the faults were done")?;
        let next = events.get(i + 1).map_or(u64::MAX, |e| e.at);
        limit.send_replace(next.max(at_ballot.saturating_add(FLOW_DURING_FAULT)));
        let at = driver.started.elapsed();
        let struck = Instant::now();
        let downtime = driver.max_downtime.mul_f64(driver.rng.f64());
        let mut record = Record {
            fault: event.fault,
            at_ballot,
            at,
            took: Duration::ZERO,
            mid_batch: None,
            fresh_id: false,
        };
        match event.fault {
            Fault::KillWorker => {
                let slot = driver.rng.usize(..driver.workers.len());
                let id = driver.workers.kill(slot).await?;
                record.mid_batch = batch_in_flight(&driver.stores.redis_url(), &id).await;
                tokio::time::sleep(downtime).await;
                record.fresh_id = driver.rng.f64() < driver.fresh_id_share;
                driver.workers.restart(slot, record.fresh_id)?;
            }
            Fault::KillVote => {
                let slot = driver.rng.usize(..driver.votes.len());
                driver.votes.kill(slot).await?;
                tokio::time::sleep(downtime).await;
                driver.votes.restart(slot).await?;
            }
            Fault::CrashRedis => driver.stores.crash_redis(downtime).await?,
            Fault::CrashPostgres => driver.stores.crash_postgres(downtime).await?,
        }
        record.took = struck.elapsed();
        records.push(record);
        driver.counters.faults.fetch_add(1, Ordering::Relaxed);
    }
    Ok((driver, records))
}

/// Whether worker `id` left ballots in its processing list (None if Redis
/// could not say).
async fn batch_in_flight(redis_url: &str, id: &str) -> Option<bool> {
    let redis = redis::Client::open(redis_url).ok()?;
    let mut conn = redis.get_multiplexed_async_connection().await.ok()?;
    let held: u64 = redis::cmd("LLEN")
        .arg(processing_key(id))
        .query_async(&mut conn)
        .await
        .ok()?;
    Some(held > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_spread_over_the_run_in_order() {
        let counts = Counts {
            ballots: 10_000,
            worker_kills: 20,
            vote_kills: 4,
            redis_crashes: 3,
            postgres_crashes: 3,
        };
        let events = schedule(counts, &mut Rng::with_seed(1));
        assert_eq!(events.len(), 30);
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(events.iter().all(|e| (300..=9_700).contains(&e.at)));
        for (fault, n) in [
            (Fault::KillWorker, 20),
            (Fault::KillVote, 4),
            (Fault::CrashRedis, 3),
            (Fault::CrashPostgres, 3),
        ] {
            let at: Vec<u64> = events
                .iter()
                .filter(|e| e.fault == fault)
                .map(|e| e.at)
                .collect();
            assert_eq!(at.len(), n);
            // One in each n-th of the run.
            for (i, &point) in at.iter().enumerate() {
                let share = (point as f64 / 10_000.0 - 0.03) / 0.94;
                assert!(
                    share >= i as f64 / n as f64 - 1e-9 && share < (i + 1) as f64 / n as f64,
                    "{fault:?} #{i} at {point}"
                );
            }
        }
    }
}
