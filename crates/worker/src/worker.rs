//! One worker: its queue handles and its database pool, and its unit of
//! work, [`Worker::step`]: take one batch, commit it, acknowledge it.
//!
//! What it does before its first step (the schema, registering, the `seq`
//! counter) is its own too, in [`startup`]; the service around the steps
//! is `crate::service`.

mod startup;

use std::time::{Duration, Instant, SystemTime};

use servicekit::admin::Probe;
use servicekit::connect::Redis;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::batch::Batch;
use crate::metrics;
use crate::queue::{Claimed, Consumer};
use crate::settings::Settings;
use crate::store;
use crate::summary::Summary;
use crate::waiter::Waiter;

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
        let id = settings.worker_id();
        let redis = Redis::new(&settings.redis);
        Ok(Worker {
            consumer: Consumer::new(&redis, &id)?.keeping_dead_letters(settings.max_dead_letters),
            waiter: Waiter::new(&redis, &id, settings.block()),
            pool: servicekit::connect::pg_pool(
                &settings.database.database_url,
                4,
                Duration::from_secs(5),
            ),
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
            .redis(self.consumer.shared().clone())
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
            metrics::queue_depth(0);
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
            (changed, started.elapsed(), SystemTime::now())
        };
        let next = async {
            if prefetch && claimed.queue_depth > 0 && claimed.behind == 0 {
                Some(self.consumer.claim_more(self.batch_size).await)
            } else {
                None
            }
        };
        let ((changed, commit, committed), next) = tokio::join!(commit, next);
        let changed = changed?;
        let acknowledged = self
            .consumer
            .acknowledge(&claimed.payloads, &batch.dead)
            .await?;
        if acknowledged.dropped > 0 {
            metrics::dead_letters_dropped(acknowledged.dropped);
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
        metrics::batch_stored(
            report.ballots,
            batch.ballots.len(),
            report.dead_lettered,
            commit,
        );
        metrics::ballots_delivered(&batch.ballots, committed);
        metrics::queue_depth(report.queue_depth);
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

    /// A task that keeps this worker's heartbeat (and its other duties on
    /// every beat: see [`crate::heartbeat`]) until `stop` fires.
    pub(crate) fn spawn_heartbeat(&self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(crate::heartbeat::on_every_heartbeat(
            self.consumer.clone(),
            self.heartbeat_ttl,
            stop,
        ))
    }

    /// Logs the summary line if its interval is up.
    pub(crate) fn log_summary_if_due(&mut self) {
        if self.summary.age() >= self.summary_every {
            self.summary.flush();
        }
    }

    /// What a stopping worker does after its last step: stores the batch
    /// claimed ahead, logs the last summary and deregisters — unless it
    /// still holds a batch, which then waits in its processing list for a
    /// restart or for a live worker to take it back.
    pub(crate) async fn stop(&mut self) {
        match self.finish().await {
            Ok(Some(report)) => {
                tracing::debug!(ballots = report.ballots, "stored the batch claimed ahead")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not store the batch claimed ahead; it stays in the processing list")
            }
        }
        self.summary.flush();
        match self.consumer.deregister().await {
            Ok(true) => tracing::info!("worker stopped; nothing left in flight"),
            Ok(false) => tracing::warn!(
                "worker stopped with a batch left in its processing list; it is taken again \
                 when this worker restarts or, after the heartbeat lapses, by another worker"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "worker stopped; could not deregister (the heartbeat will lapse)")
            }
        }
    }
}
