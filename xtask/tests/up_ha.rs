//! `cargo xtask up --ha` keeps working when a primary is killed by hand and
//! nothing restarts it — the first thing a learner tries. The replicated
//! stores and the services are those `up --ha` runs ([`Replicated`] with
//! its default topology, [`Stack`] with its environment), on debug
//! binaries next to this test's build.
//!
//! The Redis primary is SIGKILLed and left dead: votes are confirmed and
//! stored again, and keep being so. Then the Postgres leader is SIGKILLed
//! and left dead: the same. How long each took is printed (it belongs in
//! the failover reports, not in an assertion); the test fails only if
//! voting or storing does not come back within a generous deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use tokio::time::Instant;
use xtask::chaos::Stores;
use xtask::ha::{RedisTopology, Replicated};
use xtask::stack::{Logs, Stack, StackOptions, free_port_or_any};

/// Far above the few seconds a failover takes on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// Votes that must all be confirmed and stored after each kill.
const AFTERWARDS: usize = 20;

/// Posts a vote as a new voter; the voter id if it was confirmed (200).
async fn vote(http: &reqwest::Client, stack: &Stack) -> Option<String> {
    let res = http
        .post(&stack.vote_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("vote=a")
        .send()
        .await
        .ok()?;
    if res.status() != StatusCode::OK {
        return None;
    }
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok()?.strip_prefix("voter_id="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .next()
}

/// Whether `voter`'s row is in the table, read through the primary's
/// endpoint (`None` while Postgres cannot be asked).
async fn stored(database_url: &str, voter: &str) -> Option<bool> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(database_url)
        .await
        .ok()?;
    let row: Option<(String,)> = sqlx::query_as("SELECT vote FROM votes WHERE id = $1")
        .bind(voter)
        .fetch_optional(&pool)
        .await
        .ok()?;
    pool.close().await;
    Some(row.is_some())
}

/// Votes until one is confirmed and stored; how long that took from
/// `since`.
async fn vote_and_store(
    http: &reqwest::Client,
    stack: &Stack,
    database_url: &str,
    since: Instant,
) -> Duration {
    let voter = testkit::eventually("a vote to be confirmed", DEADLINE, || async {
        let voter = vote(http, stack).await;
        if voter.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        voter
    })
    .await;
    testkit::eventually("the confirmed vote to be stored", DEADLINE, || async {
        stored(database_url, &voter).await.filter(|&s| s)
    })
    .await;
    since.elapsed()
}

/// After a kill: votes confirmed and stored again, then [`AFTERWARDS`]
/// more in a row, each confirmed at the first try.
async fn voting_resumes(
    what: &str,
    killed: Instant,
    http: &reqwest::Client,
    stack: &Stack,
    stores: &Replicated,
) {
    let back = vote_and_store(http, stack, &stores.database_url(), killed).await;
    println!("{what}: a vote confirmed and stored {back:?} after the kill");
    for n in 0..AFTERWARDS {
        let voter = vote(http, stack).await;
        assert!(
            voter.is_some(),
            "vote {n} after the {what} kill was not confirmed: voting did not stay up"
        );
        let voter = voter.unwrap();
        testkit::eventually("the vote to be stored", DEADLINE, || async {
            stored(&stores.database_url(), &voter).await.filter(|&s| s)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_primary_killed_and_left_dead_votes_are_confirmed_and_stored_again() {
    let mut stores = Replicated::start(RedisTopology::default())
        .await
        .expect("the replicated stores started");
    let logs = tempfile::tempdir().unwrap();
    let mut env = stores.service_env();
    env.push(("BIND_ADDRESS".into(), "127.0.0.1".into()));
    let options = StackOptions {
        bin_dir: support::debug_bin_dir(),
        vote_port: free_port_or_any(0).unwrap(),
        result_port: free_port_or_any(0).unwrap(),
        redis_url: Some(stores.redis_url()),
        database_url: Some(stores.database_url()),
        redis_port: 0,
        postgres_port: 0,
        logs: Logs::Files(logs.path().to_path_buf()),
        log_level: "info".into(),
        env,
    };
    let stack = Stack::start(&options).await.expect("the stack started");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    vote_and_store(&http, &stack, &stores.database_url(), Instant::now()).await;

    let killed = Instant::now();
    stores.kill_redis_primary().await.unwrap();
    voting_resumes("Redis primary", killed, &http, &stack, &stores).await;
    let killed = Instant::now();
    stores.kill_postgres_primary().await.unwrap();
    voting_resumes("Postgres leader", killed, &http, &stack, &stores).await;

    let problems = stack.stop().await;
    assert!(problems.is_empty(), "{problems:?}");
}
