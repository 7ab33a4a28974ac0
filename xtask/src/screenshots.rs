//! `cargo xtask screenshots`: the pictures of the pages in the README, made
//! by a command so that they are regenerated, not hand-edited, when the
//! pages change.
//!
//! It starts the native stack ([`crate::stack`]: throwaway Redis and
//! Postgres, then the worker, vote and result binaries), drives the same
//! headless Chromium the browser tests use ([`testkit::browser`]) and, at
//! each of [`SCREENS`], photographs the vote page before a vote and after
//! one (the choice marked, the other option dimmed). Then the seed posts
//! [`SEED_A`] + [`SEED_B`] votes through the vote service, each as a new
//! voter, and the result page is photographed once it shows all of them.
//!
//! Everything that could vary from run to run is fixed: the option names,
//! the container id in "Processed by container ID …" ([`HOSTNAME`]), the
//! vote counts, the viewport sizes and pixel ratios, and motion (the browser
//! asks for reduced motion, so the result bars are not caught mid-way
//! through their transition). The same pages give the same pictures on the
//! same machine; another machine's fonts may draw the text differently.
//!
//! Every picture is taken only after the page shows what it is meant to
//! show (the chosen and dimmed buttons, the expected count and
//! percentages), so a page that changed its markup fails the command
//! instead of photographing the wrong thing.
//!
//! Last, Prometheus's graph of votes per second during a seed run, for
//! docs/monitoring.md ([`prometheus`]; needs `apt-get install prometheus`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use testkit::browser::thirtyfour::prelude::*;
use testkit::browser::{Browser, Viewport};

use crate::stack::{self, Logs, Stack, StackOptions};

mod prometheus;

/// The options shown on both pages.
pub const OPTION_A: &str = "Cats";
pub const OPTION_B: &str = "Dogs";
/// What the vote page's footer names as its container.
pub const HOSTNAME: &str = "vote-7f3c9b2a1d";
/// Votes the seed posts before the result page is photographed, on top of
/// the one browser voter per screen (who votes for `a`).
pub const SEED_A: u64 = 11;
pub const SEED_B: u64 = 8;

/// How long one page may take to show what it should.
const DEADLINE: Duration = Duration::from_secs(30);

/// A screen size the pages are photographed at.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    /// Part of every file name taken at this size.
    pub name: &'static str,
    pub viewport: Viewport,
}

impl Screen {
    /// The size of its pictures, in device pixels.
    pub fn pixels(&self) -> (u32, u32) {
        let scale = |css: u32| (f64::from(css) * self.viewport.scale).round() as u32;
        (scale(self.viewport.width), scale(self.viewport.height))
    }
}

/// A laptop screen, and a phone (a 6.1" one, in CSS pixels, at its usual
/// pixel ratio of 2).
pub const SCREENS: [Screen; 2] = [
    Screen {
        name: "desktop",
        viewport: Viewport {
            width: 1280,
            height: 800,
            scale: 1.0,
            mobile: false,
        },
    },
    Screen {
        name: "phone",
        viewport: Viewport {
            width: 390,
            height: 844,
            scale: 2.0,
            mobile: true,
        },
    },
];

/// The pages photographed at every screen, by file name prefix.
pub const PAGES: [&str; 3] = ["vote", "vote-chosen", "result"];

