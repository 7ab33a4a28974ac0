//! Posting the votes: the concurrent request loop, its pacing, and how
//! each request's outcome is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use contract::Vote;

use crate::progress::Progress;
use crate::report::{Outcome, Report};
use crate::settings::Settings;
use crate::stalls::StallWatch;

/// The vote form for `vote`, as a browser posts it.
fn form(vote: Vote) -> &'static str {
    match vote {
        Vote::A => "vote=a",
        Vote::B => "vote=b",
    }
}

/// The HTTP client: no cookies (every request is a new voter), a pool big
/// enough for the concurrency, the per-request timeout.
pub fn client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout))
        .connect_timeout(Duration::from_secs(settings.timeout.min(5)))
        .pool_max_idle_per_host(settings.concurrency as usize)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .user_agent(concat!("voting-seed/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Waits until the target answers any HTTP request, retrying with backoff
/// for at most `limit`.
pub async fn wait_for_target(
    client: &reqwest::Client,
    target: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut announced = false;
    loop {
        match client.get(target).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                if started.elapsed() + delay > limit {
                    anyhow::bail!(
                        "gave up after {:.0?}: {}",
                        started.elapsed(),
                        error_chain(&e)
                    );
                }
                if !announced {
                    eprintln!("seed: waiting for {target} to answer ({})", error_chain(&e));
                    announced = true;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Posts every planned vote and returns what happened.
pub async fn post_votes(client: &reqwest::Client, settings: &Settings) -> Report {
    let runs = settings.plan();
    let total: u64 = runs.iter().map(|r| r.count).sum();
    let deadline = settings
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let progress = Progress::new(settings.progress, deadline.is_none().then_some(total));
    let pacer = settings.rate.map(|rate| Arc::new(Pacer::new(rate)));
    let started = Instant::now();
    let stalls = StallWatch::new(settings.rate);
    let mut report = Report::new(settings.target.clone(), settings.concurrency);

    'soak: loop {
        for run in &runs {
            let next = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..settings.concurrency)
                .map(|_| {
                    let client = client.clone();
                    let target = settings.target.clone();
                    let next = next.clone();
                    let pacer = pacer.clone();
                    let progress = progress.clone();
                    let stalls = stalls.clone();
                    let run = *run;
                    tokio::spawn(async move {
                        let mut local = Report::new(String::new(), 0);
                        while next.fetch_add(1, Ordering::Relaxed) < run.count {
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                break;
                            }
                            if let Some(pacer) = &pacer {
                                pacer.wait_turn().await;
                            }
                            let outcome = post_one(&client, &target, run.vote).await;
                            let ok = matches!(outcome, Outcome::Ok(_));
                            if ok {
                                stalls.succeeded();
                            }
                            progress.tick(!ok);
                            local.record(run.vote, outcome);
                        }
                        local
                    })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(local) => report.merge(local),
                    Err(e) => report.record(run.vote, Outcome::Failed(format!("task failed: {e}"))),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break 'soak;
            }
        }
        // A soak repeats the runs until the deadline; with nothing to post
        // (0 votes) there is nothing to repeat.
        if deadline.is_none() || total == 0 {
            break;
        }
    }
    report.elapsed = started.elapsed();
    report.stalls = stalls.finish();
    progress.finish();
    report
}

async fn post_one(client: &reqwest::Client, target: &str, vote: Vote) -> Outcome {
    let started = Instant::now();
    let sent = client
        .post(target)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form(vote))
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => {
            // Read the page so the connection can be reused.
            match res.bytes().await {
                Ok(_) => Outcome::Ok(started.elapsed()),
                Err(e) => Outcome::Failed(classify(&e)),
            }
        }
        Ok(res) => Outcome::Refused(format!("HTTP {}", res.status()), started.elapsed()),
        Err(e) => Outcome::Failed(classify(&e)),
    }
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else {
        format!("error: {}", error_chain(e))
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Spaces requests evenly to hold a rate: request `n` may start at
/// `start + n / rate`.
struct Pacer {
    start: tokio::time::Instant,
    interval: Duration,
    issued: AtomicU64,
}

impl Pacer {
    fn new(rate: u32) -> Self {
        Pacer {
            start: tokio::time::Instant::now(),
            interval: Duration::from_secs(1) / rate,
            issued: AtomicU64::new(0),
        }
    }

    async fn wait_turn(&self) {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let at = self.start + self.interval * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at).await;
    }
}
