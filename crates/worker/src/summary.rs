//! The worker's log at INFO under traffic: one summary line per interval
//! (`SUMMARY_SECONDS`) instead of a line per batch.
//!
//! A busy worker stores hundreds of batches a second; a line for each is
//! hundreds of megabytes a day that nobody reads, and it buries the lines
//! that matter (an outage, a takeover, a dead letter). So each batch is
//! logged at DEBUG only, and added to a [`Summary`]; every interval the
//! worker logs what it did in it — ballots, batches, rows changed, dead
//! letters, the queue depth, commit time p50/p99 — or nothing, if it did
//! nothing. The log thus grows with time, at most a line per interval, not
//! with traffic. The same goes for dead letters: the first of an interval
//! is a warning with its reason, the rest are counted (all of them are in
//! `votes:dead` with their reasons).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::BatchReport;

/// Commit times above this (in µs) are recorded as this: an hour.
const LONGEST_COMMIT_US: u64 = 3_600_000_000;

/// What the worker did since the last summary.
#[derive(Debug)]
pub struct Summary {
    since: Instant,
    ballots: u64,
    batches: u64,
    changed: u64,
    dead_lettered: u64,
    queue_depth: u64,
    /// Commit times in µs: fixed size, whatever the number of batches.
    commits: Histogram<u64>,
    /// Whether a dead letter was already logged as a warning.
    dead_letter_warned: bool,
}

/// One interval's figures, as the summary line shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Valid ballots taken and stored (replays and stale ones included).
    pub ballots: u64,
    pub batches: u64,
    /// Rows inserted or changed.
    pub changed: u64,
    pub dead_lettered: u64,
    /// Ballots still queued after the interval's last claim.
    pub queue_depth: u64,
    pub commit_ms_p50: f64,
    pub commit_ms_p99: f64,
    /// How long the interval lasted.
    pub interval_s: f64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

impl Summary {
    /// An empty summary whose interval starts now.
    pub fn new() -> Self {
        Summary {
            since: Instant::now(),
            ballots: 0,
            batches: 0,
            changed: 0,
            dead_lettered: 0,
            queue_depth: 0,
            // Two significant digits: a few kilobytes, allocated once. It
            // fails only for bounds or precision out of range, and these
            // are constants in range.
            commits: Histogram::new_with_bounds(1, LONGEST_COMMIT_US, 2)
                .expect("1 ≤ low, 2·low ≤ high and 2 significant digits are valid"),
            dead_letter_warned: false,
        }
    }

    /// Adds one stored batch.
    pub fn record(&mut self, report: &BatchReport) {
        self.batches += 1;
        self.ballots += report.ballots.saturating_sub(report.dead_lettered) as u64;
        self.changed += report.changed;
        self.dead_lettered += report.dead_lettered as u64;
        self.queue_depth = report.queue_depth;
        let us = u64::try_from(report.commit.as_micros()).unwrap_or(u64::MAX);
        self.commits
            .saturating_record(us.clamp(1, LONGEST_COMMIT_US));
    }

    /// True the first time in an interval: the caller logs that dead
    /// letter as a warning, later ones at DEBUG.
    pub fn first_dead_letter(&mut self) -> bool {
        !std::mem::replace(&mut self.dead_letter_warned, true)
    }

    /// How long the current interval has lasted.
    pub fn age(&self) -> Duration {
        self.since.elapsed()
    }

    /// The figures since the last call, or `None` if no batch was stored;
    /// starts a new interval either way.
    pub fn take(&mut self) -> Option<Figures> {
        let done = std::mem::take(self);
        if done.batches == 0 {
            return None;
        }
        let ms = |q: f64| done.commits.value_at_quantile(q) as f64 / 1000.0;
        Some(Figures {
            ballots: done.ballots,
            batches: done.batches,
            changed: done.changed,
            dead_lettered: done.dead_lettered,
            queue_depth: done.queue_depth,
            commit_ms_p50: round2(ms(0.5)),
            commit_ms_p99: round2(ms(0.99)),
            interval_s: round2(done.since.elapsed().as_secs_f64()),
        })
    }

    /// Logs the figures since the last summary at INFO, if there are any,
    /// and starts a new interval.
    pub fn flush(&mut self) {
        if let Some(f) = self.take() {
            tracing::info!(
                ballots = f.ballots,
                batches = f.batches,
                changed = f.changed,
                dead_lettered = f.dead_lettered,
                queue_depth = f.queue_depth,
                commit_ms_p50 = f.commit_ms_p50,
                commit_ms_p99 = f.commit_ms_p99,
                interval_s = f.interval_s,
                "summary"
            );
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(ballots: usize, dead: usize, commit_ms: u64) -> BatchReport {
        BatchReport {
            ballots,
            voters: ballots - dead,
            changed: (ballots - dead) as u64,
            dead_lettered: dead,
            queue_depth: 7,
            commit: Duration::from_millis(commit_ms),
        }
    }

    #[test]
    fn an_interval_without_batches_has_no_summary() {
        let mut summary = Summary::new();
        assert_eq!(summary.take(), None);
        summary.record(&report(1, 0, 1));
        assert!(summary.take().is_some());
        assert_eq!(summary.take(), None, "a new interval starts empty");
    }

    #[test]
    fn the_summary_adds_up_the_batches_and_ranks_commit_times() {
        let mut summary = Summary::new();
        for i in 0..100 {
            summary.record(&report(10, 1, if i == 99 { 500 } else { 2 }));
        }
        let f = summary.take().unwrap();
        assert_eq!(
            (
                f.ballots,
                f.batches,
                f.changed,
                f.dead_lettered,
                f.queue_depth
            ),
            (900, 100, 900, 100, 7)
        );
        assert!((1.9..=2.1).contains(&f.commit_ms_p50), "{f:?}");
        assert!((1.9..=2.1).contains(&f.commit_ms_p99), "{f:?}");
        summary.record(&report(1, 0, 500));
        assert!(
            (490.0..=510.0).contains(&summary.take().unwrap().commit_ms_p99),
            "the next interval ranks only its own commits"
        );
    }

    #[test]
    fn one_dead_letter_warning_per_interval() {
        let mut summary = Summary::new();
        assert!(summary.first_dead_letter());
        assert!(!summary.first_dead_letter());
        summary.take();
        assert!(summary.first_dead_letter());
    }
}
