//! The real `worker` binary: killed mid-batch, stopped with SIGTERM, its
//! `healthcheck` subcommand and `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, ballot, http_get, workload};
use testkit::refused::assert_refused_at_start;
use testkit::{RedisOptions, RedisServer};
use worker::queue::{WORKERS_KEY, heartbeat_key, processing_key};

async fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the worker is running");
    let status = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// The highest `seq` committed so far (ballots' seq grows along the queue).
async fn highest_seq(env: &Env) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT max(seq) FROM votes")
        .fetch_one(&env.pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Waits until the worker has committed a batch beyond `seq` and holds
/// another one.
async fn wait_for_batch_in_flight(env: &Env, id: &str, seq: i64) -> i64 {
    testkit::eventually("a batch in flight after a commit", DEADLINE, || async {
        let in_flight = env.len(&processing_key(id)).await;
        let highest = highest_seq(env).await;
        (in_flight > 0 && highest > seq).then_some(highest)
    })
    .await
}

#[tokio::test]
async fn sigkill_in_the_middle_of_a_large_batch_loses_no_ballot() {
    let env = Env::new().await;
    let (ballots, last) = workload(10_000, 50_000, 11);
    env.push(&ballots).await;

    // Kill it three times, each time with a batch in flight, restarting it
    // with the same id.
    let mut kills_mid_batch = 0;
    let mut committed = 0;
    for _ in 0..3 {
        let mut child = env.command("victim", 5_000).spawn().unwrap();
        wait_for_batch_in_flight(&env, "victim", committed).await;
        signal(&child, "KILL").await;
        child.wait().await.unwrap();
        if env.len(&processing_key("victim")).await > 0 {
            kills_mid_batch += 1;
        }
        committed = highest_seq(&env).await;
    }
    assert!(kills_mid_batch > 0, "no kill hit a batch in flight");

    let mut child = env.command("victim", 5_000).spawn().unwrap();
    env.wait_until_drained(&["victim"], last.len()).await;
    signal(&child, "TERM").await;
    assert!(child.wait().await.unwrap().success());

    env.assert_rows(&last).await;
}

#[tokio::test]
async fn a_killed_workers_batch_is_taken_over_by_a_live_one() {
    let env = Env::new().await;
    let (ballots, last) = workload(5_000, 30_000, 13);
    env.push(&ballots).await;
    let spawn = |id: &str| {
        env.command(id, 2_000)
            .env("HEARTBEAT_SECONDS", "1")
            .spawn()
            .unwrap()
    };
    let mut doomed = spawn("doomed");
    let mut survivor = spawn("survivor");

    wait_for_batch_in_flight(&env, "doomed", 0).await;
    signal(&doomed, "KILL").await;
    doomed.wait().await.unwrap();

    // Never restarted: the survivor must put its batch back on the queue.
    env.wait_until_drained(&["doomed", "survivor"], last.len())
        .await;
    signal(&survivor, "TERM").await;
    assert!(survivor.wait().await.unwrap().success());
    env.assert_rows(&last).await;
}

#[tokio::test]
async fn sigterm_commits_the_batch_in_flight_and_exits_zero() {
    let env = Env::new().await;
    let ballots: Vec<String> = (0..30_000)
        .map(|i| ballot(&format!("t{i:05}"), "a", Some(i + 1)))
        .collect();
    env.push(&ballots).await;
    let mut child = env.command("polite", 5_000).spawn().unwrap();
    wait_for_batch_in_flight(&env, "polite", 0).await;

    signal(&child, "TERM").await;
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the worker exits after SIGTERM")
        .unwrap();

    assert!(status.success(), "exit status {status}");
    assert_eq!(
        env.len(&processing_key("polite")).await,
        0,
        "batch left uncommitted"
    );
    // Everything taken from the head is stored; the rest waits, in order.
    let stored = env.row_count().await as usize;
    assert!(stored > 0);
    assert_eq!(env.list(QUEUE_KEY).await, ballots[stored..]);
    let mut conn = env.redis().await;
    let beating: bool = redis::cmd("EXISTS")
        .arg(heartbeat_key("polite"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let registered: bool = redis::cmd("SISMEMBER")
        .arg(WORKERS_KEY)
        .arg("polite")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !beating && !registered,
        "a clean stop deregisters the worker"
    );
    env.assert_tally_consistent().await;
}

#[tokio::test]
async fn the_healthcheck_subcommand_reports_readiness() {
    // A Redis of the test's own, to take away from the running worker.
    let mut redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    let db = testkit::postgres().await;
    let env = Env::from_urls(redis.url(0), db.url);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // The exit code of `worker healthcheck [flags]`.
    let healthcheck = |flags: &'static [&'static str]| {
        let mut cmd = env.command("hc", 10);
        cmd.env("ADMIN_PORT", port.to_string())
            .arg("healthcheck")
            .args(flags)
            .stderr(std::process::Stdio::null());
        async move { cmd.status().await.unwrap().code() }
    };
    assert_eq!(healthcheck(&[]).await, Some(1), "nothing listens yet");

    let mut child = env
        .command("hc", 10)
        .env("ADMIN_PORT", port.to_string())
        .spawn()
        .unwrap();
    testkit::eventually("worker healthcheck to succeed", DEADLINE, || async {
        (healthcheck(&[]).await == Some(0)).then_some(())
    })
    .await;

    // Redis gone: the worker lives on, but is not ready.
    redis.stop();
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    testkit::eventually("/readyz to answer 503", DEADLINE, || async {
        (http_get(admin, "/readyz").await.0 == 503).then_some(())
    })
    .await;
    assert_eq!(healthcheck(&[]).await, Some(1), "ready without Redis");
    assert_eq!(
        healthcheck(&["--live"]).await,
        Some(0),
        "alive all the same"
    );

    redis.start_again().await.unwrap();
    testkit::eventually("worker healthcheck to succeed again", DEADLINE, || async {
        (healthcheck(&[]).await == Some(0)).then_some(())
    })
    .await;
    signal(&child, "TERM").await;
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn settings_that_cannot_work_stop_the_worker_at_start_naming_the_variable() {
    let worker = env!("CARGO_BIN_EXE_worker");
    let sentinels = ("REDIS_SENTINELS", "127.0.0.1:26379");
    for (env, name) in [
        (&[("BLOCK_SECONDS", "0")][..], "BLOCK_SECONDS"),
        (&[("BATCH_SIZE", "0")], "BATCH_SIZE"),
        (&[("BATCH_SIZE", "50001")], "BATCH_SIZE"),
        (&[("HEARTBEAT_SECONDS", "0")], "HEARTBEAT_SECONDS"),
        (&[("SUMMARY_SECONDS", "0")], "SUMMARY_SECONDS"),
        (&[sentinels], "REDIS_SENTINEL_MASTER"),
        (&[("REDIS_URL", "not a url")], "REDIS_URL"),
        (&[("DATABASE_URL", "not a url")], "DATABASE_URL"),
        (&[("DATABASE_URL", "mysql://db/votes")], "DATABASE_URL"),
    ] {
        assert_refused_at_start(worker, env, name).await;
    }
}

#[tokio::test]
async fn help_documents_every_setting() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for setting in [
        "REDIS_URL",
        "DATABASE_URL",
        "WORKER_ID",
        "BATCH_SIZE",
        "BLOCK_SECONDS",
        "HEARTBEAT_SECONDS",
        "SUMMARY_SECONDS",
        "ADMIN_PORT",
        "healthcheck",
    ] {
        assert!(help.contains(setting), "--help lacks {setting}:\n{help}");
    }
}
