//! What a service in the test process logs, as the JSON objects
//! `RUST_LOG_FORMAT=json` prints, caught on the test's own thread so that
//! other tests running alongside do not mix in.

use std::sync::{Arc, Mutex, OnceLock};

/// The INFO and higher events logged on this thread while it lives. A
/// `#[tokio::test]` runs the test and every task it spawns on its thread
/// (the default current-thread runtime), so a service it serves logs here.
pub struct Captured {
    logs: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Captured {
    /// Catches this thread's events until dropped.
    pub fn on_this_thread() -> Self {
        ask_every_subscriber();
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .json()
            .flatten_event(true)
            .finish();
        Captured {
            logs,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Every event caught so far, oldest first.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&logs)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// `tracing` caches, per call site, whether any subscriber wants its
/// events; while a single subscriber is registered it asks only the current
/// thread's. A call site first reached on another test's thread (which has
/// none) would be cached as unwanted, and this thread's events from it lost.
/// A second subscriber that lives as long as the process makes `tracing`
/// ask every registered one instead.
fn ask_every_subscriber() {
    static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

/// Log lines written to memory.
pub(crate) struct LogSink(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
