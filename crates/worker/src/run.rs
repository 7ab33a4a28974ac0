//! Running a worker as a service (the shared scaffold,
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

use std::future::Future;
use std::time::Duration;

use servicekit::admin::Probe;
use servicekit::connect::Backoff;
use servicekit::launch::{self, Listeners, Service};
use servicekit::outage::Outage;
use servicekit::settings::redact_url;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::queue::Consumer;
use crate::{Settings, StepError, Worker};

impl Service for Worker {
    const NAME: &'static str = "worker";
    const ABOUT: &'static str = "The voting app's worker: stores each voter's latest ballot \
                                 from the Redis queue `votes` in the Postgres table `votes`.";
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::admin_only(settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            worker_id = %s.worker_id(),
            redis_url = %redact_url(&s.redis.redis_url),
            redis_sentinels = s.redis.redis_sentinels.as_deref().unwrap_or(""),
            redis_sentinel_master = s.redis.redis_sentinel_master.as_deref().unwrap_or(""),
            database_url = %redact_url(&s.database.database_url),
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

/// Start-up waits, then steps until shutdown, then deregisters.
async fn consume(worker: &mut Worker, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let ttl = worker.heartbeat_ttl;
    if worker.prepare_schema(shutdown).await?.is_none()
        || worker.register(ttl, shutdown).await.is_none()
    {
        tracing::info!("stopped before start-up finished");
        return Ok(());
    }
    worker.raise_seq_floor().await;

    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(on_every_heartbeat(
        worker.consumer.clone(),
        ttl,
        heartbeat_stop.clone(),
    ));
    tracing::info!(worker = %worker.id, batch_size = worker.batch_size, "consuming ballots");

    const WAITING: &str = "batches wait in Redis (the claimed one in this worker's processing \
                           list) and are retried";
    let redis = Outage::new("Redis", WAITING);
    let postgres = Outage::new("Postgres", WAITING);
    let every = worker.summary_every;
    // Retry delays after a failed step: 100 ms doubling up to 2 s.
    let mut backoff = Backoff::up_to(Duration::from_secs(2));
    while !shutdown.is_cancelled() {
        match worker.step().await {
            Ok(_) => {
                backoff.reset();
                redis.succeeded();
                postgres.succeeded();
            }
            Err(e) => {
                match &e {
                    StepError::Redis(_) => {
                        metrics::counter!("redis_errors_total").increment(1);
                        redis.failed(&e);
                    }
                    StepError::Postgres(_) => {
                        metrics::counter!("postgres_errors_total").increment(1);
                        postgres.failed(&e);
                    }
                }
                let delay = backoff.next_delay();
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
        if worker.summary.age() >= every {
            worker.summary.flush();
        }
    }

    match worker.finish().await {
        Ok(Some(report)) => {
            tracing::debug!(ballots = report.ballots, "stored the batch claimed ahead")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not store the batch claimed ahead; it stays in the processing list")
        }
    }
    worker.summary.flush();
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    match worker.consumer.deregister().await {
        Ok(true) => tracing::info!("worker stopped; nothing left in flight"),
        Ok(false) => tracing::warn!(
            "worker stopped with a batch left in its processing list; it is taken again \
             when this worker restarts or, after the heartbeat lapses, by another worker"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "worker stopped; could not deregister (the heartbeat will lapse)")
        }
    }
    Ok(())
}

/// The worker's duties on every heartbeat tick (every fifth of the
/// heartbeat's lifetime), until `stop` fires: renew its own heartbeat
/// ([`renew_heartbeat`]), put the batches of workers whose heartbeat lapsed
/// back on the queue ([`requeue_lapsed_workers`]) and publish the queue
/// depth ([`gauge_queue_depth`]). A separate task from the step loop, so a
/// long commit cannot let the heartbeat lapse.
async fn on_every_heartbeat(consumer: Consumer, ttl: Duration, stop: CancellationToken) {
    // Apart from the step loop's: a heartbeat that works while steps fail
    // (or the reverse) must not make either look like it flaps.
    let redis = Outage::new(
        "Redis (heartbeat)",
        "once the heartbeat lapses, other workers take this worker's batch back",
    );
    let mut tick = tokio::time::interval(ttl / 5);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !renew_heartbeat(&consumer, ttl, &redis).await {
            continue;
        }
        requeue_lapsed_workers(&consumer, &redis).await;
        gauge_queue_depth(&consumer).await;
    }
}

/// Renews this worker's heartbeat for `ttl`; false if Redis failed.
async fn renew_heartbeat(consumer: &Consumer, ttl: Duration, redis: &Outage) -> bool {
    match consumer.beat(ttl).await {
        Ok(()) => true,
        Err(e) => {
            metrics::counter!("redis_errors_total").increment(1);
            redis.failed(&e);
            false
        }
    }
}

/// Moves the unfinished batches of workers whose heartbeat lapsed back to
/// the head of the queue, and counts them in `ballots_requeued_total`.
async fn requeue_lapsed_workers(consumer: &Consumer, redis: &Outage) {
    match consumer.recover_dead_workers().await {
        Ok(moved) => {
            redis.succeeded();
            if moved > 0 {
                metrics::counter!("ballots_requeued_total").increment(moved);
                tracing::info!(
                    ballots = moved,
                    "requeued the unfinished batches of workers whose heartbeat lapsed"
                );
            }
        }
        Err(e) => {
            metrics::counter!("redis_errors_total").increment(1);
            redis.failed(&e);
        }
    }
}

/// Sets the `queue_depth` gauge, so it is current while this worker is
/// idle or stuck too (steps set it as they claim).
async fn gauge_queue_depth(consumer: &Consumer) {
    match consumer.depth().await {
        Ok(depth) => metrics::gauge!("queue_depth").set(depth as f64),
        Err(e) => tracing::debug!(error = %e, "could not read the queue depth"),
    }
}

/// Runs `attempt` until it succeeds, backing off from 100 ms to 5 s.
/// Returns `None` if `cancel` fires first. A wait is logged when it starts,
/// once a minute while it lasts, and when it ends (see [`Outage`]); each
/// retry at DEBUG.
pub(crate) async fn wait_until<T, E, F, Fut>(
    what: &'static str,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::up_to(Duration::from_secs(5));
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
                let delay = backoff.next_delay();
                tracing::debug!(what, retry_in_ms = delay.as_millis() as u64, "retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
