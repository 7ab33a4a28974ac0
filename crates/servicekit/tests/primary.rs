//! The Sentinel handle follows the primary for real: a SIGKILLed primary
//! and a demoted one (a manual failover) are left behind by themselves,
//! without every caller asking the Sentinels at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use servicekit::connect::{LOOKUP_GAP, Redis, SharedRedis};
use servicekit::metric::REDIS_PRIMARY_LOOKUPS;
use servicekit::settings::RedisArgs;
use testkit::metrics::Recorded;
use testkit::{RedisHa, RedisHaOptions};
use tokio::time::Instant;

/// Far above the few seconds a failover takes.
const DEADLINE: Duration = Duration::from_secs(60);

/// A key written (and held by every replica) before the primary is killed.
const BEFORE_THE_KILL: &str = "written-before-the-kill";

fn handle(ha: &RedisHa) -> SharedRedis {
    let args =
        RedisArgs::through_sentinels(&ha.sentinels_env(), ha.master_name(), "redis://unused/0")
            .unwrap();
    Redis::new(&args).shared().unwrap()
}

/// The port of the node the handle's commands reach, as that node tells.
async fn connected_to(conn: &SharedRedis) -> redis::RedisResult<u16> {
    let info: redis::InfoDict = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn.clone())
        .await?;
    Ok(info.get("tcp_port").unwrap_or_default())
}

async fn incr(conn: &mut SharedRedis) -> redis::RedisResult<u64> {
    redis::cmd("INCR").arg("count").query_async(conn).await
}

#[tokio::test]
async fn a_killed_primary_is_left_for_the_one_sentinel_promotes_with_few_lookups() {
    // Two replicas (the default).
    let lookups = Recorded::on_this_thread();
    let mut ha = RedisHa::start(RedisHaOptions::default()).await.unwrap();
    let primary = handle(&ha);
    assert_eq!(incr(&mut primary.clone()).await.unwrap(), 1);
    assert_eq!(
        connected_to(&primary).await.unwrap(),
        ha.node_addr(0).port()
    );
    // A write of its own before the kill, held by both replicas, so
    // whichever Sentinel promotes must have it.
    let mut conn = primary.clone();
    let () = redis::cmd("SET")
        .arg(BEFORE_THE_KILL)
        .arg("kept")
        .query_async(&mut conn)
        .await
        .unwrap();
    let held: u64 = redis::cmd("WAIT")
        .arg(2)
        .arg(DEADLINE.as_millis() as u64)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, 2, "both replicas hold the write before the kill");

    let old = ha.kill_primary().await.unwrap();
    let killed = Instant::now();
    // A hundred callers hammer the handle until each gets through.
    let callers = 100;
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    for _ in 0..callers {
        let mut conn = primary.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while incr(&mut conn).await.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done.add_permits(1);
        });
    }
    let all = tokio::time::timeout(DEADLINE, done.acquire_many(callers))
        .await
        .expect("every caller got through to the new primary");
    drop(all);
    let took = killed.elapsed();

    let new = ha.primary_node().await.unwrap();
    assert_ne!(new, old);
    assert_eq!(
        connected_to(&primary).await.unwrap(),
        ha.node_addr(new).port()
    );
    // One lookup per gap at most while no primary could be found, and a
    // few more around the kill and the promotion — not one per failure.
    let bound = 4.0 + (took.as_millis() / LOOKUP_GAP.as_millis()) as f64;
    let asked = lookups.value(REDIS_PRIMARY_LOOKUPS.name, &[]);
    println!("{callers} callers through after {took:?}, {asked} lookups");
    assert!(asked >= 1.0, "the Sentinels were asked at least once");
    assert!(
        asked <= bound,
        "{asked} lookups in {took:?} (at most {bound})"
    );
    // The new primary kept the write from before the kill.
    let kept: Option<String> = redis::cmd("GET")
        .arg(BEFORE_THE_KILL)
        .query_async(&mut primary.clone())
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("kept"), "the write before the kill");
}

#[tokio::test]
async fn a_demoted_primary_is_left_for_the_new_one() {
    let ha = RedisHa::start(RedisHaOptions::default()).await.unwrap();
    let mut primary = handle(&ha);
    incr(&mut primary).await.unwrap();
    let old = connected_to(&primary).await.unwrap();

    // A manual failover: the old primary lives on as a replica, so a
    // connection to it that survived would be refused writes (READONLY).
    let sentinel = redis::Client::open(format!("redis://{}", ha.sentinels()[0])).unwrap();
    let () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(ha.master_name())
        .query_async(&mut sentinel.get_multiplexed_async_connection().await.unwrap())
        .await
        .unwrap();
    let moved = testkit::eventually("the handle to reach the new primary", DEADLINE, || {
        let mut primary = primary.clone();
        async move {
            incr(&mut primary).await.ok()?;
            connected_to(&primary).await.ok().filter(|now| *now != old)
        }
    })
    .await;
    assert_eq!(moved, ha.primary().await.unwrap().port());
}
