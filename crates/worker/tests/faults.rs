//! Redis and Postgres going away: at start, and restarting while ballots
//! flow. Nothing may be lost or misordered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, ballot, http_get, workload};
use testkit::{PostgresOptions, PostgresServer, RedisOptions, RedisServer};
use tokio::task::JoinHandle;

/// Pushes `ballots` in small slices, retrying a slice until Redis takes it
/// (a retried slice may land twice: harmless, ballots carry their seq).
/// Returns after the last slice is in.
fn produce(redis_url: String, ballots: Vec<String>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = redis::Client::open(redis_url.as_str()).unwrap();
        for slice in ballots.chunks(50) {
            testkit::eventually("Redis to take a slice of ballots", DEADLINE, || async {
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("RPUSH")
                    .arg(contract::queue::QUEUE_KEY)
                    .arg(slice)
                    .query_async::<u64>(&mut conn)
                    .await
                    .ok()
                    .map(|_| ())
            })
            .await;
            tokio::task::yield_now().await;
        }
    })
}

/// Streams ballots of 1,000 voters who keep changing their mind through a
/// worker — half queued before it starts, half pushed while it runs — and
/// runs `restart` once the worker has stored some and more are queued; then
/// checks that every voter's row holds their last ballot.
async fn restart_while_ballots_flow(env: &Env, seed: u64, restart: impl Future<Output = ()>) {
    let (ballots, last) = workload(1_000, 10_000, seed);
    let (first, second) = ballots.split_at(ballots.len() / 2);
    env.push(first).await;
    let mut settings = env.settings("w1");
    settings.batch_size = 100;
    let mut running = env.spawn(settings).await;
    testkit::eventually("rows to be stored", DEADLINE, || async {
        (env.row_count().await > 0).then_some(())
    })
    .await;
    let producer = produce(env.redis_url.clone(), second.to_vec());

    assert!(
        env.len(QUEUE_KEY).await > 0,
        "the restart must come mid-stream"
    );
    restart.await;
    producer.await.unwrap();
    env.wait_until_drained(&["w1"], last.len()).await;
    running.stop().await;

    env.assert_rows(&last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_while_ballots_flow_loses_nothing() {
    let mut redis = RedisServer::start(RedisOptions {
        appendonly: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let db = Env::new().await;
    let env = Env::from_urls(redis.url(0), db.db_url.clone());
    restart_while_ballots_flow(&env, 3, async {
        redis.stop();
        redis.start_again().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_while_ballots_flow_loses_nothing() {
    let mut postgres = PostgresServer::start(PostgresOptions::default())
        .await
        .unwrap();
    let redis = testkit::redis().await;
    let env = Env::from_urls(redis.url, postgres.url("postgres"));
    restart_while_ballots_flow(&env, 5, async {
        postgres.stop();
        postgres.start_again().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_waits_for_redis_and_postgres_at_start() {
    let mut redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    let mut postgres = PostgresServer::start(PostgresOptions::default())
        .await
        .unwrap();
    redis.stop();
    postgres.stop();
    let env = Env::from_urls(redis.url(0), postgres.url("postgres"));
    let mut running = env.spawn(env.settings("w1")).await;

    // Alive, but not ready while its stores are down.
    assert_eq!(http_get(running.addr, "/healthz").await.0, 200);
    assert_eq!(http_get(running.addr, "/readyz").await.0, 503);

    postgres.start_again().await.unwrap();
    redis.start_again().await.unwrap();
    env.push(&[ballot("late", "b", Some(1))]).await;
    env.wait_until_drained(&["w1"], 1).await;
    testkit::eventually("/readyz to answer 200", DEADLINE, || async {
        (http_get(running.addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(env.rows().await.get("late").map(String::as_str), Some("b"));
}
