//! The metrics recorder's memory stays bounded while nothing scrapes
//! `/metrics`.
//!
//! The Prometheus exporter keeps every raw histogram sample until its
//! upkeep folds them into buckets; a service that only installs the
//! recorder must run that upkeep itself, or every request's latency sample
//! stays in memory for good. This binary counts live heap bytes with a
//! wrapping global allocator (its own binary, so no other test's
//! allocations blur the figure) and records samples the way a busy service
//! does, without ever rendering the metrics.

use std::alloc::System;
use std::time::Duration;

use cap::Cap;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Samples recorded per histogram: about a minute of a busy vote replica.
/// Kept, they take about 16 bytes each (32 MB for both histograms); folded
/// into buckets, nothing.
const SAMPLES: usize = 1_000_000;
/// Heap growth left over once the samples are folded: the series and their
/// buckets, a few kilobytes, with room for the runtime's own allocations.
const BOUND_BYTES: usize = 1 << 20;

#[tokio::test]
async fn histogram_samples_are_let_go_while_nothing_scrapes() {
    // What every service's `main` does first.
    servicekit::telemetry::init();
    let latency = metrics::histogram!("http_request_duration_seconds", "route" => "/");
    let sizes = metrics::histogram!("batch_size");
    let before = HEAP.allocated();
    for i in 0..SAMPLES {
        latency.record(0.001);
        sizes.record((i % 1000) as f64);
    }
    let retained = HEAP.allocated().saturating_sub(before);
    let what = format!(
        "the heap to shrink back within {BOUND_BYTES} bytes of where it was before \
         {SAMPLES} samples per histogram were recorded ({retained} bytes held right after)"
    );
    // The upkeep runs on a timer; give it a few rounds.
    testkit::eventually(&what, Duration::from_secs(30), || async {
        (HEAP.allocated().saturating_sub(before) < BOUND_BYTES).then_some(())
    })
    .await;
}
