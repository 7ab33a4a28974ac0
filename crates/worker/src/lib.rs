//! The worker: takes ballots off the Redis list `votes` and stores each
//! voter's latest choice in the Postgres table `votes`.
//!
//! It is the middle of the pipeline (vote → Redis → **worker** → Postgres →
//! result) and the only writer of our schema, which it creates itself
//! ([`schema`]). Its promises:
//!
//! - **Nothing is lost.** A ballot leaves Redis only after its row is
//!   committed: batches wait in a processing list owned by this worker
//!   until Postgres has them (see [`queue`]). A worker killed mid-batch
//!   finds its batch again when it restarts; if it never comes back, a live
//!   worker moves the batch back to the head of the queue once its
//!   heartbeat lapses.
//! - **The latest ballot wins**, also with several workers: ballots carry a
//!   `seq` stamped by the vote service and a row is only replaced by a
//!   higher one (see [`store`]), which also makes a replayed batch a no-op.
//! - **Poison never blocks the queue**: payloads that are not ballots go to
//!   `votes:dead` with the reason (see [`batch`]), in letters of bounded
//!   size in a list of bounded length ([`dead_letter`]).
//! - **Bounded memory, whatever is queued**: no entry over the ballot limit
//!   ever leaves Redis whole (see [`queue`] and [`waiter`]), so a pushed
//!   entry of any size cannot take a worker's memory.
//! - **Fast**: under load, one claim takes up to `BATCH_SIZE` ballots in one
//!   round trip and one statement stores them; when idle it blocks on the
//!   queue instead of polling.
//!
//! The loop is built from [`Worker::step`], which does exactly one unit of
//! work and says what happened; [`serve`] (in `run`, with the worker's
//! [`servicekit::launch::Service`] implementation) adds start-up waits,
//! the heartbeat, the admin listener and clean shutdown around it.
//!
//! Modules: [`queue`] (claiming, acknowledging, heartbeats: the worker's
//! Redis keys), [`waiter`] (the blocking wait on an empty queue),
//! [`batch`] (parsing a batch), [`dead_letter`] (what is kept of an entry
//! that is not a ballot, and how much), [`store`] (the
//! upsert into Postgres), [`schema`] (migrations, and telling a Postgres
//! that is not up yet from a migration that failed), [`summary`] (the
//! periodic INFO line), `settings` ([`Settings`]), `run` (the service
//! around the step loop).
//!
//! At INFO it logs what an operator acts on — start and stop, outages,
//! takeovers, the first dead letter of an interval — and one [`summary`]
//! line per `SUMMARY_SECONDS` while it works; each batch is a DEBUG line.
//!
//! Must not depend on: another service's crate or the test harness outside
//! `[dev-dependencies]`. The ballot, the shared queue keys, the enqueue
//! script's counter and the migrations come from `contract`; everything only
//! the worker uses (its Redis keys, dead letters, start-up waits) stays here.

pub mod batch;
pub mod dead_letter;
pub mod queue;
mod run;
pub mod schema;
mod settings;
pub mod store;
pub mod summary;
pub mod waiter;

use std::time::{Duration, Instant};

use servicekit::admin::Probe;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use batch::Batch;
use contract::SeqWindow;
use queue::{Claimed, Consumer, SeqCounter};
pub use run::serve;
use run::wait_until;
pub use settings::{DEFAULT_ADMIN_PORT, Settings};
use summary::Summary;
use waiter::Waiter;

/// The counter of dead letters dropped from `votes:dead` to keep it at
/// `MAX_DEAD_LETTERS`.
pub const DEAD_LETTERS_DROPPED: &str = "dead_letters_dropped_total";

/// Declares the worker's metrics that carry help text with the recorder.
fn describe_metrics() {
    metrics::describe_counter!(
        DEAD_LETTERS_DROPPED,
        "Oldest dead letters dropped from votes:dead to keep its newest MAX_DEAD_LETTERS"
    );
}

/// What one [`Worker::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing arrived within the block time.
    Idle,
    /// A batch was committed to Postgres and removed from Redis.
    Stored(BatchReport),
}

/// The figures of one stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Payloads taken from the queue.
    pub ballots: usize,
    /// Distinct voters among the valid ballots (rows offered to Postgres).
    pub voters: usize,
    /// Rows inserted or changed; replays and stale ballots change none.
    pub changed: u64,
    /// Payloads sent to the dead-letter list.
    pub dead_lettered: usize,
    /// Ballots still queued after the claim.
    pub queue_depth: u64,
    /// How long Postgres took to commit the batch.
    pub commit: Duration,
}

