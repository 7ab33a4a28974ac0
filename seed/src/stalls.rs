//! When voting stood still: stretches of a run in which no vote succeeded
//! for longer than a threshold, as a failover or an outage makes them.
//!
//! Every successful answer is reported here, from whichever task got it;
//! a gap since the previous one longer than the threshold is a stall. The
//! threshold is a second, or five request intervals at a capped rate if
//! that is longer, so a slow `--rate` is not mistaken for an outage.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One stretch without a successful vote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// When it began (the last success before it), from the run's start.
    pub from: Duration,
    /// How long it lasted.
    pub length: Duration,
}

/// Shared by a run's tasks: cheap to clone.
#[derive(Debug, Clone)]
pub struct StallWatch {
    started: Instant,
    threshold: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    last_success: Duration,
    found: Vec<Stall>,
}

impl StallWatch {
    /// A watch for a run starting now, at `rate` requests a second at most.
    pub fn new(rate: Option<u32>) -> Self {
        let paced = rate
            .filter(|&r| r > 0)
            .map_or(Duration::ZERO, |r| Duration::from_secs(5) / r);
        StallWatch {
            started: Instant::now(),
            threshold: paced.max(Duration::from_secs(1)),
            state: Arc::default(),
        }
    }

    /// A vote succeeded now.
    pub fn succeeded(&self) {
        self.mark(self.started.elapsed());
    }

    fn mark(&self, at: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let gap = at.saturating_sub(state.last_success);
        if gap > self.threshold {
            let from = state.last_success;
            state.found.push(Stall { from, length: gap });
        }
        state.last_success = state.last_success.max(at);
    }

    /// The stalls of the run, the one it may have ended in included.
    pub fn finish(&self) -> Vec<Stall> {
        self.mark(self.started.elapsed());
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.found.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gaps_longer_than_the_threshold_are_stalls() {
        let watch = StallWatch::new(None);
        let s = Duration::from_millis;
        for at in [100, 600, 1500, 4500, 4600] {
            watch.mark(s(at));
        }
        let found = watch.state.lock().unwrap().found.clone();
        assert_eq!(
            found,
            [Stall {
                from: s(1500),
                length: s(3000)
            }]
        );
    }

    #[test]
    fn a_slow_rate_raises_the_threshold() {
        assert_eq!(StallWatch::new(Some(1)).threshold, Duration::from_secs(5));
        assert_eq!(StallWatch::new(Some(100)).threshold, Duration::from_secs(1));
        assert_eq!(StallWatch::new(Some(0)).threshold, Duration::from_secs(1));
    }
}
