//! Logging an outage by its changes of state, not by its failures.
//!
//! While Redis or Postgres is down, every request or retry that needs it
//! fails; a warning per failure would flood the log in proportion to the
//! traffic, and bury the one line an operator needs. An [`Outage`] turns a
//! stream of failures and successes into three kinds of lines:
//!
//! - `WARN unavailable` — the first failure after a success, with its error
//!   and what it means for users (`effect`);
//! - `WARN still unavailable` — at most once a minute while it lasts, with
//!   the number of failures so far and the latest error;
//! - `INFO available again` — the first success after failures, with how
//!   many there were and how long it lasted.
//!
//! Every failure is still logged at DEBUG. One `Outage` per dependency is
//! shared by every task that uses it (it is `Sync`); a success costs one
//! atomic load.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often a lasting outage is logged again.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// The state of one dependency as its users see it; see the module docs.
#[derive(Debug)]
pub struct Outage {
    what: &'static str,
    effect: &'static str,
    remind_every: Duration,
    /// Mirrors `down.is_some()`, so successes need no lock.
    failing: AtomicBool,
    down: Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    failures: u64,
    reminded: Instant,
}

impl Outage {
    /// `what` names the dependency (`"Redis"`); `effect` says what its
    /// absence means (`"ballots are refused with 503"`).
    pub fn new(what: &'static str, effect: &'static str) -> Self {
        Outage {
            what,
            effect,
            remind_every: REMIND_EVERY,
            failing: AtomicBool::new(false),
            down: Mutex::new(None),
        }
    }

    /// Logs a lasting outage again every `every` instead of every minute.
    pub fn remind_every(mut self, every: Duration) -> Self {
        self.remind_every = every;
        self
    }

    /// Whether the last outcome was a failure.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Records a failure: a warning if it starts an outage or the last
    /// reminder is old, DEBUG otherwise.
    pub fn failed(&self, error: &dyn Display) {
        let now = Instant::now();
        let mut down = self.lock();
        self.failing.store(true, Ordering::Relaxed);
        let Some(state) = down.as_mut() else {
            *down = Some(Down {
                since: now,
                failures: 1,
                reminded: now,
            });
            tracing::warn!(what = self.what, effect = self.effect, error = %error, "unavailable");
            return;
        };
        state.failures += 1;
        if now.duration_since(state.reminded) >= self.remind_every {
            state.reminded = now;
            tracing::warn!(
                what = self.what,
                failures = state.failures,
                for_s = secs(now.duration_since(state.since)),
                error = %error,
                "still unavailable"
            );
        } else {
            tracing::debug!(what = self.what, failures = state.failures, error = %error, "failed again");
        }
    }

    /// Records a success: ends the outage, if there was one, with a line.
    pub fn succeeded(&self) {
        if !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut down = self.lock();
        self.failing.store(false, Ordering::Relaxed);
        if let Some(state) = down.take() {
            tracing::info!(
                what = self.what,
                failures = state.failures,
                after_s = secs(state.since.elapsed()),
                "available again"
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Down>> {
        // Nothing here can panic while holding the lock; recover anyway.
        self.down
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Seconds with one decimal, for log fields.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::telemetry::capture;

    #[test]
    fn an_outage_is_logged_when_it_starts_and_when_it_ends() {
        let outage = Outage::new("Redis", "ballots are refused");
        let lines = capture(|| {
            outage.succeeded();
            for _ in 0..1000 {
                outage.failed(&"connection refused");
            }
            assert!(outage.is_failing());
            outage.succeeded();
            outage.succeeded();
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["message"], "unavailable");
        assert_eq!(lines[0]["what"], "Redis");
        assert_eq!(lines[0]["effect"], "ballots are refused");
        assert_eq!(lines[0]["error"], "connection refused");
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(lines[1]["message"], "available again");
        assert_eq!(lines[1]["failures"], 1000);
        assert!(!outage.is_failing());
    }

    #[test]
    fn a_lasting_outage_is_recalled_at_most_once_per_reminder_interval() {
        let outage = Outage::new("Postgres", "batches wait").remind_every(Duration::ZERO);
        let lines = capture(|| {
            outage.failed(&"first");
            outage.failed(&"second");
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[1]["message"], "still unavailable");
        assert_eq!(lines[1]["failures"], 2);
        assert_eq!(lines[1]["error"], "second");

        let outage = Outage::new("Postgres", "batches wait");
        let lines = capture(|| {
            for _ in 0..100 {
                outage.failed(&"again");
            }
        });
        assert_eq!(lines.len(), 1, "no reminder within the minute: {lines:#?}");
    }
}
