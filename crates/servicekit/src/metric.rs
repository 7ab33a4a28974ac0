//! Declaring metrics: each one's name, kind and help text, written once.
//!
//! Every service lists the metrics it exports in one module of its own (a
//! `const` list of [`Metric`]s beside the functions that record them, with
//! labels from closed sets); the kit lists its own here ([`kit`]). The
//! scaffold describes both lists when the service starts
//! ([`crate::launch`]), so `/metrics` carries `# HELP` for every series,
//! and the lists are what the docs are checked against.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric a process exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// The `# HELP` text: what it counts, in a sentence.
    pub help: &'static str,
}

impl Metric {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Metric {
            name,
            kind: Kind::Counter,
            help,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Metric {
            name,
            kind: Kind::Gauge,
            help,
        }
    }

    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        Metric {
            name,
            kind: Kind::Histogram,
            help,
        }
    }

    /// Gives the recorder this metric's help text.
    pub fn describe(&self) {
        match self.kind {
            Kind::Counter => ::metrics::describe_counter!(self.name, self.help),
            Kind::Gauge => ::metrics::describe_gauge!(self.name, self.help),
            Kind::Histogram => ::metrics::describe_histogram!(self.name, self.help),
        }
    }
}

/// Requests answered, by route template, method and status.
pub const HTTP_REQUESTS: Metric = Metric::counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status (labels from closed sets).",
);
/// How long answering took, by route template.
pub const HTTP_REQUEST_DURATION: Metric = Metric::histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its answer, by route template.",
);
/// Connections the per-address cap closed.
pub const HTTP_CONNECTIONS_REFUSED: Metric = Metric::counter(
    "http_connections_refused_total",
    "Connections closed when accepted: their address already had MAX_CONNECTIONS_PER_ADDRESS.",
);
/// Lookups of the Redis primary through Sentinel (with the `redis`
/// feature).
pub const REDIS_PRIMARY_LOOKUPS: Metric = Metric::counter(
    "redis_primary_lookups_total",
    "Times this process asked the Sentinels which node is the Redis primary.",
);

/// The metrics the kit itself exports (those of its features that are on).
pub fn kit() -> Vec<Metric> {
    let mut all = vec![
        HTTP_REQUESTS,
        HTTP_REQUEST_DURATION,
        HTTP_CONNECTIONS_REFUSED,
    ];
    if cfg!(feature = "redis") {
        all.push(REDIS_PRIMARY_LOOKUPS);
    }
    all
}
