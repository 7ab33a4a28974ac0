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
    // Metrics recorded before the recorder exists are lost for good, and
    // tasks start before the router that serves `/metrics` is built. After
    // the subscriber, so a failure to start its upkeep is logged.
    crate::metric::metrics_handle();
}

/// Runs `f` with a subscriber that keeps the INFO and higher events it
/// logs on this thread, and returns them as the JSON objects
/// `RUST_LOG_FORMAT=json` prints.
#[cfg(test)]
pub(crate) fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .json()
        .flatten_event(true)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
