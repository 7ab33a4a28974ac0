//! The live tally: one task reads Postgres, every page and WebSocket client
//! watches what it found.
//!
//! Reading is shared, never per client: the poller runs one query per tick
//! and publishes the result on a [`watch`] channel. A watch channel holds
//! only the latest value, so a slow client can never make the poller (or
//! other clients) wait and never queues stale tallies — it skips straight
//! to the newest one.
//!
//! A tick happens
//! - when Postgres notifies [`CHANGES_CHANNEL`] (the tally triggers do so at
//!   the commit of every change), so a vote reaches the pages within
//!   milliseconds;
//! - every [`PollOptions::interval`] regardless, as the fallback for
//!   databases without our triggers (written only by the original worker),
//!   lost notifications and a listener that is reconnecting.
//!
//! The poller keeps one [`TallyReader`], which remembers whether the tally
//! comes from our `vote_tally` or from counting the original `votes`, so a
//! database our worker never migrated is polled without a failing query
//! (and without an ERROR line in the Postgres log) each time. It looks
//! again after [`PollOptions::reprobe`], and at once on a change
//! notification while it is counting — the first one after our worker
//! migrates comes from the new triggers.
//!
//! Bursts of notifications are coalesced: after a read, the next one waits
//! until [`PollOptions::min_gap`] has passed, so a flood of votes costs at
//! most one read and one broadcast per gap. While Postgres is unreachable
//! the last tally stays published and the poller keeps trying; the outage
//! is logged when it starts and ends (see [`servicekit::outage`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use backon::BackoffBuilder;
use contract::Tally;
use contract::table::CHANGES_CHANNEL;
use servicekit::outage::Outage;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::tally::TallyReader;

/// Longest a single tally read may take before it counts as failed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A tally as published: the numbers (for the page) and the live-feed
/// message, serialized once and shared by every client.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub tally: Tally,
    pub json: Utf8Bytes,
}

impl Snapshot {
    pub fn new(tally: Tally) -> Self {
        Snapshot {
            tally,
            json: Utf8Bytes::from(tally.to_json()),
        }
    }
}

/// The publishing side: `None` until the first read succeeds.
pub type FeedSender = watch::Sender<Option<Snapshot>>;
/// What clients hold.
pub type FeedReceiver = watch::Receiver<Option<Snapshot>>;

/// How often the poller reads.
#[derive(Debug, Clone, Copy)]
pub struct PollOptions {
    /// Longest time between two reads.
    pub interval: Duration,
    /// Shortest time between two reads triggered by notifications.
    pub min_gap: Duration,
    /// How long the tally's source (which table) is trusted before the
    /// catalog is asked again.
    pub reprobe: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            interval: Duration::from_secs(1),
            min_gap: Duration::from_millis(5),
            reprobe: TallyReader::REPROBE_AFTER,
        }
    }
}

/// What one read of the tally found.
#[derive(Debug, Clone, PartialEq)]
pub enum Refresh {
    /// Same numbers as already published: nothing sent.
    Unchanged,
    /// New numbers, now published to every client.
    Changed(Tally),
    /// Postgres could not be read; the last tally stays published.
    Failed(String),
}

/// One unit of the poller's work: reads the tally once and publishes it if
/// it changed.
pub async fn refresh(reader: &mut TallyReader, pool: &PgPool, feed: &FeedSender) -> Refresh {
    let started = Instant::now();
    let read = tokio::time::timeout(QUERY_TIMEOUT, reader.read(pool)).await;
    metrics::tally_read(started.elapsed().as_secs_f64(), !matches!(read, Ok(Ok(_))));
    let tally = match read {
        Ok(Ok(tally)) => tally,
        Ok(Err(e)) => return Refresh::Failed(e.to_string()),
        Err(_) => return Refresh::Failed(format!("no answer within {QUERY_TIMEOUT:?}")),
    };
    let changed = feed.send_if_modified(|current| {
        if current.as_ref().is_some_and(|s| s.tally == tally) {
            false
        } else {
            *current = Some(Snapshot::new(tally));
            true
        }
    });
    if changed {
        Refresh::Changed(tally)
    } else {
        Refresh::Unchanged
    }
}

/// A pool of one long-lived connection, to the same database as `pool`,
/// that the listener reconnects through.
fn listener_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// Keeps `feed` up to date until `shutdown` fires: listens for change
/// notifications on a connection of its own and polls `pool` as the
/// fallback.
pub async fn run(
    pool: PgPool,
    feed: FeedSender,
    options: PollOptions,
    shutdown: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(listener_pool(&pool), wake.clone(), shutdown.clone()));
    let mut ticks = tokio::time::interval(options.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_read: Option<Instant> = None;
    let postgres = Outage::new(
        "Postgres",
        "pages show the last tally read; the poller keeps trying",
    );
    let mut reader = TallyReader::new(options.reprobe);
    let mut source = None;
    loop {
        let notified = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => false,
            _ = wake.notified() => true,
        };
        if notified && let Some(last) = last_read {
            // Coalesce a burst: notifications arriving while we wait are
            // answered by the same read.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(last + options.min_gap) => {}
            }
        }
        if notified {
            reader.changes_notified();
        }
        last_read = Some(Instant::now());
        let outcome = refresh(&mut reader, &pool, &feed).await;
        if reader.source() != source {
            source = reader.source();
            if let Some(source) = source {
                tracing::info!(source = source.describe(), "reading the tally");
            }
        }
        // The poll is the fallback: it fires only after `interval` without
        // a read, so a steady stream of notifications costs no extra reads.
        ticks.reset();
        tracing::trace!(?outcome, notified, "tally read");
        match outcome {
            Refresh::Failed(error) => postgres.failed(&error),
            outcome => {
                postgres.succeeded();
                if let Refresh::Changed(tally) = outcome {
                    tracing::debug!(a = tally.a, b = tally.b, notified, "tally changed");
                }
            }
        }
    }
    let _ = listener.await;
}

/// Wakes the poller whenever Postgres notifies [`CHANGES_CHANNEL`], and
/// after every (re)connection, since notifications sent while we were not
/// listening are lost. Runs on its own task so a read in progress is never
/// cancelled halfway (sqlx's listener is not cancel-safe).
async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    // Retry delays: 100 ms doubling up to 2 s.
    let delays = backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times();
    let mut backoff = delays.build();
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = subscribe(&pool) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(2));
                tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot listen for tally changes yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        tracing::info!(channel = CHANGES_CHANNEL, "listening for tally changes");
        backoff = delays.build();
        wake.notify_one();
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    tracing::trace!(channel = notification.channel(), "change notified");
                    // Drain what is already buffered: one wake-up covers it.
                    while listener.next_buffered().is_some() {}
                    wake.notify_one();
                }
                Ok(None) => {
                    // The connection dropped and sqlx re-established it,
                    // LISTEN included; changes in between went unnoticed.
                    tracing::info!("listener reconnected");
                    wake.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the change listener; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}
