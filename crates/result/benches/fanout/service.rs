//! The service under test: the release `result` binary, and what
//! `/proc` says about it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The release `result` binary, running.
pub struct Service {
    child: tokio::process::Child,
    pid: u32,
    pub port: u16,
    pub clock_ticks: f64,
}

impl Service {
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_result"))
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("ADMIN_PORT", "0")
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
            .env("SHUTDOWN_DELAY_SECONDS", "0")
            .env("DATABASE_URL", database_url)
            .env("MAX_CLIENTS", "20000")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .context("starting the result binary")?;
        let pid = child.id().context("the result binary exited at once")?;
        let clock_ticks = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        let service = Service {
            child,
            pid,
            port,
            clock_ticks,
        };
        let http = reqwest::Client::new();
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let started = Instant::now();
        loop {
            if let Ok(res) = http.get(&ready).send().await
                && res.status().is_success()
            {
                return Ok(service);
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the result binary did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// User and system CPU time so far, seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<(f64, f64)> {
        cpu_seconds(self.pid, self.clock_ticks)
    }

    /// Current and peak resident memory, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} in /proc/pid/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        anyhow::ensure!(status.success(), "result exited with {status}");
        Ok(())
    }
}

/// User and system CPU time of process `pid` so far, seconds.
pub fn cpu_seconds(pid: u32, clock_ticks: f64) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/pid/stat format")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime / clock_ticks, stime / clock_ticks))
}
