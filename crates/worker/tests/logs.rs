//! What the real `worker` binary logs at INFO under traffic: its start and
//! stop, and one summary per `SUMMARY_SECONDS` — not a line per batch, and
//! not a warning per dead letter. The number of lines grows with time, not
//! with the number of batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::{DEADLINE, Env, ballot};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

/// Lines a worker logs at INFO however long it runs: settings, admin
/// listener, schema, registration, consuming, shutdown signal, stopped.
/// Generous, so only lines that scale with time or traffic can exceed it.
const FIXED_INFO_LINES: usize = 10;

/// The worker binary logging JSON at INFO, a summary every `interval_s`,
/// in batches of at most 5; and its log, as it comes.
struct Logged {
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
    reader: JoinHandle<()>,
}

impl Logged {
    fn start(env: &Env, interval_s: &str) -> Logged {
        let mut child = env
            .command("logged", 5)
            .env("RUST_LOG", "info")
            .env("RUST_LOG_FORMAT", "json")
            .env("SUMMARY_SECONDS", interval_s)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = log.clone();
        let reader = tokio::spawn(async move {
            while let Some(line) = lines.next_line().await.unwrap() {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
                sink.lock().unwrap().push(event);
            }
        });
        Logged { child, log, reader }
    }

    /// The summary lines logged so far.
    fn summaries(&self) -> Vec<Value> {
        summaries(&self.log.lock().unwrap())
    }

    /// Stops the worker with SIGTERM; returns its whole log.
    async fn stop(mut self) -> Vec<Value> {
        let pid = self.child.id().unwrap();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        assert!(self.child.wait().await.unwrap().success());
        self.reader.await.unwrap();
        self.log.lock().unwrap().clone()
    }
}

/// `voters` ballots of round `round`, and a poison payload before every
/// tenth.
fn round(round: usize, voters: usize) -> Vec<String> {
    let mut payloads = Vec::new();
    for i in 0..voters {
        if i % 10 == 0 {
            payloads.push(format!("poison {round} {i}"));
        }
        payloads.push(ballot(&format!("r{round}v{i}"), "a", Some(1)));
    }
    payloads
}

fn summaries(log: &[Value]) -> Vec<Value> {
    log.iter()
        .filter(|e| e["message"] == "summary")
        .cloned()
        .collect()
}

/// The sum of `field` over `summaries`.
fn total(summaries: &[Value], field: &str) -> u64 {
    summaries
        .iter()
        .map(|e| {
            e[field]
                .as_u64()
                .unwrap_or_else(|| panic!("summary without {field}: {e}"))
        })
        .sum()
}

/// Each message at `level` with how often it was logged.
fn messages(log: &[Value], level: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in log.iter().filter(|e| e["level"] == level) {
        *counts.entry(e["message"].to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_batches_in_one_interval_log_one_summary_and_one_warning() {
    let env = Env::new().await;
    // One interval for the whole run: whatever the machine's speed, every
    // batch falls in it.
    let worker = Logged::start(&env, "3600");
    let (voters, poison) = (2_000, 200);
    env.push(&round(0, voters)).await;
    env.wait_until_drained(&["logged"], voters).await;
    let log = worker.stop().await;

    // The one summary, at shutdown, accounts for everything.
    let summaries = summaries(&log);
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert_eq!(total(&summaries, "ballots"), voters as u64);
    assert_eq!(total(&summaries, "dead_lettered"), poison);
    let batches = total(&summaries, "batches");
    assert!(
        batches >= (voters as u64 + poison) / 5,
        "{batches} batches of at most 5"
    );
    for field in [
        "queue_depth",
        "commit_ms_p50",
        "commit_ms_p99",
        "interval_s",
    ] {
        assert!(
            summaries[0][field].is_number(),
            "summary without {field}: {}",
            summaries[0]
        );
    }
    // Not a line per batch, not a warning per dead letter.
    let info = log.iter().filter(|e| e["level"] == "INFO").count();
    assert!(
        info <= FIXED_INFO_LINES + 1,
        "{info} INFO lines for {batches} batches in one interval: {:?}",
        messages(&log, "INFO")
    );
    assert_eq!(
        messages(&log, "WARN").values().sum::<usize>(),
        1,
        "the first dead letter of the interval only: {:?}",
        messages(&log, "WARN")
    );
    assert!(messages(&log, "ERROR").is_empty(), "{log:?}");
    assert_eq!(env.dead_letters().await.len(), poison as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_interval_with_batches_gets_its_own_summary() {
    let env = Env::new().await;
    let worker = Logged::start(&env, "0.2");
    let mut stored = 0;
    for n in 0..2 {
        env.push(&round(n, 20)).await;
        stored += 20;
        env.wait_until_drained(&["logged"], stored as usize).await;
        // The interval ends after the round: a summary accounts for it.
        testkit::eventually("a summary of the round", DEADLINE, || async {
            (total(&worker.summaries(), "ballots") == stored).then_some(())
        })
        .await;
    }
    let summarised = worker.summaries().len();
    let log = worker.stop().await;

    assert!(summarised >= 2, "a summary per interval: {log:#?}");
    let summaries = summaries(&log);
    assert_eq!(summaries.len(), summarised, "nothing left to sum up");
    assert_eq!(total(&summaries, "ballots"), 40);
    assert_eq!(total(&summaries, "dead_lettered"), 4);
}
