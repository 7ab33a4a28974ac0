//! Logging for every binary: one line per event through `tracing`; and the
//! Prometheus recorder, installed before any task can record a metric.
//!
//! `RUST_LOG` sets levels (default `info`); `RUST_LOG_FORMAT=json` switches
//! to one JSON object per line for log collectors. Colours only on a
//! terminal, so `docker logs` and files stay plain.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber and the metrics recorder. Call once,
/// first thing in `main`.
pub fn init() {
    // Metrics recorded before the recorder exists are lost for good, and
    // tasks start before the router that serves `/metrics` is built.
    crate::health::metrics_handle();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RUST_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set (tests); fine.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
