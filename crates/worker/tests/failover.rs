//! The worker through a Redis failover and a Postgres failover, in the
//! replicated topologies (a Redis primary with a replica and three
//! Sentinels; two Patroni nodes in synchronous mode behind HAProxy): each
//! primary is SIGKILLed while the worker holds a batch it has not stored
//! yet, and every voter of every round still ends with a row holding their
//! latest ballot, with nothing left queued.
//!
//! Each round has voters of its own (who change their mind once), so a
//! ballot lost to a kill leaves a voter without their row, or with their
//! first choice: no later round can hide it. The worker is held mid-batch
//! at each kill by a lock the test takes on `votes`, so the kill is known
//! to meet work in flight, as in `faults.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use contract::queue::QUEUE_KEY;
use contract::{Ballot, Vote, VoterId};
use servicekit::connect::{Redis, SharedRedis};
use servicekit::settings::{AdminArgs, DatabaseArgs, RedisArgs};
use sqlx::{PgPool, Postgres, Transaction};
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};
use tokio_util::sync::CancellationToken;
use worker::queue::processing_key;

/// Voters per round; each casts two ballots.
const VOTERS: usize = 100;
const ROUNDS: usize = 5;
/// Far above what a failover and a catch-up take.
const DEADLINE: Duration = Duration::from_secs(60);
const WORKER_ID: &str = "failover";

fn voter(round: usize, i: usize) -> VoterId {
    VoterId::parse(format!("r{round}-voter-{i:03}")).unwrap()
}

/// Voter `i`'s final choice; their first ballot is the other option.
fn choice(i: usize) -> Vote {
    if i.is_multiple_of(2) {
        Vote::A
    } else {
        Vote::B
    }
}

fn other(vote: Vote) -> Vote {
    match vote {
        Vote::A => Vote::B,
        Vote::B => Vote::A,
    }
}

/// Every voter of rounds `..rounds` with their final choice.
fn expected(rounds: usize) -> BTreeMap<String, String> {
    (0..rounds)
        .flat_map(|round| (0..VOTERS).map(move |i| (round, i)))
        .map(|(round, i)| {
            (
                voter(round, i).as_str().to_owned(),
                choice(i).as_str().to_owned(),
            )
        })
        .collect()
}

