//! `seed watch` (the binary) against a real result service and Postgres:
//! what it prints and the exit code a script branches on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Output;

async fn insert_vote(pool: &sqlx::PgPool, voter: &str, vote: &str) {
    sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, $2)")
        .bind(voter)
        .bind(vote)
        .execute(pool)
        .await
        .unwrap();
}

fn seed_watch(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_seed"));
    command.arg("watch").args(args).kill_on_drop(true);
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_tallies_and_exits_0_once_the_expected_one_arrives() {
    let db = testkit::postgres().await;
    let result = support::result_service(&db, 20_000).await;
    let url = result.url("/");
    let watching = seed_watch(&["--url", &url, "--expect", "1,1", "--timeout", "20"]).output();
    let voting = async {
        // Whenever the watcher connects, it is sent the tally of that
        // moment first; it waits for exactly 1,1.
        insert_vote(&db.pool, "v1", "a").await;
        insert_vote(&db.pool, "v2", "b").await;
    };
    let (output, ()) = tokio::join!(watching, voting);
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().last(), Some("a=1 b=1"));

    // Without --expect: the first tally, the one sent on connect.
    let output = seed_watch(&["--url", &url.replace("http://", "ws://"), "--timeout", "10"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a=1 b=1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_1_with_the_last_tally_when_the_expected_one_does_not_show() {
    let db = testkit::postgres().await;
    let result = support::result_service(&db, 20_000).await;
    insert_vote(&db.pool, "v1", "a").await;
    let output = seed_watch(&[
        "--url",
        &result.url("/"),
        "--expect",
        "5,5",
        "--timeout",
        "1.5",
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("last seen: a=1 b=0"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn watch_exits_3_when_no_feed_answers_and_2_on_bad_arguments() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = seed_watch(&[
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--timeout",
        "5",
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    let output = seed_watch(&["--expect", "lots"]).output().await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("expected A,B"),
        "{}",
        stderr(&output)
    );
}
