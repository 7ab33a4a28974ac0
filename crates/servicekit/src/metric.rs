//! Declaring metrics: each one's name, kind and help text, written once.
//!
//! Every service lists the metrics it exports in one module of its own (a
//! `const` list of [`Metric`]s beside the functions that record them, with
//! labels from closed sets); the kit lists its own here ([`kit`]). The
//! scaffold describes both lists when the service starts
//! ([`crate::launch`]), so `/metrics` carries `# HELP` for every series,
//! and the lists are what the docs are checked against.
//!
//! The recorder itself is process-wide ([`metrics_handle`]). The exporter
//! keeps every raw histogram sample until its upkeep folds them into
//! buckets. Installed the way we install it (so `/metrics` can be served
//! from our own router), the exporter leaves that upkeep to us: the
//! recorder comes with a thread that runs it every
//! [`METRICS_UPKEEP_INTERVAL`], whether or not anyone scrapes. Without it a
//! busy service keeps about 20 bytes per request for good.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

/// How often the recorder's histogram samples are folded into their
/// buckets. Between two upkeeps a service holds the samples of this many
/// seconds of traffic (about 16 bytes each).
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use together
/// with the thread that keeps its memory bounded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = install_recorder();
            keep_up(handle.clone(), METRICS_UPKEEP_INTERVAL);
            handle
        })
        .clone()
}

/// Installs the global recorder with our histogram buckets.
fn install_recorder() -> PrometheusHandle {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let sizes = [
        1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    ];
    // How long work waited in a queue before it was done: from
    // milliseconds (an idle pipeline) to minutes (a backlog), so a p99
    // above the latency buckets' 5 s is still a number.
    let waits = [
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    // The exporter tries suffix matchers in lexical order, so
    // `_delivery_seconds` is matched before `_seconds`.
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_delivery_seconds".into()), &waits))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes));
    match builder {
        Ok(builder) => match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (only possible in tests):
            // keep a private one so rendering still works.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        },
        // Bucket lists above are non-empty constants, so this cannot
        // happen; fall back to summaries rather than panic.
        Err(_) => PrometheusBuilder::new().build_recorder().handle(),
    }
}

/// Runs the exporter's upkeep every `interval` for as long as the process
/// lives. A plain thread rather than a task: the recorder is process-wide
/// and outlives any runtime (tests start one per test), and the upkeep
/// neither awaits nor needs stopping.
///
/// The exporter's sample buffers free drained blocks through
/// `crossbeam-epoch`'s deferred reclamation, which only makes progress when
/// threads pin the epoch, i.e. when samples are recorded. Once traffic
/// stops, the last interval's samples would stay allocated until the next
/// burst; advancing the epoch here (each flush moves it on by at most one
/// step, and garbage is freed two steps after it was retired) frees them
/// now.
fn keep_up(handle: PrometheusHandle, interval: Duration) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                handle.run_upkeep();
                for _ in 0..3 {
                    crossbeam_epoch::pin().flush();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metrics upkeep; histogram samples will pile up until /metrics is scraped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_waits_get_buckets_up_to_minutes_and_latencies_stop_at_seconds() {
        let handle = metrics_handle();
        ::metrics::histogram!("bucket_test_delivery_seconds").record(100.0);
        ::metrics::histogram!("bucket_test_seconds").record(100.0);
        handle.run_upkeep();
        let text = handle.render();
        assert!(
            text.contains("bucket_test_delivery_seconds_bucket{le=\"120\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bucket_test_seconds_bucket{le=\"5\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("bucket_test_seconds_bucket{le=\"120\"}"),
            "{text}"
        );
    }
}
