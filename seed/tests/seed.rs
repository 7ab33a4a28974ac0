//! The seed against a real vote service and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: seed::Settings,
}

fn settings(args: &[&str]) -> seed::Settings {
    let mut argv = vec!["seed", "--progress", "none"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().settings
}

/// Starts a vote service in this process, until the handle is dropped.
async fn vote_service(redis_url: &str) -> testkit::Served<std::io::Error> {
    let options = common_options();
    let state = vote::AppState::new(
        &servicekit::connect::Redis::at(redis_url).unwrap(),
        &options,
        "seed-test".into(),
    )
    .unwrap();
    testkit::Served::start(|listener, shutdown| vote::serve(listener, state, shutdown)).await
}

fn common_options() -> contract::BallotChoices {
    contract::BallotChoices {
        option_a: "Cats".into(),
        option_b: "Dogs".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_seed_queues_2000_a_and_1000_b_with_no_failures() {
    let redis = testkit::redis().await;
    let vote = vote_service(&redis.url).await;
    let target = vote.url("/");

    let report = seed::run(&settings(&["--target", &target])).await.unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!((report.ok_a, report.ok_b), (2000, 1000));

    let ballots: Vec<serde_json::Value> = redis
        .list("votes")
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let count = |v: &str| ballots.iter().filter(|b| b["vote"] == v).count();
    assert_eq!((count("a"), count("b")), (2000, 1000));
    // Every request was a new voter.
    let voters: std::collections::HashSet<_> =
        ballots.iter().map(|b| b["voter_id"].to_string()).collect();
    assert_eq!(voters.len(), 3000);
    // The original's order of runs: 1000 a, 1000 b, 1000 a.
    let runs: Vec<&str> = ballots
        .iter()
        .map(|b| b["vote"].as_str().unwrap())
        .collect();
    assert!(runs[..1000].iter().all(|v| *v == "a"));
    assert!(runs[1000..2000].iter().all(|v| *v == "b"));
    assert!(runs[2000..].iter().all(|v| *v == "a"));
}

#[tokio::test]
async fn custom_counts_and_concurrency_are_honoured() {
    let redis = testkit::redis().await;
    let vote = vote_service(&redis.url).await;
    let target = vote.url("/");
    let report = seed::run(&settings(&[
        "--target", &target, "-a", "7", "-b", "5", "-c", "3", "--rate", "500",
    ]))
    .await
    .unwrap();
    assert_eq!((report.ok_a, report.ok_b, report.failed()), (7, 5, 0));
    let mut conn = redis.conn().await;
    let len: u64 = redis::cmd("LLEN")
        .arg("votes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 12);
}

#[tokio::test]
async fn failed_requests_are_counted_by_cause() {
    // A vote service whose Redis is gone answers 503 to every vote.
    let mut redis = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let vote = vote_service(&redis.url(0)).await;
    let target = vote.url("/");
    redis.stop();
    let report = seed::run(&settings(&["--target", &target, "-a", "3", "-b", "0"]))
        .await
        .unwrap();
    assert_eq!(report.failed(), 3, "{report}");
    assert_eq!(report.failures["HTTP 503 Service Unavailable"], 3);
}

#[tokio::test]
async fn a_dead_target_exits_non_zero_with_a_clear_message() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_seed"))
        .args([
            "--target",
            &format!("http://127.0.0.1:{port}/"),
            "--wait",
            "1",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never answered"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[tokio::test]
async fn a_soak_with_no_votes_to_post_ends_instead_of_spinning() {
    let redis = testkit::redis().await;
    let vote = vote_service(&redis.url).await;
    let target = vote.url("/");
    let settings = settings(&[
        "--target",
        &target,
        "-a",
        "0",
        "-b",
        "0",
        "--duration",
        "600",
    ]);
    let soak = seed::run(&settings);
    // Without the fix this spins until the 600 s soak is over.
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), soak)
        .await
        .expect("the soak returns at once")
        .unwrap();
    assert_eq!((report.ok_a, report.ok_b, report.failed()), (0, 0, 0));
    assert!(redis.list("votes").await.is_empty());
}

/// The worker, in this process, storing what vote queues.
async fn worker_service(redis_url: &str, database_url: &str) -> testkit::Served<anyhow::Error> {
    #[derive(Parser)]
    struct WorkerCli {
        #[command(flatten)]
        settings: worker::Settings,
    }
    let settings = WorkerCli::try_parse_from([
        "worker",
        "--redis-url",
        redis_url,
        "--database-url",
        database_url,
        "--admin-bind-address",
        "127.0.0.1",
        "--admin-port",
        "0",
    ])
    .unwrap()
    .settings;
    testkit::Served::start(|admin, shutdown| worker::serve(admin, settings, shutdown)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_follows_the_feed_through_a_run_longer_than_results_ping_timeout() {
    let redis = testkit::redis().await;
    let db = testkit::postgres().await;
    let _worker = worker_service(&redis.url, &db.url).await;
    let vote = vote_service(&redis.url).await;
    // result drops a live page that answers no ping for two intervals
    // (200 ms here); the run below posts for about 1.5 s.
    let result = support::result_service(&db, 100).await;

    let report = seed::run(&settings(&[
        "--target",
        &vote.url("/"),
        "-a",
        "12",
        "-b",
        "0",
        "--rate",
        "8",
        "--verify",
        &result.url("/"),
        "--verify-timeout",
        "20",
    ]))
    .await
    .expect("the seed sees its votes on the live feed");
    assert_eq!((report.ok_a, report.ok_b, report.failed()), (12, 0, 0));
    assert!(report.verified_after.is_some(), "{report}");
    // What it saw is there: stored, and on the feed.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM votes WHERE vote = 'a'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 12);
    let mut feed = seed::verify::Feed::connect(&result.url("/")).await.unwrap();
    let shown = feed.next_tally(std::time::Duration::from_secs(10)).await;
    assert_eq!(shown.unwrap(), (12, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_whose_votes_never_arrive_exits_non_zero_within_its_timeout() {
    // Votes are queued, but no worker stores them: the feed never moves.
    let redis = testkit::redis().await;
    let db = testkit::postgres().await;
    let vote = vote_service(&redis.url).await;
    let result = support::result_service(&db, 20_000).await;

    let seed = tokio::process::Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["--progress", "none", "--target", &vote.url("/")])
        .args(["-a", "3", "-b", "0"])
        .args(["--verify", &result.url("/"), "--verify-timeout", "2"])
        .kill_on_drop(true)
        .output();
    // Far beyond its 2 s: a seed that waits on regardless fails here.
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), seed)
        .await
        .expect("the seed gives up at its --verify-timeout")
        .unwrap();

    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did not show the new votes (expected a ≥ 3, b ≥ 0)"),
        "{stderr}"
    );
    assert_eq!(redis.list("votes").await.len(), 3, "the votes were posted");
}
