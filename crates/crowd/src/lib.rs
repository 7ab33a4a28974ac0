//! A crowd of cheap live-feed clients, for measuring fan-out: how long after
//! a commit the *last* of N open result pages has the new tally.
//!
//! A full WebSocket client per connection (a tokio task, a tungstenite
//! stream, a channel message per tally) costs more CPU than the server's
//! own send to it, so with thousands of them the crowd, not the server,
//! is what gets measured. Here every connection is a raw non-blocking
//! socket, all of them served by one thread on one `mio` poll: it writes
//! the upgrade request, reads the `101` answer, then reads unmasked frames
//! straight from the socket buffer, answers pings, and notes the instant
//! each client first sees a tally at or above the total a round waits for.
//! What it does per message is a few hundred nanoseconds of parsing, the
//! same for any server it reads from — so the bench's floor broadcaster and
//! the result service are read by exactly the same crowd.
//!
//! This file is the handle a bench holds ([`Crowd`]: connect, start a
//! round, wait for it). The thread is `reader`, what it has seen is
//! `state` (shared with the handle's waits), and the little of RFC 6455 it
//! speaks is `websocket`.
//!
//! Used by result's `fanout` bench and by `cargo xtask bench`; it depends
//! on the contract (for the tally message) and `mio`, nothing heavier, so
//! nothing that a service builds.

mod reader;
mod state;
mod websocket;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::Poll;

use reader::Reader;
use state::{Shared, State};

/// `N` open connections to a live feed, read by one thread.
pub struct Crowd {
    size: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Crowd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crowd").field("size", &self.size).finish()
    }
}

/// The socket address of a result page's URL (`http://127.0.0.1:5001/`).
pub fn feed_addr(result_url: &str) -> anyhow::Result<SocketAddr> {
    let rest = result_url
        .split_once("://")
        .map_or(result_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .to_socket_addrs()
        .with_context(|| format!("no address for {authority:?}"))?
        .next()
        .with_context(|| format!("no address for {authority:?}"))
}

impl Crowd {
    /// Opens `size` connections to `GET /ws` at `addr` and returns once each
    /// has received its first tally, or fails after `limit`.
    pub fn connect(addr: SocketAddr, size: usize, limit: Duration) -> anyhow::Result<Crowd> {
        let shared = Arc::new(Shared::new(size));
        let stop = Arc::new(AtomicBool::new(false));
        let poll = Poll::new().context("creating the crowd's poll")?;
        let reader = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("crowd".into())
                .spawn(move || {
                    let mut reader = Reader::new(addr, size, poll, shared.clone());
                    if let Err(e) = reader.run(&stop) {
                        shared.lock().error.get_or_insert(format!("{e:#}"));
                        shared.changed.notify_all();
                    }
                })
                .context("starting the crowd's thread")?
        };
        let crowd = Crowd {
            size,
            shared,
            stop,
            reader: Some(reader),
        };
        drop(crowd.wait_for(
            limit,
            |s| s.greetings == size,
            |s| format!("only {} of {size} clients had a tally", s.greetings),
        )?);
        Ok(crowd)
    }

    /// How many clients the crowd holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Starts a round: from now on, note when each client first sees a
    /// tally with at least `total` votes. Call it before causing the tally.
    pub fn expect(&self, total: u64) {
        let mut state = self.shared.lock();
        state.target = total;
        state.arrived.iter_mut().for_each(|a| *a = None);
        state.arrivals = 0;
    }

    /// Waits until every client has seen the expected total; returns when
    /// each one saw it.
    pub fn wait_all(&self, limit: Duration) -> anyhow::Result<Vec<Instant>> {
        let size = self.size;
        let state = self.wait_for(
            limit,
            |s| s.arrivals == size,
            |s| {
                format!(
                    "only {} of {size} clients saw {} votes",
                    s.arrivals, s.target
                )
            },
        )?;
        Ok(state.arrived.iter().flatten().copied().collect())
    }

    /// Clients the server closed with "going away" (1001), as a shutting
    /// down result service does.
    pub fn going_away(&self) -> usize {
        self.shared.lock().going_away
    }

    /// Waits until every connection has ended (after the server's
    /// shutdown), or `limit`.
    pub fn wait_closed(&self, limit: Duration) -> anyhow::Result<()> {
        let size = self.size;
        self.wait_for(
            limit,
            |s| s.gone == size,
            |s| format!("{} of {size} connections still open", size - s.gone),
        )
        .map(drop)
    }

    fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&State) -> bool,
        short: impl Fn(&State) -> String,
    ) -> anyhow::Result<MutexGuard<'_, State>> {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        loop {
            if done(&state) {
                return Ok(state);
            }
            if let Some(error) = &state.error {
                bail!("{}: {error}", short(&state));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{} within {limit:?}", short(&state));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_addresses_come_from_page_urls() {
        assert_eq!(
            feed_addr("http://127.0.0.1:5001/").unwrap(),
            "127.0.0.1:5001".parse().unwrap()
        );
        assert!(feed_addr("http://127.0.0.1/").is_err());
    }
}
