//! What a worker does before its first step: wait for Postgres and create
//! or upgrade the schema, wait for Redis and register, and raise the vote
//! service's `seq` counter above the highest stored. Each wait is logged
//! when it starts, while it lasts and when it ends, and ends early on
//! shutdown.

use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;
use contract::SeqWindow;
use servicekit::outage::Outage;
use tokio_util::sync::CancellationToken;

use super::{StepError, Worker};
use crate::queue::SeqCounter;
use crate::{schema, store};

impl Worker {
    /// Everything before the first step. False if `shutdown` fired first;
    /// an error if the schema cannot be made, which no waiting cures.
    pub(crate) async fn start(&self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        if self.prepare_schema(shutdown).await?.is_none()
            || self.register(self.heartbeat_ttl, shutdown).await.is_none()
        {
            return Ok(false);
        }
        self.raise_seq_floor().await;
        tracing::info!(worker = %self.id, batch_size = self.batch_size, "consuming ballots");
        Ok(true)
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

/// Runs `attempt` until it succeeds, backing off from 100 ms to 5 s.
/// Returns `None` if `cancel` fires first. A wait is logged when it starts,
/// once a minute while it lasts, and when it ends (see [`Outage`]); each
/// retry at DEBUG.
async fn wait_until<T, E, F, Fut>(
    what: &'static str,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let delays = backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times();
    let mut backoff = delays.build();
    let outage = Outage::new(what, "waiting for it before starting");
    loop {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return None,
            outcome = attempt() => outcome,
        };
        match outcome {
            Ok(value) => {
                outage.succeeded();
                return Some(value);
            }
            Err(e) => {
                outage.failed(&e);
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::debug!(what, retry_in_ms = delay.as_millis() as u64, "retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
