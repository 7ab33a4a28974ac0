//! The metrics the worker exports besides the kit's, each declared once
//! with its help text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contract::Ballot;

use servicekit::metric::Metric;

pub const BALLOTS_STORED: Metric = Metric::counter(
    "ballots_stored_total",
    "Ballots taken from the queue and committed to Postgres (replays and stale ones included).",
);
pub const BALLOTS_DEAD_LETTERED: Metric = Metric::counter(
    "ballots_dead_lettered_total",
    "Queue entries that are not ballots, moved to votes:dead with their reason.",
);
pub const DEAD_LETTERS_DROPPED: Metric = Metric::counter(
    "dead_letters_dropped_total",
    "Oldest dead letters dropped from votes:dead to keep its newest MAX_DEAD_LETTERS.",
);
pub const BALLOTS_REQUEUED: Metric = Metric::counter(
    "ballots_requeued_total",
    "Ballots of workers whose heartbeat lapsed, moved back to the head of the queue.",
);
pub const BATCH_SIZE: Metric =
    Metric::histogram("batch_size", "Queue entries taken and stored per batch.");
pub const COMMIT_SECONDS: Metric =
    Metric::histogram("commit_seconds", "Time Postgres took to commit one batch.");
pub const BALLOT_DELIVERY: Metric = Metric::histogram(
    "ballot_delivery_seconds",
    "Time from a ballot's seq stamp (Redis's clock when it was queued) to its commit (this worker's clock), per stored ballot with a seq; negative gaps count as 0.",
);
pub const QUEUE_DEPTH: Metric = Metric::gauge(
    "queue_depth",
    "Ballots waiting in the Redis list votes, as last seen.",
);
pub const REDIS_ERRORS: Metric = Metric::counter(
    "redis_errors_total",
    "Steps and heartbeats that failed on Redis (the batch waits in Redis and is retried).",
);
pub const POSTGRES_ERRORS: Metric = Metric::counter(
    "postgres_errors_total",
    "Steps that failed on Postgres (the batch waits in Redis and is retried).",
);

/// Every metric above.
pub const ALL: &[Metric] = &[
    BALLOTS_STORED,
    BALLOTS_DEAD_LETTERED,
    DEAD_LETTERS_DROPPED,
    BALLOTS_REQUEUED,
    BATCH_SIZE,
    COMMIT_SECONDS,
    BALLOT_DELIVERY,
    QUEUE_DEPTH,
    REDIS_ERRORS,
    POSTGRES_ERRORS,
];

/// Creates every counter at 0 before the first batch: a counter that first
/// appears already at N shows Prometheus no increase, so a backlog drained
/// before the first scrape would be missing from every rate.
pub(crate) fn start_at_zero() {
    for counter in ALL
        .iter()
        .filter(|m| m.kind == servicekit::metric::Kind::Counter)
    {
        ::metrics::counter!(counter.name).increment(0);
    }
}

/// One batch stored: what it held and how long its commit took.
pub(crate) fn batch_stored(entries: usize, ballots: usize, dead_lettered: usize, commit: Duration) {
    ::metrics::counter!(BALLOTS_STORED.name).increment(ballots as u64);
    ::metrics::counter!(BALLOTS_DEAD_LETTERED.name).increment(dead_lettered as u64);
    ::metrics::histogram!(BATCH_SIZE.name).record(entries as f64);
    ::metrics::histogram!(COMMIT_SECONDS.name).record(commit.as_secs_f64());
}

/// The ballots of one batch committed at `committed`: how long each waited
/// since it was queued. A ballot's `seq` is the queue's clock (Redis
/// `TIME`, in µs since the Unix epoch) when the vote service pushed it;
/// `committed` is this worker's clock, so a skew between the two hosts
/// shifts every sample by the skew. A `seq` ahead of `committed` (skew, or a
/// counter running ahead of the clock) counts as 0. Ballots without a `seq`
/// (the original vote app's) carry no time and are not counted.
pub(crate) fn ballots_delivered<'a>(
    ballots: impl IntoIterator<Item = &'a Ballot>,
    committed: SystemTime,
) {
    let now_us = committed
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let histogram = ::metrics::histogram!(BALLOT_DELIVERY.name);
    for seq in ballots.into_iter().filter_map(|b| b.seq) {
        let waited_us = now_us.saturating_sub(seq).max(0);
        histogram.record(waited_us as f64 / 1e6);
    }
}

pub(crate) fn dead_letters_dropped(count: u64) {
    ::metrics::counter!(DEAD_LETTERS_DROPPED.name).increment(count);
}

pub(crate) fn requeued(ballots: u64) {
    ::metrics::counter!(BALLOTS_REQUEUED.name).increment(ballots);
}

pub(crate) fn queue_depth(depth: u64) {
    ::metrics::gauge!(QUEUE_DEPTH.name).set(depth as f64);
}

pub(crate) fn redis_error() {
    ::metrics::counter!(REDIS_ERRORS.name).increment(1);
}

pub(crate) fn postgres_error() {
    ::metrics::counter!(POSTGRES_ERRORS.name).increment(1);
}
