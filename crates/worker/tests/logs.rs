//! What the real `worker` binary logs at INFO under steady traffic: its
//! start and stop, and one summary per `SUMMARY_SECONDS` — not a line per
//! batch, and not a warning per dead letter. The number of lines must be
//! bounded by how long it ran, whatever the number of batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, ballot};
use tokio::io::{AsyncBufReadExt, BufReader};
use worker::queue::processing_key;

/// Lines a worker logs at INFO however long it runs: settings, admin
/// listener, schema, registration, consuming, shutdown signal, stopped.
/// Generous, so only lines that scale with time or traffic can exceed it.
const FIXED_INFO_LINES: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_logs_a_summary_per_interval_not_a_line_per_batch() {
    let env = Env::new().await;
    let interval_s = 0.25;
    let (rounds, per_round, poison_per_round) = (20, 100, 10);

    let started = Instant::now();
    let mut child = env
        .command("steady", 5)
        .env("RUST_LOG", "info")
        .env("RUST_LOG_FORMAT", "json")
        .env("SUMMARY_SECONDS", interval_s.to_string())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
            sink.lock().unwrap().push(event);
        }
    });

    // Sustained traffic: round after round of small batches (5 ballots
    // each), with some poison in every round.
    let mut seq = 0;
    for round in 0..rounds {
        let mut payloads = Vec::new();
        for i in 0..per_round {
            seq += 1;
            payloads.push(ballot(&format!("r{round}v{i}"), "a", Some(seq)));
            if i % (per_round / poison_per_round) == 0 {
                payloads.push(format!("poison {round} {i}"));
            }
        }
        env.push(&payloads).await;
        testkit::eventually("the round to be stored", DEADLINE, || async {
            let pending = env.len(QUEUE_KEY).await + env.len(&processing_key("steady")).await;
            (pending == 0).then_some(())
        })
        .await;
    }
    let stored = rounds * per_round;
    env.wait_until_drained(&["steady"], stored).await;

    let pid = child.id().unwrap();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().await.unwrap().success());
    let ran_s = started.elapsed().as_secs_f64();
    reader.await.unwrap();
    let log = log.lock().unwrap().clone();

    let at = |level: &str| -> Vec<&serde_json::Value> {
        log.iter().filter(|e| e["level"] == level).collect()
    };
    let (info, warn) = (at("INFO"), at("WARN"));
    let intervals = (ran_s / interval_s).ceil() as usize + 1;
    // Each message with how often it was logged.
    let messages = |events: &[&serde_json::Value]| {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for e in events {
            *counts.entry(e["message"].to_string()).or_default() += 1;
        }
        counts
    };
    assert!(
        info.len() <= FIXED_INFO_LINES + intervals,
        "{} INFO lines in {ran_s:.1} s with a summary every {interval_s} s: \
         at most {} expected; messages: {:?}",
        info.len(),
        FIXED_INFO_LINES + intervals,
        messages(&info)
    );
    assert!(
        warn.len() <= intervals,
        "{} WARN lines in {ran_s:.1} s for {} dead letters: at most one per \
         interval expected; messages: {:?}",
        warn.len(),
        rounds * poison_per_round,
        messages(&warn)
    );
    assert!(at("ERROR").is_empty(), "{:?}", messages(&at("ERROR")));

    // The summaries account for everything, in many more batches than lines.
    let summaries: Vec<&serde_json::Value> = info
        .iter()
        .copied()
        .filter(|e| e["message"] == "summary")
        .collect();
    let total = |field: &str| -> u64 {
        summaries
            .iter()
            .map(|e| {
                e[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("summary without {field}: {e}"))
            })
            .sum()
    };
    assert_eq!(total("ballots"), stored as u64, "{summaries:#?}");
    assert_eq!(
        total("dead_lettered"),
        (rounds * poison_per_round) as u64,
        "{summaries:#?}"
    );
    let batches = total("batches");
    assert!(
        batches >= (stored / 5) as u64,
        "{batches} batches for {stored} ballots in batches of at most 5"
    );
    assert!(
        batches as usize > 4 * info.len(),
        "the traffic was not steady enough to tell a summary from per-batch lines: \
         {batches} batches, {} INFO lines",
        info.len()
    );
    for summary in &summaries {
        for field in [
            "queue_depth",
            "commit_ms_p50",
            "commit_ms_p99",
            "interval_s",
        ] {
            assert!(
                summary[field].is_number(),
                "summary without {field}: {summary}"
            );
        }
    }
    // The dead letters are all there, each with its reason.
    assert_eq!(env.dead_letters().await.len(), rounds * poison_per_round);
}
