//! The metrics the vote service exports besides the kit's (requests,
//! latency), each declared once with its help text; labels come from
//! closed sets (the option voted for).

use contract::Vote;
use servicekit::metric::Metric;

pub const BALLOTS_QUEUED: Metric = Metric::counter(
    "ballots_queued_total",
    "Ballots queued in Redis and confirmed (answered 200), by option.",
);
pub const BALLOTS_UNCONFIRMED: Metric = Metric::counter(
    "ballots_unconfirmed_total",
    "Votes answered 503 'could not confirm': the ballot may be queued (a timeout, a lost connection, replicas that did not confirm), by option.",
);
pub const REPLICA_ACK_MISSING: Metric = Metric::counter(
    "ballots_replica_ack_missing_total",
    "Ballots queued on the primary that fewer replicas than REDIS_MIN_REPLICAS_ACK confirmed in time.",
);
pub const CONFIRM_GROUP_SIZE: Metric = Metric::histogram(
    "vote_confirm_group_size",
    "Ballots pushed and confirmed together by one WAIT (with REDIS_MIN_REPLICAS_ACK).",
);
pub const REDIS_ERRORS: Metric = Metric::counter(
    "redis_errors_total",
    "Votes whose push to Redis failed or was not confirmed.",
);

/// Every metric above.
pub const ALL: &[Metric] = &[
    BALLOTS_QUEUED,
    BALLOTS_UNCONFIRMED,
    REPLICA_ACK_MISSING,
    CONFIRM_GROUP_SIZE,
    REDIS_ERRORS,
];

/// Creates every counter at 0, each option's too, before the first vote:
/// a counter that first appears already at N shows Prometheus no increase,
/// so the votes before its first scrape would be missing from every rate.
pub(crate) fn start_at_zero() {
    for vote in Vote::ALL {
        ::metrics::counter!(BALLOTS_QUEUED.name, "vote" => vote.as_str()).increment(0);
        ::metrics::counter!(BALLOTS_UNCONFIRMED.name, "vote" => vote.as_str()).increment(0);
    }
    ::metrics::counter!(REPLICA_ACK_MISSING.name).increment(0);
    ::metrics::counter!(REDIS_ERRORS.name).increment(0);
}

pub(crate) fn ballot_queued(vote: Vote) {
    ::metrics::counter!(BALLOTS_QUEUED.name, "vote" => vote.as_str()).increment(1);
}

pub(crate) fn push_failed(vote: Vote, maybe_queued: bool) {
    ::metrics::counter!(REDIS_ERRORS.name).increment(1);
    if maybe_queued {
        ::metrics::counter!(BALLOTS_UNCONFIRMED.name, "vote" => vote.as_str()).increment(1);
    }
}

pub(crate) fn replica_acks_missing(ballots: usize) {
    ::metrics::counter!(REPLICA_ACK_MISSING.name).increment(ballots as u64);
}

pub(crate) fn confirm_group(ballots: usize) {
    ::metrics::histogram!(CONFIRM_GROUP_SIZE.name).record(ballots as f64);
}
