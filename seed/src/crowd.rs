//! A crowd of live-feed clients: many WebSocket connections to a result
//! service, each timestamping every tally it receives. Used to measure
//! fan-out — how long after a commit the *last* open page sees it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::verify::feed_url;

/// One tally as one client saw it.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    client: usize,
    total: u64,
    at: Instant,
}

/// `n` open connections to a result service's live feed.
pub struct Crowd {
    size: usize,
    sightings: mpsc::UnboundedReceiver<Sighting>,
    tasks: JoinSet<()>,
}

impl Crowd {
    /// Opens `size` connections (at most 200 handshakes at a time) and waits
    /// until every one has received its first tally.
    pub async fn connect(result_url: &str, size: usize) -> anyhow::Result<Crowd> {
        let url = feed_url(result_url)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
        for client in 0..size {
            let url = url.clone();
            let tx = tx.clone();
            let gate = gate.clone();
            tasks.spawn(async move {
                let socket = {
                    let _permit = gate.acquire().await;
                    match tokio_tungstenite::connect_async(url.as_str()).await {
                        Ok((socket, _)) => socket,
                        Err(_) => return,
                    }
                };
                let (_, mut read) = socket.split();
                while let Some(Ok(message)) = read.next().await {
                    if let Message::Text(text) = message
                        && let Some(total) = tally_total(&text)
                    {
                        let _ = tx.send(Sighting {
                            client,
                            total,
                            at: Instant::now(),
                        });
                    }
                }
            });
        }
        drop(tx);
        let mut greeted = vec![false; size];
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while count < size {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(s)) if !greeted[s.client] => {
                    greeted[s.client] = true;
                    count += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("only {count} of {size} clients connected to {url}"),
                Err(_) => bail!("only {count} of {size} clients connected within 120 s"),
            }
        }
        Ok(Crowd {
            size,
            sightings: rx,
            tasks,
        })
    }

    /// Waits until every client has seen a tally with at least `total`
    /// votes; returns how long after `since` the last one saw it.
    pub async fn all_see(
        &mut self,
        total: u64,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let mut seen = vec![false; self.size];
        let mut count = 0;
        let mut last = since;
        let deadline = Instant::now() + limit;
        while count < self.size {
            let left = deadline.saturating_duration_since(Instant::now());
            let sighting = tokio::time::timeout(left, self.sightings.recv())
                .await
                .with_context(|| format!("{count} of {} clients saw {total} votes", self.size))?
                .context("every client disconnected")?;
            if sighting.total >= total && !seen[sighting.client] {
                seen[sighting.client] = true;
                count += 1;
                last = last.max(sighting.at);
            }
        }
        Ok(last.saturating_duration_since(since))
    }

    /// Closes every connection.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// `a + b` from a live-feed message `{"a":N,"b":M}`.
pub fn tally_total(text: &str) -> Option<u64> {
    contract::Tally::from_feed(text).map(|t| t.total())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_come_from_the_live_feed_json() {
        assert_eq!(tally_total(r#"{"a":2,"b":1}"#), Some(3));
        assert_eq!(tally_total("nope"), None);
        assert_eq!(tally_total(r#"{"a":2}"#), None);
    }
}
