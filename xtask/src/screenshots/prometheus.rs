//! The picture of docs/monitoring.md: Prometheus's graph of votes per
//! second, by option (`vote:ballots_queued:rate1m`), while a seed posts
//! votes through the vote service.
//!
//! Prometheus is the one `up --monitoring` runs (Debian's binary, the
//! project's rules, a scrape every 2 s); its classic UI draws the graph.
//! The picture is taken once the graph holds a rate above zero for both
//! options, so an empty graph fails the command. Unlike the app's pages it
//! differs from run to run (the rates and the time axis).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use testkit::browser::Browser;
use testkit::browser::thirtyfour::prelude::*;

use super::{SCREENS, Shot, shoot};

/// The recording rule on the graph.
pub const EXPR: &str = "vote:ballots_queued:rate1m";
/// The votes the seed posts for the graph: a round every scrape interval
/// (2 s), so the graph shows a rate held for a while, not one spike.
const ROUNDS: u32 = 12;
const ROUND_A: u64 = 30;
const ROUND_B: u64 = 20;
const ROUND_EVERY: Duration = Duration::from_secs(2);
/// How long Prometheus may take to show the rates.
const DEADLINE: Duration = Duration::from_secs(60);

/// Posts the seed's votes, waits until Prometheus at `prometheus` records
/// a rate for both options, and photographs the graph at the desktop size
/// as `prometheus-votes-<screen>.png`.
pub async fn take(
    browser: &Browser,
    vote_url: &str,
    prometheus: &str,
    out_dir: &Path,
) -> anyhow::Result<Shot> {
    seed(vote_url).await?;
    wait_for_rates(prometheus).await?;
    let screen = SCREENS[0];
    browser.set_viewport(screen.viewport).await?;
    browser
        .goto(&format!(
            "{prometheus}graph?g0.expr={}&g0.tab=0&g0.range_input=1m",
            EXPR.replace(':', "%3A")
        ))
        .await?;
    // The graph is drawn when its lines (SVG paths) are there.
    let started = Instant::now();
    loop {
        let lines = browser.find_all(By::Css(".graph svg path")).await?;
        if lines.len() >= 2 {
            break;
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "Prometheus's graph drew {} lines, not one per option",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shoot(browser, screen, "prometheus-votes", out_dir).await
}

/// Posts [`ROUNDS`] rounds of votes, one every [`ROUND_EVERY`] (the
/// pace of the load, not a wait for anything).
async fn seed(vote_url: &str) -> anyhow::Result<()> {
    let mut pace = tokio::time::interval(ROUND_EVERY);
    for _ in 0..ROUNDS {
        pace.tick().await;
        seed_round(vote_url).await?;
    }
    Ok(())
}

async fn seed_round(vote_url: &str) -> anyhow::Result<()> {
    super::post_votes(vote_url, ROUND_A, ROUND_B, 2).await
}

/// Polls Prometheus until [`EXPR`] is above zero for both options.
async fn wait_for_rates(prometheus: &str) -> anyhow::Result<()> {
    let url = format!(
        "{prometheus}api/v1/query?query={}%20%3E%200",
        EXPR.replace(':', "%3A")
    );
    let started = Instant::now();
    loop {
        let answer: serde_json::Value = reqwest::get(&url)
            .await
            .context("asking Prometheus")?
            .json()
            .await?;
        let options = answer["data"]["result"].as_array().map_or(0, Vec::len);
        if options == 2 {
            return Ok(());
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "Prometheus shows no vote rate for both options: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
