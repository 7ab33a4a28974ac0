//! What the crowd has seen, shared between the reader thread that records
//! it and the handle whose waits read it: one mutex-guarded record and a
//! condition variable the reader signals when a wait may be over.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) changed: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    /// The total the current round waits for.
    pub(crate) target: u64,
    /// When each client first saw a tally with at least `target` votes.
    pub(crate) arrived: Vec<Option<Instant>>,
    pub(crate) arrivals: usize,
    /// Clients that have had their first tally (the one sent on connect).
    pub(crate) greeted: Vec<bool>,
    pub(crate) greetings: usize,
    /// Clients the server closed with 1001 (going away).
    pub(crate) going_away: usize,
    /// Clients whose connection ended, for any reason.
    pub(crate) gone: usize,
    /// The first thing that went wrong, if anything did.
    pub(crate) error: Option<String>,
}

impl Shared {
    /// A record for `size` clients.
    pub(crate) fn new(size: usize) -> Shared {
        let shared = Shared::default();
        {
            let mut state = shared.lock();
            state.arrived = vec![None; size];
            state.greeted = vec![false; size];
        }
        shared
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the reader panicked; its state is still the
        // best account of what happened.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// Client `i` read tallies with these `totals` at `now`: its first
    /// tally greets it, and one at or above the round's target is its
    /// arrival. Returns whether every client is now greeted or has
    /// arrived, i.e. whether a wait may be over.
    pub(crate) fn saw(&mut self, i: usize, totals: &[u64], now: Instant) -> bool {
        if totals.is_empty() {
            return false;
        }
        let size = self.arrived.len();
        let mut complete = false;
        if !self.greeted[i] {
            self.greeted[i] = true;
            self.greetings += 1;
            complete |= self.greetings == size;
        }
        if totals.iter().any(|&t| t >= self.target) && self.arrived[i].is_none() {
            self.arrived[i] = Some(now);
            self.arrivals += 1;
            complete |= self.arrivals == size;
        }
        complete
    }
}
