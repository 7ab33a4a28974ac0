//! The worker as a service (the shared scaffold,
//! `servicekit::launch`, starts it and runs its admin listener): the
//! start-up waits (Postgres and the schema, then Redis), the heartbeat
//! task (renewing this worker's heartbeat, requeueing the batches of
//! workers whose heartbeat lapsed, the queue-depth gauge), the step loop
//! with back-off after errors, and a clean stop: on shutdown the batch in
//! flight is finished, the heartbeat stopped and the worker unregistered —
//! unless it still holds a batch, which then waits in its processing list
//! for a restart or for a live worker to take it back.
//!
//! A store going away is logged when it goes and when it comes back (see
//! [`servicekit::outage`]), not once per failed retry; the work done is logged
//! as one summary line per interval (see [`crate::summary`]).

use std::time::Duration;

use backon::BackoffBuilder;
use servicekit::admin::Probe;
use servicekit::launch::{self, Listeners, Service};
use servicekit::metric::Metric;
use servicekit::outage::Outage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::settings::Settings;
use crate::worker::{StepError, Worker};

impl Service for Worker {
    const NAME: &'static str = "worker";
    const ABOUT: &'static str = "The voting app's worker: stores each voter's latest ballot \
                                 from the Redis queue `votes` in the Postgres table `votes`.";
    const METRICS: &'static [Metric] = crate::metrics::ALL;
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::admin_only(settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            worker_id = %s.worker_id(),
            redis = %s.redis,
            database_url = %s.database.database_url,
            batch_size = s.batch_size,
            block_seconds = s.block_seconds,
            heartbeat_seconds = s.heartbeat_seconds,
            summary_seconds = s.summary_seconds,
            max_dead_letters = s.max_dead_letters,
            "starting worker"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        Worker::new(&settings)
    }

    fn probe(&self) -> Probe {
        Worker::probe(self)
    }

    /// Start-up waits, then steps until `shutdown` fires; then finishes the
    /// batch in flight and deregisters.
    async fn serve(
        mut self,
        _public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        crate::metrics::start_at_zero();
        consume(&mut self, &shutdown).await
    }
}

/// Runs a worker with `settings`, its admin endpoints on `admin`, until
/// `shutdown` fires; then finishes the batch in flight and returns. What
/// the binary does after binding, for tests that run a worker in-process.
pub async fn serve(
    admin: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    launch::serve(Worker::build(settings)?, None, admin, shutdown).await
}

/// Start-up, then steps until shutdown (backing off after errors), then a
/// clean stop.
async fn consume(worker: &mut Worker, shutdown: &CancellationToken) -> anyhow::Result<()> {
    if !worker.start(shutdown).await? {
        tracing::info!("stopped before start-up finished");
        return Ok(());
    }
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = worker.spawn_heartbeat(heartbeat_stop.clone());

    const WAITING: &str = "batches wait in Redis (the claimed one in this worker's processing \
                           list) and are retried";
    let redis = Outage::new("Redis", WAITING);
    let postgres = Outage::new("Postgres", WAITING);
    // Retry delays after a failed step: 100 ms doubling up to 2 s.
    let delays = backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times();
    let mut backoff = delays.build();
    while !shutdown.is_cancelled() {
        match worker.step().await {
            Ok(_) => {
                backoff = delays.build();
                redis.succeeded();
                postgres.succeeded();
            }
            Err(e) => {
                match &e {
                    StepError::Redis(_) => {
                        metrics::redis_error();
                        redis.failed(&e);
                    }
                    StepError::Postgres(_) => {
                        metrics::postgres_error();
                        postgres.failed(&e);
                    }
                }
                let delay = backoff.next().unwrap_or(Duration::from_secs(2));
                tracing::debug!(
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "batch not stored yet; it stays in the processing list and is retried"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
        worker.log_summary_if_due();
    }
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    worker.stop().await;
    Ok(())
}
