//! The metrics the result service exports besides the kit's, each declared
//! once with its help text; labels come from closed sets.

use servicekit::metric::Metric;

pub const CLIENTS_CONNECTED: Metric = Metric::gauge(
    "result_clients_connected",
    "Live pages (WebSocket clients) connected now.",
);
pub const CLIENTS_REFUSED: Metric = Metric::counter(
    "result_clients_refused_total",
    "Live pages refused, by reason: cross_site (403), per_address or full (503).",
);
pub const MESSAGES_SENT: Metric = Metric::counter(
    "result_messages_sent_total",
    "Tally messages sent to live pages.",
);
pub const TICKS: Metric = Metric::counter(
    "result_ticks_total",
    "Reads of the tally from Postgres (on a change notification or at the poll interval).",
);
pub const QUERY_SECONDS: Metric =
    Metric::histogram("result_query_seconds", "Time one read of the tally took.");
pub const QUERY_ERRORS: Metric = Metric::counter(
    "result_query_errors_total",
    "Reads of the tally that failed or timed out (pages keep the last tally).",
);

/// Every metric above.
pub const ALL: &[Metric] = &[
    CLIENTS_CONNECTED,
    CLIENTS_REFUSED,
    MESSAGES_SENT,
    TICKS,
    QUERY_SECONDS,
    QUERY_ERRORS,
];

/// Creates the counters of tally reads at 0 before the first read: a
/// counter that first appears already at N shows Prometheus no increase.
pub(crate) fn start_at_zero() {
    ::metrics::counter!(TICKS.name).increment(0);
    ::metrics::counter!(QUERY_ERRORS.name).increment(0);
}

/// Why a live page was refused: the label of [`CLIENTS_REFUSED`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    CrossSite,
    PerAddress,
    Full,
}

pub(crate) fn client_refused(why: Refusal) {
    let reason = match why {
        Refusal::CrossSite => "cross_site",
        Refusal::PerAddress => "per_address",
        Refusal::Full => "full",
    };
    ::metrics::counter!(CLIENTS_REFUSED.name, "reason" => reason).increment(1);
}

/// A live page connected (`1.0`) or left (`-1.0`).
pub(crate) fn clients_connected(change: f64) {
    ::metrics::gauge!(CLIENTS_CONNECTED.name).increment(change);
}

/// The handle of [`MESSAGES_SENT`], looked up once per client.
pub(crate) fn messages_sent() -> ::metrics::Counter {
    ::metrics::counter!(MESSAGES_SENT.name)
}

/// One read of the tally: how long it took, and whether it failed.
pub(crate) fn tally_read(seconds: f64, failed: bool) {
    ::metrics::histogram!(QUERY_SECONDS.name).record(seconds);
    ::metrics::counter!(TICKS.name).increment(1);
    if failed {
        ::metrics::counter!(QUERY_ERRORS.name).increment(1);
    }
}
