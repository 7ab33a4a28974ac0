//! The seed: load for the voting app, the way the original's seed profile
//! made it with ApacheBench.
//!
//! By default it posts 3,000 votes to the vote service — 1,000 for `a`,
//! 1,000 for `b`, then 1,000 more for `a` (the original's order of runs),
//! 50 at a time — each request without a cookie, so each is a new voter.
//! Then it reports what it did: successes, failures by cause, throughput
//! and latency percentiles. With `--verify` it also follows the result
//! service's live feed until the new votes show up, and reports how long
//! that took end to end.
//!
//! The counts, concurrency, target, an optional rate limit and a duration
//! for soak runs are flags (and environment variables for compose).

pub mod crowd;
pub mod load;
pub mod report;
pub mod verify;

use std::time::Duration;

use anyhow::Context;

pub use load::{Run, Vote, plan};
pub use report::Report;

/// What the seed does, from flags or environment.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// The vote service to post to.
    #[arg(long, env = "SEED_TARGET", default_value = "http://vote/")]
    pub target: String,
    /// Votes for option `a` (posted in two runs, before and after `b`'s).
    #[arg(short = 'a', long, env = "SEED_VOTES_A", default_value_t = 2000)]
    pub votes_a: u64,
    /// Votes for option `b`.
    #[arg(short = 'b', long, env = "SEED_VOTES_B", default_value_t = 1000)]
    pub votes_b: u64,
    /// Requests in flight at once.
    #[arg(short = 'c', long, env = "SEED_CONCURRENCY", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Cap on requests per second (default: as fast as the target answers).
    #[arg(long, env = "SEED_RATE", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Soak mode: keep repeating the runs for this many seconds instead of
    /// posting the counts once.
    #[arg(long, env = "SEED_DURATION", value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Seconds one request may take before it counts as failed.
    #[arg(
        long,
        env = "SEED_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub timeout: u64,
    /// Seconds to wait for the target to answer at all before giving up.
    #[arg(long, env = "SEED_WAIT", default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
    /// After posting, follow this result service's live feed (e.g.
    /// `http://result/`) until it shows the new votes.
    #[arg(long, env = "SEED_VERIFY", value_name = "RESULT_URL")]
    pub verify: Option<String>,
    /// Seconds `--verify` waits for the votes to show.
    #[arg(
        long,
        env = "SEED_VERIFY_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub verify_timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "SEED_REPORT_JSON", value_name = "FILE")]
    pub report_json: Option<std::path::PathBuf>,
    /// Progress output: a bar on a terminal, periodic lines otherwise.
    #[arg(long, env = "SEED_PROGRESS", default_value = "auto")]
    pub progress: load::ProgressMode,
}

/// Runs the seed end to end: wait for the target, (baseline the result
/// feed), post, (verify), and return the report. An `Err` means the seed
/// could not do its job at all (target unreachable, verify failed); request
/// failures are in the report.
pub async fn run(settings: &Settings) -> anyhow::Result<Report> {
    let client = load::client(settings)?;
    load::wait_for_target(
        &client,
        &settings.target,
        Duration::from_secs(settings.wait),
    )
    .await
    .with_context(|| format!("the vote service at {} never answered", settings.target))?;

    let mut feed = match &settings.verify {
        Some(url) => Some(
            verify::Feed::connect(url)
                .await
                .with_context(|| format!("cannot follow the result feed at {url}"))?,
        ),
        None => None,
    };
    let baseline = match feed.as_mut() {
        Some(feed) => Some(feed.next_tally(Duration::from_secs(10)).await?),
        None => None,
    };

    let mut report = load::post_votes(&client, settings).await;

    if let (Some(feed), Some(baseline)) = (feed.as_mut(), baseline) {
        let expected = (
            baseline.0 + report.succeeded(Vote::A),
            baseline.1 + report.succeeded(Vote::B),
        );
        let waited = feed
            .wait_for(expected, Duration::from_secs(settings.verify_timeout))
            .await
            .with_context(|| {
                format!(
                    "the result service did not show the new votes (expected a ≥ {}, b ≥ {})",
                    expected.0, expected.1
                )
            })?;
        report.verified_after = Some(waited);
    }
    Ok(report)
}
