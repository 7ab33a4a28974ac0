//! A queue that fills up: Redis runs with `maxmemory` and
//! `maxmemory-policy noeviction`, as every manifest runs it, and the worker
//! is stopped. Vote must refuse ballots with its 503 page once Redis is
//! full (rather than Redis growing until the container's memory limit
//! kills it), Redis must stay up, and every ballot vote acknowledged must
//! be stored once the worker returns.
//!
//! `maxmemory` is scaled down (1 MiB above what the empty server uses) so
//! the queue fills in seconds; the
//! figure for the manifests' setting is in docs/manifests.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use contract::BallotChoices;
use contract::queue::QUEUE_KEY;
use servicekit::settings::{AdminArgs, DatabaseArgs, RedisArgs};
use testkit::{RedisOptions, RedisServer};
use tokio::sync::Mutex;

/// The test's bound, far beyond what it takes on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(240);

/// How long the returning worker has to store the queue (a few seconds
/// here).
const STORED_WITHIN: Duration = Duration::from_secs(90);

/// Bytes the queue may take: a scaled-down `maxmemory`.
const QUEUE_ROOM: u64 = 1024 * 1024;

/// Concurrent voters.
const VOTERS: u64 = 8;

/// No more ballots than this are tried: a Redis that never fills fails
/// the test instead of running it forever.
const MOST_BALLOTS: u64 = 200_000;

/// `used_memory` from `INFO memory`.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory names used_memory")
}

async fn config_set(conn: &mut redis::aio::MultiplexedConnection, key: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

fn worker_settings(redis_url: &str, db_url: &str) -> worker::Settings {
    worker::Settings {
        redis: RedisArgs::at(redis_url).unwrap(),
        database: DatabaseArgs::at(db_url).unwrap(),
        worker_id: Some("after-the-outage".to_owned()),
        batch_size: 1000,
        block_seconds: 0.2,
        heartbeat_seconds: 10,
        summary_seconds: 30.0,
        max_dead_letters: worker::dead_letter::DEFAULT_KEPT,
        admin: AdminArgs::at((Ipv4Addr::LOCALHOST, 0).into()),
    }
}

/// Posts a vote for voter `n`; returns the status.
async fn post(http: &reqwest::Client, url: &str, n: u64) -> (String, &'static str, u16) {
    let voter = format!("{n:016x}");
    let choice = if n.is_multiple_of(3) { "b" } else { "a" };
    let status = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("voter_id={voter}"))
        .body(format!("vote={choice}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (voter, choice, status)
}

#[tokio::test]
async fn a_full_redis_refuses_votes_with_503_stays_up_and_loses_no_acknowledged_ballot() {
    tokio::time::timeout(DEADLINE, run())
        .await
        .expect("the test finishes within its deadline");
}

async fn run() {
    let server = RedisServer::start(RedisOptions::default()).await.unwrap();
    let redis_url = server.url(0);
    let mut control = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Room for QUEUE_ROOM bytes of ballots above what the empty server
    // uses (test servers hold 10,000 databases: several MB).
    let maxmemory = used_memory(&mut control).await + QUEUE_ROOM;
    config_set(&mut control, "maxmemory", &maxmemory.to_string()).await;
    config_set(&mut control, "maxmemory-policy", "noeviction").await;
    let db = testkit::postgres().await;

    let choices = BallotChoices {
        option_a: "Cats".to_owned(),
        option_b: "Dogs".to_owned(),
    };
    let redis = servicekit::connect::Redis::at(&redis_url).unwrap();
    let state = vote::AppState::new(&redis, &choices, "test-host".to_owned()).unwrap();
    let served = testkit::Served::start_with_admin(|public, admin, shutdown| {
        servicekit::launch::serve(state, Some(public), admin, shutdown)
    })
    .await;
    let url = served.url("/");
    let http = reqwest::Client::new();

    // No worker: the queue grows until Redis refuses.
    let next = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let voters: Vec<_> = (0..VOTERS)
        .map(|_| {
            let (next, acknowledged, refused) =
                (next.clone(), acknowledged.clone(), refused.clone());
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    assert!(
                        n < MOST_BALLOTS,
                        "Redis took {MOST_BALLOTS} ballots without refusing one"
                    );
                    match post(&http, &url, n).await {
                        (voter, choice, 200) => {
                            acknowledged.lock().await.insert(voter, choice);
                        }
                        (_, _, 503) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        (voter, _, status) => panic!("voter {voter}: {status}, not 200 or 503"),
                    }
                }
            })
        })
        .collect();
    for voter in voters {
        voter.await.unwrap();
    }
    let acknowledged = Arc::try_unwrap(acknowledged).unwrap().into_inner();
    assert!(!acknowledged.is_empty(), "no ballot was acknowledged");

    // Full: Redis is up, every acknowledged ballot is queued, and votes are
    // still refused with the page that says so.
    let pong: String = redis::cmd("PING").query_async(&mut control).await.unwrap();
    assert_eq!(pong, "PONG");
    let queued: u64 = redis::cmd("LLEN")
        .arg(QUEUE_KEY)
        .query_async(&mut control)
        .await
        .unwrap();
    assert_eq!(queued, acknowledged.len() as u64);
    let res = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "voter_id=ffffffffffffffff")
        .body("vote=a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "a full queue refuses votes");
    let page = res.text().await.unwrap();
    assert!(page.contains("the vote queue is full"), "{page}");
    eprintln!(
        "{QUEUE_ROOM} bytes of room: {} ballots acknowledged before Redis refused ({} refusals)",
        acknowledged.len(),
        refused.load(Ordering::Relaxed)
    );

    // The worker returns: it empties the queue into Postgres.
    let _worker = testkit::Served::start(|admin, shutdown| {
        worker::serve(admin, worker_settings(&redis_url, &db.url), shutdown)
    })
    .await;
    let expected = acknowledged.len() as i64;
    testkit::eventually(
        "every acknowledged ballot stored",
        STORED_WITHIN,
        || async {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM votes")
                .fetch_one(&db.pool)
                .await
                .ok()?;
            (stored >= expected).then_some(())
        },
    )
    .await;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, vote FROM votes")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let stored: HashMap<String, String> = rows.into_iter().collect();
    let wrong: Vec<_> = acknowledged
        .iter()
        .filter(|(voter, choice)| stored.get(*voter).map(String::as_str) != Some(**choice))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "acknowledged but not stored as voted (first 5): {wrong:?}"
    );
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "rows nobody was acknowledged for"
    );

    // With the queue drained, votes are taken again.
    let status = testkit::eventually("votes to be taken again", DEADLINE, || async {
        let (_, _, status) = post(&http, &url, MOST_BALLOTS + 1).await;
        (status == 200).then_some(status)
    })
    .await;
    assert_eq!(status, 200);
}
