//! Watching result's live feed during a run, to tell how long it stood
//! still after each Postgres crash — and the measure itself, which vote's
//! acknowledgements after a Redis crash share.
//!
//! The watcher holds one WebSocket to a result process and notes when each
//! tally arrives (reconnecting if the socket drops). Ballots flow all run
//! long and nearly every batch changes the split, so the feed moves every
//! few milliseconds — except while no commit can happen, and ballots
//! queued meanwhile are committed as soon as one can. How long it stood
//! still is [`resumed_after`] the crash.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// When each tally arrived.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    fn note(&self) {
        if let Ok(mut times) = self.0.lock() {
            times.push(Instant::now());
        }
    }

    /// Every arrival so far, in order.
    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// Longer than any pause between two events while things flow (tallies
/// and acknowledgements come every few milliseconds under load), shorter
/// than any outage worth reporting.
pub const STALL: Duration = Duration::from_millis(250);

/// How long after `crash` the events in `times` (sorted) resumed: the end
/// of the first pause longer than [`STALL`] after the crash, counted from
/// the crash. Without such a pause, the first event after the crash; None
/// if there is none.
///
/// The end of a pause, not simply the first event after the crash: answers
/// already on their way when the store died arrive a moment later and say
/// nothing about the store. A pause that began before the crash (the
/// voters waiting for it to strike) counts only from the crash.
pub fn resumed_after(times: &[Instant], crash: Instant) -> Option<Duration> {
    let mut previous = crash;
    let after: Vec<Instant> = times.iter().copied().filter(|&t| t > crash).collect();
    for &t in &after {
        if t - previous > STALL {
            return Some(t - crash);
        }
        previous = t;
    }
    after.first().map(|&t| t - crash)
}

/// Watches the feed at `url` until the task is aborted.
pub fn watch(url: String) -> (JoinHandle<()>, Arrivals) {
    let arrivals = Arrivals::default();
    let noted = arrivals.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() {
                        noted.note();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (task, arrivals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_resume_at_the_end_of_the_pause_around_the_crash() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Events every 10 ms until 100, one in flight at 102, then none
        // until 3100.
        let times = [at(80), at(90), at(100), at(102), at(3100), at(3110)];
        assert_eq!(
            resumed_after(&times, at(101)),
            Some(Duration::from_millis(2999))
        );
        // No pause: the first event after the crash.
        let steady = [at(90), at(100), at(110), at(120)];
        assert_eq!(
            resumed_after(&steady, at(101)),
            Some(Duration::from_millis(9))
        );
        // A pause before the crash is not the crash's.
        let waited = [at(0), at(500), at(520)];
        assert_eq!(
            resumed_after(&waited, at(490)),
            Some(Duration::from_millis(10))
        );
        // Nothing after the crash.
        assert_eq!(resumed_after(&times[..3], at(101)), None);
    }
}
