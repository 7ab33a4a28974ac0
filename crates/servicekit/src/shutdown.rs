//! One cancellation source for the whole process, in two steps.
//!
//! `main` creates a [`Stop`] with [`on_signals_after`]; every server, loop
//! and WebSocket task watches a clone of its [`Stop::now`] token and winds
//! down when it fires, the way mini-redis passes its shutdown broadcast to
//! every connection.
//!
//! Before that, [`Stop::draining`] fires: an orchestrator that sends
//! SIGTERM removes the pod from its Service at the same time, but kube-proxy,
//! ingress controllers and Swarm's routing mesh learn of it a moment later
//! and keep sending new connections meanwhile. So on SIGTERM a web service
//! first answers 503 to its readiness probe (`/servingz`, see
//! [`crate::admin`]) while it keeps accepting and serving for the drain
//! delay (`SHUTDOWN_DELAY_SECONDS`), and only then closes its listener and
//! finishes what is in flight. SIGINT (Ctrl-C: a person at a terminal)
//! skips the delay, and a second signal cuts it short.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The two moments of a service's stop.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Fired first: the service still serves, but asks to be sent no new
    /// clients (its readiness probe answers 503).
    pub draining: CancellationToken,
    /// Fired after the drain delay: listeners close and the work in flight
    /// finishes.
    pub now: CancellationToken,
}

impl Stop {
    /// Draining and stopping at the same moment, when `token` fires: no
    /// drain delay (tests, and services no traffic is routed to).
    pub fn at_once(token: CancellationToken) -> Self {
        Stop {
            draining: token.clone(),
            now: token,
        }
    }
}

impl From<CancellationToken> for Stop {
    fn from(token: CancellationToken) -> Self {
        Stop::at_once(token)
    }
}

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C): a stop
/// without a drain delay.
pub fn on_signals() -> CancellationToken {
    on_signals_after(Duration::ZERO).now
}

/// A [`Stop`] driven by signals: on SIGTERM it starts draining and stops
/// `delay` later; on SIGINT, or on a second signal during the delay, it
/// stops at once.
pub fn on_signals_after(delay: Duration) -> Stop {
    let stop = Stop::default();
    let trigger = stop.clone();
    tokio::spawn(async move {
        let mut signals = Signals::new();
        let first = signals.next().await;
        trigger.draining.cancel();
        if first == Signal::Terminate && !delay.is_zero() {
            tracing::info!(
                delay_seconds = delay.as_secs_f64(),
                "SIGTERM received: readiness answers 503, still serving for the drain delay"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = signals.next() => tracing::info!("a second signal: the drain delay is cut short"),
            }
        }
        tracing::info!("shutdown signal received, finishing in-flight work");
        trigger.now.cancel();
    });
    stop
}

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGTERM: an orchestrator or `kill`.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

/// The process's stop signals, received one after another.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                })
                .ok();
            Signals { term }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for the next SIGTERM or SIGINT.
    async fn next(&mut self) -> Signal {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                // Cannot listen for Ctrl-C: only SIGTERM stops the process.
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            return tokio::select! {
                _ = ctrl_c => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            };
        }
        ctrl_c.await;
        Signal::Interrupt
    }
}
