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
//! The counts (per option, or a total and a split), concurrency, target, an optional rate limit and a duration
//! for soak runs are flags (and environment variables for compose).

pub mod cli;
pub mod load;
pub mod plan;
pub mod progress;
pub mod report;
pub mod settings;
pub mod stalls;
pub mod verify;
pub mod watch;

use std::time::Duration;

use anyhow::Context;

pub use contract::Vote;
pub use plan::{Run, plan};
pub use report::Report;
pub use settings::{Settings, Split};

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

    let posting = load::post_votes(&client, settings);
    let mut report = match feed.as_mut() {
        Some(feed) => feed.read_while(posting).await,
        None => posting.await,
    };

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
