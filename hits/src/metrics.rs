//! The metrics the hit counter exports besides the kit's, each declared
//! once with its help text.

use servicekit::metric::Metric;

pub const HITS_COUNTED: Metric = Metric::counter(
    "hits_counted_total",
    "Visits counted in Redis (INCR hits answered).",
);
pub const HITS_UNCONFIRMED: Metric = Metric::counter(
    "hits_unconfirmed_total",
    "Visits Redis did not confirm: they may or may not have been counted.",
);
pub const REDIS_ERRORS: Metric = Metric::counter(
    "redis_errors_total",
    "Visits whose INCR failed or was not confirmed.",
);

/// Every metric above.
pub const ALL: &[Metric] = &[HITS_COUNTED, HITS_UNCONFIRMED, REDIS_ERRORS];

pub(crate) fn counted() {
    ::metrics::counter!(HITS_COUNTED.name).increment(1);
}

pub(crate) fn failed(unconfirmed: bool) {
    ::metrics::counter!(REDIS_ERRORS.name).increment(1);
    if unconfirmed {
        ::metrics::counter!(HITS_UNCONFIRMED.name).increment(1);
    }
}
