//! A real browser for page tests: headless Chromium driven by Debian's
//! `chromedriver` through [`thirtyfour`] (feature `browser`).
//!
//! ```no_run
//! # use std::time::Duration;
//! # async fn example(addr: std::net::SocketAddr) -> anyhow::Result<()> {
//! let browser = testkit::browser::Browser::start().await?;
//! browser.goto(format!("http://{addr}/")).await?;
//! browser.wait_for_text("#votes", "1 vote", Duration::from_secs(5)).await?;
//! browser.quit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Each [`Browser`] is its own `chromedriver` (on a free port chosen here
//! and passed to it, on IPv4 loopback, so neither IPv6 nor the port
//! chromedriver reports matters) and its own Chromium with a fresh profile, so tests run in
//! parallel without sharing cookies or cache. `chromedriver` runs in a
//! process group of its own with Chromium inside; dropping the handle ends
//! the whole group at once, also when a test fails before
//! [`Browser::quit`], and `chromedriver` dies with the test process. A
//! missing Chromium fails the test with the `apt-get install` line that
//! fixes it.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use thirtyfour::cdp::domains::emulation::{MediaFeature, SetEmulatedMedia};
use thirtyfour::prelude::*;
use thirtyfour::{ChromiumLikeCapabilities, DesiredCapabilities, LoggingPrefsLogLevel};

use localstores::process::{find_on_path, scratch_dir};

pub use thirtyfour;

/// How long `chromedriver` may take to say it has started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What fixes a missing browser.
const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

/// Chromium switches for a quiet, headless, root-friendly browser that
/// talks to nothing but the pages it is sent to.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1280,800",
];

/// A screen to render pages on (see [`Browser::set_viewport`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// Device pixels per CSS pixel (2 for a typical phone).
    pub scale: f64,
    /// Behave as a phone: honour `<meta name="viewport">`, overlay
    /// scrollbars, touch.
    pub mobile: bool,
}

/// A headless Chromium session; derefs to [`WebDriver`].
pub struct Browser {
    driver: WebDriver,
    // Dropped after `driver`, in this order: the process group, then the
    // profile directory it was using.
    _chromedriver: ChromeDriver,
    _profile: tempfile::TempDir,
}

