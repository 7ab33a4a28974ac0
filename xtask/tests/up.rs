//! `cargo xtask up`: the native stack comes up, takes a vote on the vote
//! page, shows it on the result page, and stops cleanly on SIGTERM.
//!
//! It runs the service binaries next to this test's own build (the
//! workspace's `target/debug`), which `cargo test --workspace` builds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn debug_bin_dir() -> PathBuf {
    // target/debug/deps/up-<hash> → target/debug
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for bin in ["vote", "worker", "result"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo test --workspace` (or `cargo build -p vote -p worker -p result`) first",
            dir.join(bin).display()
        );
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_stack_takes_a_vote_shows_it_and_stops_cleanly() {
    let (vote_port, result_port) = (free_port(), free_port());
    let mut xtask = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["up", "--redis-port", "0", "--postgres-port", "0"])
        .args(["--vote-port", &vote_port.to_string()])
        .args(["--result-port", &result_port.to_string()])
        .arg("--bin-dir")
        .arg(debug_bin_dir())
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Wait for the banner; keep every line for the end.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stdout = BufReader::new(xtask.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines_rx.recv().await {
            let up = line.contains("The voting app is up");
            output.push(line);
            if up {
                return;
            }
        }
        panic!(
            "xtask exited before the stack was up:\n{}",
            output.join("\n")
        );
    })
    .await
    .expect("the stack came up within 90 s");
    // Logs are streamed with a prefix per service.
    assert!(
        output.iter().any(|l| l.starts_with("  vote | ")),
        "{output:#?}"
    );

    let vote_url = format!("http://127.0.0.1:{vote_port}/");
    let result_url = format!("http://127.0.0.1:{result_port}/");
    let mut feed = seed::verify::Feed::connect(&result_url).await.unwrap();
    let (a0, _) = feed.next_tally(Duration::from_secs(5)).await.unwrap();

    let res = reqwest::Client::new()
        .post(&vote_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("vote=a")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    feed.wait_until(Duration::from_secs(10), |a, _| a == a0 + 1)
        .await
        .expect("the vote shows on the result page");
    let page = reqwest::get(&result_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("1 vote"), "{page}");

    let pid = xtask.id().unwrap();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), xtask.wait())
        .await
        .expect("xtask stopped within 30 s")
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(line) = lines_rx.try_recv() {
        rest.push(line);
    }
    assert!(status.success(), "{status}: {rest:#?}");
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:#?}"
    );
}
