//! The stack's child processes: their output, signals, readiness and
//! stopping.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::{Logs, Service};

/// SIGTERM, then up to 15 s for a clean exit; killed after that.
pub(super) async fn stop_service(service: &mut Service) -> Result<(), String> {
    let name = service.name;
    if let Some(pid) = service.child.id() {
        let _ = signal(pid, "TERM").await;
    }
    match tokio::time::timeout(Duration::from_secs(15), service.child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{name} exited with {status}")),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => {
            let _ = service.child.kill().await;
            Err(format!("{name} did not stop within 15 s; killed"))
        }
    }
}

/// Streams a child's stdout and stderr to where `logs` says.
pub(super) async fn forward_output(
    name: &'static str,
    child: &mut Child,
    logs: &Logs,
) -> anyhow::Result<()> {
    let streams: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
        Box::new(child.stdout.take().context("stdout is piped")?),
        Box::new(child.stderr.take().context("stderr is piped")?),
    ];
    for stream in streams {
        let logs = logs.clone();
        let mut file = match &logs {
            Logs::Files(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                Some(
                    tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("{name}.log")))
                        .await?,
                )
            }
            Logs::Prefixed => None,
        };
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match file.as_mut() {
                    Some(f) => {
                        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                    }
                    None => println!("{name:>6} | {line}"),
                }
            }
        });
    }
    Ok(())
}

/// Sends `kill -<sig>` to `pid`.
pub async fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// Polls `url` until it answers 200, for at most `limit`. There is no
/// event to await across processes; the poll is bounded.
pub async fn wait_ready(name: &str, url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        match client.get(url).send().await {
            Ok(res) if res.status().is_success() => return Ok(()),
            Ok(res) => last = format!("{url} answered {}", res.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{name} not ready after {limit:?}: {last}")
}