/// The `chromedriver` process; dropping it ends its whole process group.
struct ChromeDriver(Child);

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid: this ends it and its Chromium.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts `chromedriver` and a fresh headless Chromium.
    pub async fn start() -> anyhow::Result<Browser> {
        let (chromium, chromedriver_bin) = find_binaries()?;
        // Named after this process, so a later run removes it if we are killed.
        let profile = scratch_dir("chromium")?;
        // Chosen here rather than `--port=0`: without IPv6 (Docker's
        // default) chromedriver reports port 0 for `--port=0`.
        let port = localstores::free_port()?;

        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=KILL")
            .arg(&chromedriver_bin)
            .arg(format!("--port={port}"))
            .args(["--allowed-ips=127.0.0.1", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so Chromium can be ended with it.
            .process_group(0);
        let mut chromedriver = ChromeDriver(
            cmd.spawn()
                .with_context(|| format!("starting {}", chromedriver_bin.display()))?,
        );
        let stdout = chromedriver.0.stdout.take().context("stdout is piped")?;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut started_tx = Some(started_tx);
            // Keep reading to the end so chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if has_started(&line)
                    && let Some(tx) = started_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        match tokio::time::timeout(START_TIMEOUT, started_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("chromedriver exited before it was ready"),
            Err(_) => bail!("chromedriver did not start within {START_TIMEOUT:?}"),
        }

        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium.to_string_lossy())?;
        for arg in CHROMIUM_ARGS {
            caps.add_arg(arg)?;
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))?;
        // Console messages (CSP violations among them) for `csp_violations`.
        caps.set_browser_log_level(LoggingPrefsLogLevel::All)?;
        let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps)
            .await
            .with_context(|| format!("starting {} through chromedriver", chromium.display()))?;
        Ok(Browser {
            driver,
            _chromedriver: chromedriver,
            _profile: profile,
        })
    }

    /// Renders pages as on a screen of `viewport` (CSS pixels, pixel
    /// ratio, phone or not) from now on, across navigations; screenshots
    /// then have exactly its size in device pixels.
    pub async fn set_viewport(&self, viewport: Viewport) -> anyhow::Result<()> {
        self.cdp()
            .emulation()
            .set_device_metrics_override(
                viewport.width,
                viewport.height,
                viewport.scale,
                viewport.mobile,
            )
            .await?;
        Ok(())
    }

    /// Tells pages the visitor prefers reduced motion (CSS
    /// `prefers-reduced-motion: reduce`), so transitions a page drops for
    /// such visitors do not leave a screenshot mid-way.
    pub async fn prefer_reduced_motion(&self) -> anyhow::Result<()> {
        self.cdp()
            .send(SetEmulatedMedia {
                media: None,
                features: Some(vec![MediaFeature {
                    name: "prefers-reduced-motion".into(),
                    value: "reduce".into(),
                }]),
            })
            .await?;
        Ok(())
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(By::Css(css)).await?.text().await?)
    }

    /// Waits until the first element matching `css` shows exactly
    /// `expected`, polling every 20 ms for at most `deadline`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        expected: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            let seen = self.text(css).await;
            if matches!(&seen, Ok(text) if text == expected) {
                return Ok(());
            }
            if started.elapsed() >= deadline {
                bail!("`{css}` did not show {expected:?} within {deadline:?}; last seen: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clicks the first element matching `css` and waits, for at most
    /// `deadline`, until the page that click loads (a form submission, a
    /// link) is in place: a mark set on the old document is gone and the
    /// new one has loaded.
    pub async fn click_and_wait_for_next_page(
        &self,
        css: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.execute("window.beforeClick = true;", vec![]).await?;
        self.find(By::Css(css)).await?.click().await?;
        let started = tokio::time::Instant::now();
        loop {
            // Errors while the navigation is under way just mean "not yet".
            let loaded = self
                .execute(
                    "return window.beforeClick === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(loaded.map(|ret| ret.convert::<bool>()), Ok(Ok(true))) {
                return Ok(());
            }
            if started.elapsed() >= deadline {
                bail!("clicking `{css}` loaded no new page within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Content Security Policy violations Chromium reported since the
    /// last call (it logs each to the console: "Refused to … because it
    /// violates the following Content Security Policy directive …"). Reading
    /// drains the console log.
    pub async fn csp_violations(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .browser_log()
            .await?
            .into_iter()
            .map(|entry| entry.message)
            .filter(|message| message.contains("Content Security Policy"))
            .collect())
    }

    /// Ends the session (closing Chromium), then stops `chromedriver`.
    pub async fn quit(self) -> anyhow::Result<()> {
        self.driver.clone().quit().await?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Not quit (a test failed first): ending the process group below
        // ends the session too. Without this, thirtyfour would block the
        // test for minutes trying to delete the session over HTTP.
        let _ = self.driver.clone().leak();
    }
}

impl Deref for Browser {
    type Target = WebDriver;

    fn deref(&self) -> &WebDriver {
        &self.driver
    }
}

/// Whether `line` is chromedriver's "ChromeDriver was started successfully
/// on port 41231." (the port in it is not trusted: it says 0 when asked for
/// 0 and IPv6 is off).
fn has_started(line: &str) -> bool {
    line.contains("started successfully on port ")
}

/// Fails with the `apt-get install` line that fixes it when Chromium or
/// `chromedriver` is missing; for commands that should say so before they
/// start anything else.
pub fn check_installed() -> anyhow::Result<()> {
    find_binaries().map(|_| ())
}

/// Chromium and `chromedriver`, or the `apt-get install` line.
fn find_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(find_on_path)
        .with_context(|| format!("Chromium is not installed; install it with: {INSTALL_HINT}"))?;
    let chromedriver = find_on_path("chromedriver").with_context(|| {
        format!("`chromedriver` is not installed; install it with: {INSTALL_HINT}")
    })?;
    Ok((chromium, chromedriver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_line_is_recognised_in_chromedriver_output() {
        assert!(has_started(
            "ChromeDriver was started successfully on port 46323."
        ));
        assert!(!has_started("Only local connections are allowed."));
    }
}
