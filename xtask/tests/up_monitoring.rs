//! `cargo xtask up --monitoring`: Prometheus (Debian's binary) comes up
//! beside the native stack, scrapes vote, result and worker (`up == 1` for
//! each), and evaluates the project's rules: with the worker frozen
//! (SIGSTOP: it neither stores nor answers scrapes) while votes are posted,
//! the backlog alert turns pending; with the worker thawed and more votes
//! stored, it resolves. Then Ctrl-C stops everything cleanly.
//!
//! Prometheus state is polled through its HTTP API with a deadline (there
//! is no event to await across processes). Runs in about 30 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

const ALERT: &str = "BallotBacklogNotStored";

/// Polls `check` every 500 ms until it returns `Some`, for at most
/// `limit`; panics with `what` and the last state seen otherwise.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(found) => return found,
            Err(last) if started.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn api(prometheus: &str, path: &str) -> Result<serde_json::Value, String> {
    let res = reqwest::get(format!("{prometheus}api/v1/{path}"))
        .await
        .map_err(|e| e.to_string())?;
    res.json().await.map_err(|e| e.to_string())
}

/// The services whose targets answer their scrape (`up == 1`), sorted.
async fn services_up(prometheus: &str) -> Result<Vec<String>, String> {
    let answer = api(prometheus, "query?query=up%20%3D%3D%201").await?;
    let mut up: Vec<String> = answer["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no result: {answer}"))?
        .iter()
        .filter_map(|r| r["metric"]["service"].as_str().map(str::to_owned))
        .collect();
    up.sort();
    Ok(up)
}

/// The state of [`ALERT`]: "pending", "firing" or "inactive".
async fn alert_state(prometheus: &str) -> Result<String, String> {
    let answer = api(prometheus, "alerts").await?;
    let alerts = answer["data"]["alerts"]
        .as_array()
        .ok_or_else(|| format!("no alerts: {answer}"))?;
    Ok(alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == ALERT)
        .and_then(|a| a["state"].as_str())
        .unwrap_or("inactive")
        .to_owned())
}

async fn post_votes(vote_url: &str, count: usize) {
    let client = reqwest::Client::new();
    for i in 0..count {
        // A new voter each time: no cookie is kept.
        let res = client
            .post(vote_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(if i % 2 == 0 { "vote=a" } else { "vote=b" })
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "vote {i}: {}", res.status());
    }
}

async fn signal(pid: u32, sig: &str) {
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_native_stack_and_the_backlog_alert_follows_the_worker() {
    let free = || localstores::free_port().unwrap();
    let (vote_port, result_port, prometheus_port) = (free(), free(), free());
    let mut xtask = tokio::process::Command::new("setpriv")
        .arg("--pdeathsig=TERM")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "up",
            "--monitoring",
            "--redis-port",
            "0",
            "--postgres-port",
            "0",
        ])
        .args(["--vote-port", &vote_port.to_string()])
        .args(["--result-port", &result_port.to_string()])
        .args(["--prometheus-port", &prometheus_port.to_string()])
        .arg("--bin-dir")
        .arg(support::debug_bin_dir())
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (output, mut lines_rx) = support::lines_until(&mut xtask, "Press Ctrl-C").await;
    let prometheus = format!("http://127.0.0.1:{prometheus_port}/");
    assert!(
        output
            .iter()
            .any(|l| l.trim_start().starts_with("prometheus") && l.contains(&prometheus)),
        "the summary does not list Prometheus at {prometheus}: {output:#?}"
    );

    let every = ["result", "vote", "worker"].map(str::to_owned).to_vec();
    poll(
        "up == 1 for vote, result and worker",
        Duration::from_secs(30),
        || async {
            let up = services_up(&prometheus).await?;
            if up == every {
                Ok(())
            } else {
                Err(format!("{up:?}"))
            }
        },
    )
    .await;
    assert_eq!(alert_state(&prometheus).await.unwrap(), "inactive");

    // Freeze the worker: it stores nothing and answers no scrape.
    let worker = support::descendants(xtask.id().unwrap())
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "worker")
        })
        .expect("xtask runs a worker");
    signal(worker, "STOP").await;
    let vote_url = format!("http://127.0.0.1:{vote_port}/");
    post_votes(&vote_url, 20).await;
    let raised = poll(
        &format!("{ALERT} pending or firing"),
        Duration::from_secs(40),
        || async {
            match alert_state(&prometheus).await?.as_str() {
                state @ ("pending" | "firing") => Ok(state.to_owned()),
                other => Err(other.to_owned()),
            }
        },
    )
    .await;
    println!("{ALERT} is {raised} with the worker frozen");

    signal(worker, "CONT").await;
    // Stored while Prometheus watches: the counter rises between scrapes.
    post_votes(&vote_url, 20).await;
    poll(
        &format!("{ALERT} resolved"),
        Duration::from_secs(40),
        || async {
            match alert_state(&prometheus).await?.as_str() {
                "inactive" => Ok(()),
                other => Err(other.to_owned()),
            }
        },
    )
    .await;

    let pid = xtask.id().unwrap();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{pid}")])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), xtask.wait())
        .await
        .expect("xtask stopped within 60 s")
        .unwrap();
    let mut rest = Vec::new();
    while let Some(line) = lines_rx.recv().await {
        rest.push(line);
    }
    assert!(
        status.success() && rest.iter().any(|l| l.contains("stopped cleanly")),
        "not a clean stop ({status}): {rest:#?}"
    );
}