/// Queues round `round` as vote does with `REDIS_MIN_REPLICAS_ACK=1`: each
/// voter's first choice, then their final one, each retried until a
/// replica confirmed it (through a failover, too).
async fn vote_round(redis: &SharedRedis, round: usize) {
    for i in 0..VOTERS {
        for vote in [other(choice(i)), choice(i)] {
            let ballot = Ballot::new(voter(round, i), vote);
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
}

async fn rows(pool: &PgPool) -> Option<HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, vote FROM votes")
        .fetch_all(pool)
        .await
        .ok()?;
    Some(rows.into_iter().collect())
}

/// Waits until every voter of rounds `..rounds` has their final choice.
async fn wait_for_rounds(pool: &PgPool, rounds: usize) {
    let expected = expected(rounds);
    testkit::eventually(
        &format!("the final choices of rounds 0 to {}", rounds - 1),
        DEADLINE,
        || async {
            let rows = rows(pool).await?;
            expected
                .iter()
                .all(|(id, vote)| rows.get(id) == Some(vote))
                .then_some(())
        },
    )
    .await;
}

/// Checks that every voter of every round holds their final choice, and
/// that no one else has a row; names the voters who do not.
async fn assert_final_choices(pool: &PgPool) {
    let stored = rows(pool).await.unwrap();
    let expected = expected(ROUNDS);
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(id, vote)| stored.get(*id) != Some(*vote))
        .map(|(id, vote)| format!("{id}: {:?} instead of {vote}", stored.get(id)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} voters lack their final choice: {wrong:#?}",
        wrong.len(),
        expected.len()
    );
    assert_eq!(stored.len(), expected.len(), "a row for no voter of ours");
}

/// Ballots queued and claimed (not yet acknowledged) on the primary.
async fn pending(redis: &SharedRedis) -> Option<(u64, u64)> {
    let mut conn = redis.clone();
    let queued: u64 = redis::cmd("LLEN")
        .arg(QUEUE_KEY)
        .query_async(&mut conn)
        .await
        .ok()?;
    let claimed: u64 = redis::cmd("LLEN")
        .arg(processing_key(WORKER_ID))
        .query_async(&mut conn)
        .await
        .ok()?;
    Some((queued, claimed))
}

/// Takes a lock on `votes` that makes every write to it wait, in a
/// transaction of its own on the primary: the worker's next commit blocks
/// until the transaction ends (or the primary dies).
async fn hold_writes(url: &str) -> Transaction<'static, Postgres> {
    let pool = PgPool::connect(url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE votes IN SHARE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until the worker has a batch claimed and its commit waits for
/// the lock of [`hold_writes`]; returns what was queued and claimed.
async fn wait_for_a_blocked_commit(redis: &SharedRedis, pool: &PgPool) -> (u64, u64) {
    testkit::eventually(
        "the worker's commit waiting on the lock",
        DEADLINE,
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO votes%'",
            )
            .fetch_one(pool)
            .await
            .ok()?;
            let (queued, claimed) = pending(redis).await?;
            (waiting > 0 && claimed > 0).then_some((queued, claimed))
        },
    )
    .await
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
    let redis_args = RedisArgs::through_sentinels(
        &redis_ha.sentinels_env(),
        redis_ha.master_name(),
        "redis://unused/0",
    )
    .unwrap();
    let database_url = postgres_ha.url("postgres");
    let settings = worker::Settings {
        redis: redis_args.clone(),
        database: DatabaseArgs::at(&database_url).unwrap(),
        worker_id: Some(WORKER_ID.into()),
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
    let producer = Redis::new(&redis_args).shared().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&database_url)
        .unwrap();

    vote_round(&producer, 0).await;
    wait_for_rounds(&pool, 1).await;

    // Round 1 is queued while the worker cannot commit, and Redis's
    // primary dies with the worker's batch claimed and not acknowledged:
    // it is redelivered on the new primary, and replays change nothing.
    let lock = hold_writes(&database_url).await;
    vote_round(&producer, 1).await;
    let (queued, claimed) = wait_for_a_blocked_commit(&producer, &pool).await;
    assert!(claimed > 0, "the Redis kill must meet a claimed batch");
    let old_redis = redis_ha.kill_primary().await.unwrap();
    lock.commit().await.unwrap();
    // The new primary takes writes once it has a replica again.
    redis_ha
        .wait_for_new_primary(old_redis, DEADLINE)
        .await
        .unwrap();
    redis_ha.restart_as_replica(old_redis).await.unwrap();
    vote_round(&producer, 2).await;
    wait_for_rounds(&pool, 3).await;
    assert_ne!(redis_ha.primary_node().await.unwrap(), old_redis);
    println!("Redis killed with {queued} ballots queued and {claimed} claimed");

    // Round 3 is queued, and Postgres's primary dies while the worker's
    // commit waits on it: the failed commit is retried on the promoted
    // standby, and the queue is acknowledged only after a commit.
    let lock = hold_writes(&database_url).await;
    vote_round(&producer, 3).await;
    let (queued, claimed) = wait_for_a_blocked_commit(&producer, &pool).await;
    let old_postgres = postgres_ha.kill_primary_node().await.unwrap();
    drop(lock);
    vote_round(&producer, 4).await;
    println!("Postgres killed with {queued} ballots queued and {claimed} claimed");

    // Once nothing is left queued or claimed on the current primary, every
    // ballot has been acknowledged: each must be in its row.
    testkit::eventually(
        "the queue and the processing list empty",
        DEADLINE,
        || async { (pending(&producer).await? == (0, 0)).then_some(()) },
    )
    .await;
    assert_ne!(postgres_ha.primary_node().await.unwrap(), old_postgres);
    let dead: u64 = redis::cmd("LLEN")
        .arg(worker::queue::DEAD_LETTER_KEY)
        .query_async(&mut producer.clone())
        .await
        .unwrap();
    assert_eq!(dead, 0, "no ballot was dead-lettered");
    assert_final_choices(&pool).await;

    shutdown.cancel();
    worker.await.unwrap().unwrap();
}
