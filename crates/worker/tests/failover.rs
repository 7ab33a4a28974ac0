//! The worker through a Redis failover and a Postgres failover, in the
//! replicated topologies (a Redis primary with a replica and three
//! Sentinels; two Patroni nodes in synchronous mode behind HAProxy): each
//! primary is SIGKILLed while the worker is storing, and every voter's row
//! still ends as their latest ballot, with nothing left queued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use contract::queue::QUEUE_KEY;
use contract::{Ballot, Vote, VoterId};
use servicekit::connect::Primary;
use servicekit::settings::{AdminArgs, DatabaseArgs, RedisArgs};
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};
use tokio_util::sync::CancellationToken;
use worker::queue::processing_key;

const VOTERS: usize = 200;
/// Far above what a failover and a catch-up take.
const DEADLINE: Duration = Duration::from_secs(60);

fn voter(i: usize) -> VoterId {
    VoterId::parse(format!("voter-{i:04}")).unwrap()
}

/// Voter `i`'s choice in round `round`: every round changes every mind.
fn choice(i: usize, round: usize) -> Vote {
    if (i + round).is_multiple_of(2) {
        Vote::A
    } else {
        Vote::B
    }
}

/// Queues one round of ballots as vote does with `REDIS_MIN_REPLICAS_ACK=1`,
/// retrying each until a replica confirmed it (through a failover, too).
async fn vote_round(redis: &Primary, round: usize) {
    for i in 0..VOTERS {
        let ballot = Ballot::new(voter(i), choice(i, round));
        testkit::eventually("a ballot confirmed by a replica", DEADLINE, || {
            let mut conn = redis.clone();
            let ballot = ballot.clone();
            async move {
                let (_, confirmed) = contract::queue::enqueue_replicated(
                    &mut conn,
                    &ballot,
                    1,
                    Duration::from_millis(500),
                )
                .await
                .ok()?;
                (confirmed >= 1).then_some(())
            }
        })
        .await;
    }
}

async fn rows(pool: &sqlx::PgPool) -> Option<HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, vote FROM votes")
        .fetch_all(pool)
        .await
        .ok()?;
    Some(rows.into_iter().collect())
}

/// Waits until every voter's row holds their choice of `round`.
async fn wait_for_round(pool: &sqlx::PgPool, round: usize) {
    testkit::eventually(
        &format!("every voter's round-{round} choice stored"),
        DEADLINE,
        || async {
            let rows = rows(pool).await?;
            (0..VOTERS)
                .all(|i| {
                    rows.get(voter(i).as_str()).map(String::as_str)
                        == Some(choice(i, round).as_str())
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn through_a_redis_and_a_postgres_failover_every_voter_ends_with_their_latest_ballot() {
    let (redis_ha, postgres_ha) = tokio::join!(
        // One replica, confirmed by every ballot (as vote does with
        // REDIS_MIN_REPLICAS_ACK=1): the promoted replica has them all.
        RedisHa::start(RedisHaOptions {
            replicas: 1,
            ..RedisHaOptions::default()
        }),
        PostgresHa::start(PostgresHaOptions::default())
    );
    let (mut redis_ha, mut postgres_ha) = (redis_ha.unwrap(), postgres_ha.unwrap());
    let redis_args = RedisArgs {
        redis_url: "redis://unused/0".into(),
        redis_sentinels: Some(redis_ha.sentinels_env()),
        redis_sentinel_master: Some(redis_ha.master_name().to_owned()),
    };
    let database_url = postgres_ha.url("postgres");
    let settings = worker::Settings {
        redis: redis_args.clone(),
        database: DatabaseArgs {
            database_url: database_url.clone(),
        },
        worker_id: Some("failover".into()),
        batch_size: 50,
        block_seconds: 0.2,
        heartbeat_seconds: 10,
        summary_seconds: 30.0,
        max_dead_letters: worker::dead_letter::DEFAULT_KEPT,
        admin: AdminArgs::at((Ipv4Addr::LOCALHOST, 0).into()),
    };
    let shutdown = CancellationToken::new();
    let admin = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let worker = tokio::spawn(worker::serve(admin, settings, shutdown.clone()));
    let producer = redis_args.handle().unwrap().manager().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&database_url)
        .unwrap();

    vote_round(&producer, 0).await;
    wait_for_round(&pool, 0).await;

    // Round 1 is queued, and Redis's primary dies while the worker stores
    // it: batches claimed and not acknowledged are redelivered on the new
    // primary, and replays change nothing.
    vote_round(&producer, 1).await;
    let old_redis = redis_ha.kill_primary().await.unwrap();
    // The new primary takes writes once it has a replica again.
    redis_ha
        .wait_for_new_primary(old_redis, DEADLINE)
        .await
        .unwrap();
    redis_ha.restart_as_replica(old_redis).await.unwrap();
    vote_round(&producer, 2).await;
    wait_for_round(&pool, 2).await;
    assert_ne!(redis_ha.primary_node().await.unwrap(), old_redis);

    // Round 3 is queued, and Postgres's primary dies while the worker
    // commits it: a failed commit is retried on the promoted standby, and
    // the queue is acknowledged only after a commit.
    vote_round(&producer, 3).await;
    let old_postgres = postgres_ha.kill_primary_node().await.unwrap();
    vote_round(&producer, 4).await;
    wait_for_round(&pool, 4).await;
    assert_ne!(postgres_ha.primary_node().await.unwrap(), old_postgres);

    // Nothing is left queued or claimed on the current primary.
    let mut conn = producer.clone();
    testkit::eventually("the queue and the processing list empty", DEADLINE, || {
        let mut conn = conn.clone();
        async move {
            let queued: u64 = redis::cmd("LLEN")
                .arg(QUEUE_KEY)
                .query_async(&mut conn)
                .await
                .ok()?;
            let claimed: u64 = redis::cmd("LLEN")
                .arg(processing_key("failover"))
                .query_async(&mut conn)
                .await
                .ok()?;
            (queued == 0 && claimed == 0).then_some(())
        }
    })
    .await;
    let dead: u64 = redis::cmd("LLEN")
        .arg(worker::queue::DEAD_LETTER_KEY)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "no ballot was dead-lettered");
    let stored = rows(&pool).await.unwrap();
    assert_eq!(stored.len(), VOTERS, "one row per voter, no extra");

    shutdown.cancel();
    worker.await.unwrap().unwrap();
}
