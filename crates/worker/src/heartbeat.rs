//! The worker's heartbeat: a task apart from the step loop that renews
//! this worker's heartbeat key, puts the batches of workers whose heartbeat
//! lapsed back on the queue, and keeps the queue-depth gauge current.

use std::time::Duration;

use servicekit::outage::Outage;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::queue::Consumer;

/// The worker's duties on every heartbeat tick (every fifth of the
/// heartbeat's lifetime), until `stop` fires: renew its own heartbeat
/// ([`renew_heartbeat`]), put the batches of workers whose heartbeat lapsed
/// back on the queue ([`requeue_lapsed_workers`]) and publish the queue
/// depth ([`gauge_queue_depth`]). A separate task from the step loop, so a
/// long commit cannot let the heartbeat lapse.
pub(crate) async fn on_every_heartbeat(consumer: Consumer, ttl: Duration, stop: CancellationToken) {
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
            metrics::redis_error();
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
                metrics::requeued(moved);
                tracing::info!(
                    ballots = moved,
                    "requeued the unfinished batches of workers whose heartbeat lapsed"
                );
            }
        }
        Err(e) => {
            metrics::redis_error();
            redis.failed(&e);
        }
    }
}

/// Sets the `queue_depth` gauge, so it is current while this worker is
/// idle or stuck too (steps set it as they claim).
async fn gauge_queue_depth(consumer: &Consumer) {
    match consumer.depth().await {
        Ok(depth) => metrics::queue_depth(depth),
        Err(e) => tracing::debug!(error = %e, "could not read the queue depth"),
    }
}
