//! The bench's live-feed clients: tokio-tungstenite connections that note
//! when each one receives the tally a round waits for.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use contract::Tally;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long a round may take before it counts as missed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection attempts in flight while opening clients.
const CONNECT_CONCURRENCY: usize = 200;

/// What the clients saw, shared with the bench's main loop.
pub struct Feed {
    base: Instant,
    /// The total of the tally the current round waits for.
    pub expected_total: AtomicU64,
    /// When each client received it, in ns since `base`.
    received: Mutex<Vec<u64>>,
    count: AtomicUsize,
    pub closed: AtomicUsize,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            base: Instant::now(),
            expected_total: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        }
    }
}

impl Feed {
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    pub fn expect(&self, tally: Tally) {
        let mut received = self.received.lock().unwrap();
        received.clear();
        self.count.store(0, Ordering::SeqCst);
        self.expected_total.store(tally.total(), Ordering::SeqCst);
    }

    fn record(&self, tally: Tally) {
        let now = self.now_ns();
        if tally.total() == self.expected_total.load(Ordering::SeqCst) {
            self.received.lock().unwrap().push(now);
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until `clients` clients have received `tally`; their arrival
    /// times.
    pub async fn wait_all(&self, tally: Tally, clients: usize) -> anyhow::Result<Vec<u64>> {
        let started = Instant::now();
        while self.count.load(Ordering::SeqCst) < clients {
            if started.elapsed() > ROUND_TIMEOUT {
                bail!(
                    "only {} of {clients} clients got {tally:?} within {ROUND_TIMEOUT:?}",
                    self.count.load(Ordering::SeqCst)
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(std::mem::take(&mut *self.received.lock().unwrap()))
    }
}

/// Opens clients until there are `target`, each reading on its own task.
pub async fn open_clients(
    clients: &mut Vec<tokio::task::JoinHandle<()>>,
    target: usize,
    port: u16,
    feed: &Arc<Feed>,
) -> anyhow::Result<()> {
    // Connected clients get the current tally first: count them anew.
    feed.expect(Tally {
        a: feed.expected_total.load(Ordering::SeqCst),
        b: 0,
    });
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut connecting = tokio::task::JoinSet::new();
    for _ in clients.len()..target {
        let permit = gate.clone().acquire_owned().await?;
        connecting.spawn(async move {
            let config = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let connected = tokio_tungstenite::connect_async_with_config(
                format!("ws://127.0.0.1:{port}/ws"),
                Some(config),
                true,
            )
            .await;
            drop(permit);
            connected.map(|(ws, _)| ws)
        });
    }
    while let Some(connected) = connecting.join_next().await {
        let mut ws = connected?.context("connecting a client")?;
        let feed = feed.clone();
        clients.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                match message {
                    Message::Text(text) => {
                        if let Ok(tally) = serde_json::from_str::<Tally>(text.as_str()) {
                            feed.record(tally);
                        }
                    }
                    Message::Close(Some(frame)) if u16::from(frame.code) == 1001 => {
                        feed.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    Ok(())
}