/// Why a step stopped short. The batch stays in the processing list, and
/// the next step takes it again.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// One worker: its queue handles and its database pool.
pub struct Worker {
    id: String,
    consumer: Consumer,
    waiter: Waiter,
    pool: PgPool,
    batch_size: usize,
    /// The next batch, claimed while the previous one was committing: it
    /// sits in the processing list right behind that batch.
    prefetched: Option<Claimed>,
    /// What was stored since the last summary line.
    summary: Summary,
    /// How long this worker's heartbeat lives.
    heartbeat_ttl: Duration,
    /// How often the summary line is logged.
    summary_every: Duration,
}

impl Worker {
    /// Builds the worker without contacting Redis or Postgres.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        describe_metrics();
        let id = settings.worker_id();
        let redis = settings.redis.handle()?;
        Ok(Worker {
            consumer: Consumer::new(&redis, &id)?.keeping_dead_letters(settings.max_dead_letters),
            waiter: Waiter::new(&redis, &id, settings.block()),
            pool: servicekit::connect::pg_pool(
                &settings.database.database_url,
                4,
                Duration::from_secs(5),
            )?,
            batch_size: settings.batch_size as usize,
            prefetched: None,
            summary: Summary::new(),
            heartbeat_ttl: settings.heartbeat_ttl(),
            summary_every: settings.summary_interval(),
            id,
        })
    }

    /// What `/readyz` checks: both stores.
    pub fn probe(&self) -> Probe {
        Probe::nothing()
            .redis(self.consumer.manager().clone())
            .postgres(self.pool.clone())
    }

    /// Stores one batch: takes the batch claimed during the previous step,
    /// or claims up to `BATCH_SIZE` ballots (first whatever this worker left
    /// unfinished), or waits up to the block time for one to arrive; commits
    /// them, claiming the next batch meanwhile if more are queued; then
    /// removes them from Redis.
    pub async fn step(&mut self) -> Result<Outcome, StepError> {
        if let Some(claimed) = self.prefetched.take() {
            return self.store_batch(claimed, true).await.map(Outcome::Stored);
        }
        let mut claimed = self.consumer.claim(self.batch_size).await?;
        if claimed.payloads.is_empty() {
            metrics::gauge!("queue_depth").set(0.0);
            if !self.waiter.wait_for_ballot().await? {
                return Ok(Outcome::Idle);
            }
            // Top the one ballot that woke us up with whatever came after it.
            claimed = self.consumer.claim(self.batch_size).await?;
            if claimed.payloads.is_empty() {
                // Our list was taken over in between (heartbeat lapsed).
                return Ok(Outcome::Idle);
            }
        }
        self.store_batch(claimed, true).await.map(Outcome::Stored)
    }

    /// Stores the batch claimed ahead, if any, without claiming more: what
    /// a stopping worker does after its last step, so it leaves nothing in
    /// its processing list.
    pub async fn finish(&mut self) -> Result<Option<BatchReport>, StepError> {
        match self.prefetched.take() {
            Some(claimed) => self.store_batch(claimed, false).await.map(Some),
            None => Ok(None),
        }
    }

    /// Commits `claimed`, then acknowledges it. With `prefetch`, and if more
    /// ballots are queued, claims the next batch while Postgres commits: it
    /// lands in the processing list behind this one, so order holds and a
    /// crash leaves both for the next claim. If anything fails, the
    /// prefetched batch is dropped from memory and the next claim returns it
    /// from Redis, in order, after this one.
    #[instrument(skip_all, fields(worker = %self.id, batch_size = claimed.payloads.len()))]
    async fn store_batch(
        &mut self,
        claimed: Claimed,
        prefetch: bool,
    ) -> Result<BatchReport, StepError> {
        let batch = Batch::parse(&claimed.payloads, &self.id);
        let rows = batch.latest();
        let commit = async {
            let started = Instant::now();
            let changed = store::store_ballots(&self.pool, &rows).await;
            (changed, started.elapsed())
        };
        let next = async {
            if prefetch && claimed.queue_depth > 0 && claimed.behind == 0 {
                Some(self.consumer.claim_more(self.batch_size).await)
            } else {
                None
            }
        };
        let ((changed, commit), next) = tokio::join!(commit, next);
        let changed = changed?;
        let acknowledged = self
            .consumer
            .acknowledge(&claimed.payloads, &batch.dead)
            .await?;
        if acknowledged.dropped > 0 {
            metrics::counter!(DEAD_LETTERS_DROPPED).increment(acknowledged.dropped);
        }
        let acknowledged = acknowledged.removed;
        self.prefetched = match next {
            // A list taken over took the batch claimed ahead with it.
            Some(Ok(next)) if acknowledged && !next.payloads.is_empty() => Some(next),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "claiming ahead failed; the next claim retries");
                None
            }
            _ => None,
        };
        if let Some(first) = batch.dead.first() {
            if self.summary.first_dead_letter() {
                tracing::warn!(
                    count = batch.dead.len(),
                    reason = %first.reason,
                    "dead-lettered payloads that are not ballots (each is in votes:dead \
                     with its reason; the summary counts the rest of this interval's)"
                );
            } else {
                tracing::debug!(count = batch.dead.len(), reason = %first.reason, "dead-lettered payloads");
            }
        }
        if !acknowledged {
            tracing::warn!(
                "the batch was taken over by another worker before it was acknowledged \
                 (heartbeat lapsed); it will be stored again, which changes nothing \
                 for ballots with a seq"
            );
        }
        let report = BatchReport {
            ballots: claimed.payloads.len(),
            voters: rows.len(),
            changed,
            dead_lettered: batch.dead.len(),
            queue_depth: claimed.queue_depth,
            commit,
        };
        metrics::counter!("ballots_stored_total").increment(batch.ballots.len() as u64);
        metrics::counter!("ballots_dead_lettered_total").increment(report.dead_lettered as u64);
        metrics::histogram!("batch_size").record(report.ballots as f64);
        metrics::histogram!("commit_seconds").record(commit.as_secs_f64());
        metrics::gauge!("queue_depth").set(report.queue_depth as f64);
        self.summary.record(&report);
        tracing::debug!(
            ballots = report.ballots,
            voters = report.voters,
            changed = report.changed,
            dead_lettered = report.dead_lettered,
            commit_ms = commit.as_secs_f64() * 1000.0,
            queue_depth = report.queue_depth,
            "batch stored"
        );
        Ok(report)
    }

    /// Creates or upgrades the schema, waiting while Postgres is not up.
    /// `Ok(None)` if `shutdown` fired first; `Err` if Postgres answered and
    /// the migration itself failed (a permission, a clashing table, a
    /// changed migration), which no amount of waiting cures.
    async fn prepare_schema(&self, shutdown: &CancellationToken) -> anyhow::Result<Option<()>> {
        // The outer `Err` is retried; a migration that failed for good comes
        // back as `Ok(Err(_))`.
        let outcome = wait_until("Postgres (to create the schema)", shutdown, || async {
            match schema::migrate(&self.pool).await {
                Err(e) if schema::migration_is_unavailable(&e) => Err(e),
                done => Ok(done),
            }
        })
        .await;
        match outcome {
            None => Ok(None),
            Some(Ok(())) => {
                tracing::info!("schema ready");
                Ok(Some(()))
            }
            Some(Err(e)) => {
                Err(anyhow::Error::new(e)
                    .context("cannot create or upgrade the schema in Postgres"))
            }
        }
    }

    /// Waits for Redis and registers this worker, so no other worker takes
    /// its processing list while it runs.
    async fn register(&self, ttl: Duration, shutdown: &CancellationToken) -> Option<()> {
        wait_until("Redis", shutdown, || self.consumer.beat(ttl)).await?;
        tracing::info!("registered with Redis");
        Some(())
    }

    /// Raises the vote service's `seq` counter above the highest stored, in
    /// case Redis lost it while the clock went back. Best effort.
    ///
    /// Only a `seq` inside the window counts. Rows stored with one outside
    /// it (by a worker that did not check, before this one) lose it first,
    /// so their voters' next ballots can replace them. A corrupt counter is
    /// reported and left alone: the vote service refuses to stamp from it
    /// (503) until an operator deletes it.
    async fn raise_seq_floor(&self) {
        let window = SeqWindow::now();
        match store::clear_seqs_outside(&self.pool, window).await {
            Ok(0) => {}
            Ok(rows) => tracing::warn!(
                rows,
                "cleared the seq of rows stored with a seq outside the accepted window; \
                 each such voter's next ballot replaces their row"
            ),
            Err(e) => tracing::warn!(error = %e, "could not check the stored seqs"),
        }
        let counter = match store::highest_seq(&self.pool, window).await {
            Ok(highest) => self
                .consumer
                .raise_seq(highest.unwrap_or(0), window)
                .await
                .map_err(StepError::from),
            Err(e) => Err(StepError::from(e)),
        };
        match counter {
            Ok(SeqCounter::Raised) => {
                tracing::warn!("votes:seq was behind the stored ballots; raised it")
            }
            Ok(SeqCounter::Unchanged) => {}
            Ok(SeqCounter::Corrupt) => tracing::error!(
                "votes:seq is not an integer inside the accepted seq window; the vote service \
                 refuses ballots until it is deleted (DEL votes:seq is safe: seq continues \
                 from the clock)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not check votes:seq against the stored ballots")
            }
        }
    }
}
