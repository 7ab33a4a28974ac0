//! Progress output while the seed posts: a bar on a terminal, a line per
//! second in logs, or nothing.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, lines otherwise.
    Auto,
    Bar,
    Lines,
    None,
}

/// A bar on a terminal, or a line per second for logs.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    ticker: Option<Arc<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    pub fn new(mode: ProgressMode, total: Option<u64>) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        };
        let mut progress = Progress {
            bar: None,
            done: done.clone(),
            failed: failed.clone(),
            ticker: None,
        };
        match mode {
            ProgressMode::Bar => {
                let bar = match total {
                    Some(total) => ProgressBar::new(total),
                    None => ProgressBar::new_spinner(),
                };
                let template = if total.is_some() {
                    "{bar:40.cyan/blue} {pos}/{len} votes  {per_sec}  eta {eta}  {msg}"
                } else {
                    "{spinner} {pos} votes  {per_sec}  {elapsed}  {msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                progress.bar = Some(bar);
            }
            ProgressMode::Lines => {
                let ticker = tokio::spawn(async move {
                    let started = Instant::now();
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    every.tick().await;
                    loop {
                        every.tick().await;
                        let n = done.load(Ordering::Relaxed);
                        let rate = n as f64 / started.elapsed().as_secs_f64();
                        let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                        eprintln!(
                            "seed: {n}{of} votes posted, {} failed, {rate:.0} req/s",
                            failed.load(Ordering::Relaxed)
                        );
                    }
                });
                progress.ticker = Some(Arc::new(ticker));
            }
            ProgressMode::Auto | ProgressMode::None => {}
        }
        progress
    }

    pub fn tick(&self, failed: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(bar) = &self.bar {
                bar.set_message(format!("{n} failed"));
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}