/// One picture written.
#[derive(Debug, Clone)]
pub struct Shot {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// Environment for every service of the stack: the fixed options and
/// container id.
pub fn stack_env() -> Vec<(String, String)> {
    [
        ("OPTION_A", OPTION_A),
        ("OPTION_B", OPTION_B),
        ("HOSTNAME", HOSTNAME),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts the native stack from the binaries in `bin_dir` (with throwaway
/// stores, whatever `REDIS_URL` and `DATABASE_URL` say: the counts must be
/// the ones seeded here), takes every picture into `out_dir`, and stops
/// the stack. The services' logs are kept, and named in the error, only
/// when something fails.
pub async fn run(bin_dir: &Path, out_dir: &Path) -> anyhow::Result<Vec<Shot>> {
    // Before anything starts: the one missing piece a fresh machine is
    // likely to have, with the line that installs it.
    testkit::browser::check_installed()?;
    let logs = tempfile::Builder::new()
        .prefix("xtask-screenshots-")
        .tempdir()
        .context("creating a directory for the services' logs")?;
    let options = StackOptions {
        bin_dir: bin_dir.to_path_buf(),
        vote_port: stack::free_port_or_any(0)?,
        result_port: stack::free_port_or_any(0)?,
        redis_url: None,
        database_url: None,
        redis_port: 0,
        postgres_port: 0,
        logs: Logs::Files(logs.path().to_path_buf()),
        log_level: "warn".into(),
        env: stack_env(),
    };
    let taken = match Stack::start(&options).await {
        Ok(mut stack) => {
            let taken = take_all(&mut stack, &options, out_dir).await;
            let problems = stack.stop().await;
            taken.and_then(|shots| {
                ensure!(problems.is_empty(), "stopping the stack: {problems:?}");
                Ok(shots)
            })
        }
        Err(e) => Err(e),
    };
    taken.map_err(|e| {
        let kept = logs.keep();
        e.context(format!("the services' logs are in {}", kept.display()))
    })
}

/// The app's pictures ([`take`]), then Prometheus's graph of the votes
/// ([`prometheus::take`]) from a Prometheus added to the stack.
async fn take_all(
    stack: &mut Stack,
    options: &StackOptions,
    out_dir: &Path,
) -> anyhow::Result<Vec<Shot>> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask sits in the workspace")?
        .join("monitoring")
        .join("rules");
    let prometheus = stack
        .add_prometheus(options, stack::free_port_or_any(0)?, &rules)
        .await?;
    let mut shots = take(&stack.vote_url, &stack.result_url, out_dir).await?;
    let browser = Browser::start().await?;
    let graph = prometheus::take(&browser, &stack.vote_url, &prometheus, out_dir).await;
    let _ = browser.quit().await;
    shots.push(graph?);
    Ok(shots)
}

/// Takes every picture of the stack at `vote_url` and `result_url` (whose
/// tally must start empty) into `out_dir`: the vote page before and after
/// a vote at each screen, then the seeded votes, then the result page at
/// each screen.
pub async fn take(vote_url: &str, result_url: &str, out_dir: &Path) -> anyhow::Result<Vec<Shot>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let browser = Browser::start().await?;
    let shots = take_with(&browser, vote_url, result_url, out_dir).await;
    // A failed quit after good pictures is not worth failing for; dropping
    // the handle ends the browser either way.
    let _ = browser.quit().await;
    shots
}

async fn take_with(
    browser: &Browser,
    vote_url: &str,
    result_url: &str,
    out_dir: &Path,
) -> anyhow::Result<Vec<Shot>> {
    browser.prefer_reduced_motion().await?;
    let mut shots = Vec::new();
    for screen in SCREENS {
        browser.set_viewport(screen.viewport).await?;
        // A new voter per screen: no cookie from the last one.
        browser.goto(vote_url).await?;
        browser.delete_all_cookies().await?;
        browser.goto(vote_url).await?;
        let title = browser.title().await?;
        ensure!(
            title == format!("{OPTION_A} vs {OPTION_B}!"),
            "the vote page's title is {title:?}"
        );
        expect_states(browser, "", "").await?;
        shots.push(shoot(browser, screen, "vote", out_dir).await?);

        browser.click_and_wait_for_next_page("#a", DEADLINE).await?;
        expect_states(browser, "chosen", "dimmed").await?;
        shots.push(shoot(browser, screen, "vote-chosen", out_dir).await?);
    }

    let voters = SCREENS.len() as u64;
    seed(vote_url, result_url, voters).await?;
    let (a, b) = (voters + SEED_A, SEED_B);
    let tally = contract::Tally { a, b };
    let (a_label, b_label) = result::page::percent_labels(tally);
    for screen in SCREENS {
        browser.set_viewport(screen.viewport).await?;
        browser.goto(result_url).await?;
        browser
            .wait_for_text("#votes", &result::page::votes_label(tally), DEADLINE)
            .await?;
        for (id, want) in [("#percent-a", &a_label), ("#percent-b", &b_label)] {
            let shown = browser.text(id).await?;
            ensure!(
                &shown == want,
                "the result page shows {shown:?} in {id}, not {want:?}"
            );
        }
        // Live, not "Reconnecting…".
        let status = browser.find(By::Id("status")).await?;
        ensure!(
            !status.is_displayed().await?,
            "the result page says {:?}",
            status.text().await?
        );
        shots.push(shoot(browser, screen, "result", out_dir).await?);
    }
    Ok(shots)
}

/// Checks that the vote page's buttons carry the `a` and `b` states
/// (`""`, `"chosen"` or `"dimmed"`).
async fn expect_states(browser: &Browser, a: &str, b: &str) -> anyhow::Result<()> {
    for (id, want) in [("a", a), ("b", b)] {
        let class = browser
            .find(By::Id(id))
            .await?
            .attr("class")
            .await?
            .unwrap_or_default();
        let has = |state: &str| class.split_whitespace().any(|c| c == state);
        let state = ["chosen", "dimmed"]
            .into_iter()
            .find(|s| has(s))
            .unwrap_or("");
        ensure!(
            state == want,
            "button {id} is {state:?}, expected {want:?} (class {class:?})"
        );
    }
    Ok(())
}

/// Posts the seeded votes through the vote service, each as a new voter
/// (the seed is not a browser: it sends no cookie and no `Origin`, which
/// vote's same-origin check lets through), and waits until the result
/// service's live feed shows exactly them on top of the `earlier` votes
/// for `a`.
async fn seed(vote_url: &str, result_url: &str, earlier: u64) -> anyhow::Result<()> {
    post_votes(vote_url, SEED_A, SEED_B, 4).await?;
    let want = (earlier + SEED_A, SEED_B);
    let mut feed = seed::verify::Feed::connect(result_url).await?;
    feed.wait_until(DEADLINE, |a, b| (a, b) == want)
        .await
        .context("the result feed never showed the seeded votes")?;
    Ok(())
}

/// Photographs the page in the browser as `<page>-<screen>.png` in
/// `out_dir`, after checking the picture is a PNG of the screen's size.
async fn shoot(
    browser: &Browser,
    screen: Screen,
    page: &str,
    out_dir: &Path,
) -> anyhow::Result<Shot> {
    let png = browser.screenshot_as_png().await?;
    let (width, height) = png_size(&png)?;
    ensure!(
        (width, height) == screen.pixels(),
        "the {page} picture at {} is {width}×{height}, expected {:?}",
        screen.name,
        screen.pixels()
    );
    let path = out_dir.join(format!("{page}-{}.png", screen.name));
    std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
    Ok(Shot {
        path,
        width,
        height,
        bytes: png.len(),
    })
}

/// Width and height of a PNG image, from its header (the signature, then
/// the `IHDR` chunk: length, type, width, height — big-endian).
pub fn png_size(png: &[u8]) -> anyhow::Result<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let Some(header) = png.get(..24) else {
        bail!("{} bytes are too few for a PNG", png.len());
    };
    ensure!(header.starts_with(SIGNATURE), "not a PNG: no PNG signature");
    ensure!(
        &header[12..16] == b"IHDR",
        "not a PNG: the first chunk is not IHDR"
    );
    let number = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    Ok((number(16), number(20)))
}

/// Posts `a` and `b` votes through the vote service at `vote_url`, each as
/// a new voter, `concurrency` at a time; an error if any failed.
async fn post_votes(vote_url: &str, a: u64, b: u64, concurrency: u32) -> anyhow::Result<()> {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: seed::Settings,
    }
    let settings = Cli::try_parse_from([
        "seed",
        "--target",
        vote_url,
        "--votes-a",
        &a.to_string(),
        "--votes-b",
        &b.to_string(),
        "--concurrency",
        &concurrency.to_string(),
        "--wait",
        "10",
        "--progress",
        "none",
    ])?
    .settings;
    let report = seed::run(&settings).await?;
    ensure!(
        report.failed() == 0,
        "{} of the seeded votes failed",
        report.failed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_read_from_a_png_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        png.extend(780u32.to_be_bytes());
        png.extend(1688u32.to_be_bytes());
        assert_eq!(png_size(&png).unwrap(), (780, 1688));
        assert!(png_size(&png[..20]).is_err());
        assert!(png_size(b"GIF89a and then quite a few more bytes").is_err());
    }

    #[test]
    fn phone_pictures_are_in_device_pixels() {
        assert_eq!(SCREENS[0].pixels(), (1280, 800));
        assert_eq!(SCREENS[1].pixels(), (780, 1688));
    }
}
