//! `--verify`: following the result service's live feed (`GET /ws`, JSON
//! `{"a":N,"b":M}`) to see the posted votes arrive end to end.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use contract::Tally;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// An open connection to a result service's live feed.
///
/// result drops a live page that answers none of its pings for two ping
/// intervals (40 s by default), and pings are answered only while the
/// socket is read: keep reading ([`Feed::read_while`]) during anything long.
pub struct Feed {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The last tally read, so one read while busy is not lost to a wait.
    latest: Option<(u64, u64)>,
}

/// The feed's URL for a result service's page URL:
/// `http://result/` → `ws://result/ws`.
pub fn feed_url(result_url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = result_url
        .split_once("://")
        .context("the result URL needs a scheme, like http://result/")?;
    let scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => bail!("unsupported scheme {other:?} in the result URL"),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}/ws"))
}

impl Feed {
    pub async fn connect(result_url: &str) -> anyhow::Result<Self> {
        let url = feed_url(result_url)?;
        let (socket, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .with_context(|| format!("{url} did not answer within 10 s"))??;
        Ok(Feed {
            socket,
            latest: None,
        })
    }

    /// Runs `work` to its end while reading the feed, so its pings are
    /// answered and the connection outlives a long run. A feed that breaks
    /// meanwhile is reported by the next read, after `work` is done.
    pub async fn read_while<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                read = self.read_tally() => {
                    if read.is_err() {
                        return work.await;
                    }
                }
            }
        }
    }

    /// The next tally the feed sends, as `(a, b)`.
    pub async fn next_tally(&mut self, limit: Duration) -> anyhow::Result<(u64, u64)> {
        tokio::time::timeout(limit, self.read_tally())
            .await
            .with_context(|| format!("no tally from the result feed within {limit:?}"))?
    }

    async fn read_tally(&mut self) -> anyhow::Result<(u64, u64)> {
        loop {
            let message = self
                .socket
                .next()
                .await
                .context("the result feed closed")??;
            if let Message::Text(text) = message {
                let tally = Tally::from_feed(&text)
                    .map(|t| (t.a, t.b))
                    .with_context(|| format!("the result feed sent {text:?}, not a tally"))?;
                self.latest = Some(tally);
                return Ok(tally);
            }
        }
    }

    /// Reads tallies until both counts reach `expected`; returns how long
    /// that took.
    pub async fn wait_for(
        &mut self,
        expected: (u64, u64),
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        self.wait_until(limit, |a, b| a >= expected.0 && b >= expected.1)
            .await
    }

    /// Reads tallies until `done(a, b)` holds; returns how long that took.
    pub async fn wait_until(
        &mut self,
        limit: Duration,
        done: impl Fn(u64, u64) -> bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut last = self.latest;
        if let Some((a, b)) = last
            && done(a, b)
        {
            return Ok(started.elapsed());
        }
        while started.elapsed() < limit {
            let remaining = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, self.read_tally()).await {
                Ok(Ok((a, b))) => {
                    if done(a, b) {
                        return Ok(started.elapsed());
                    }
                    last = Some((a, b));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        bail!("after {limit:?} the feed showed {last:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_urls_follow_the_page_url() {
        assert_eq!(feed_url("http://result/").unwrap(), "ws://result/ws");
        assert_eq!(
            feed_url("http://127.0.0.1:5001").unwrap(),
            "ws://127.0.0.1:5001/ws"
        );
        assert_eq!(
            feed_url("https://votes.example/x").unwrap(),
            "wss://votes.example/ws"
        );
        assert!(feed_url("result").is_err());
    }
}
