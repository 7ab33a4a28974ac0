//! The replicated stores fail over for real: the primary is SIGKILLed, the
//! replacement takes writes at the same address (Sentinel's answer, or
//! HAProxy's endpoint), nothing acknowledged before the kill is lost, and
//! the old primary comes back as a replica.
//!
//! Deadlines are generous (the machine is shared and loaded); how fast a
//! failover is gets measured by `--example failover_times`, not here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};

/// Far above the few seconds a failover takes on an idle machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(url: &str, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap()
}

/// `SET key value` then `WAIT 1`: how many replicas acknowledged it.
async fn set_acknowledged(url: &str, key: &str, value: &str) -> redis::RedisResult<u32> {
    let mut conn = redis_conn(url).await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut conn)
        .await?;
    redis::cmd("WAIT")
        .arg(1)
        .arg(400)
        .query_async(&mut conn)
        .await
}

#[tokio::test]
async fn redis_primary_killed_a_replica_takes_over_with_every_acknowledged_write() {
    let mut ha = RedisHa::start(RedisHaOptions::default()).await.unwrap();
    let old = ha.primary_node().await.unwrap();
    assert_eq!(old, 0, "node 0 starts as the primary");
    let acked = set_acknowledged(&ha.node_url(old, 0), "before", "kill")
        .await
        .unwrap();
    assert!(acked >= 1, "WAIT 1 saw {acked} replicas");

    assert_eq!(ha.kill_primary().await.unwrap(), old);
    let new = ha
        .wait_for_new_primary(old, FAILOVER_DEADLINE)
        .await
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(ha.primary().await.unwrap(), ha.node_addr(new));

    // Found through Sentinel, the new primary takes acknowledged writes
    // (once the other replica follows it) and kept the one from before.
    assert_eq!(
        ha.wait_for_writable_primary(FAILOVER_DEADLINE)
            .await
            .unwrap(),
        new
    );
    let url = ha.node_url(new, 0);
    let acked = testkit::eventually("an acknowledged write", FAILOVER_DEADLINE, || async {
        set_acknowledged(&url, "after", "failover")
            .await
            .ok()
            .filter(|&n| n >= 1)
    })
    .await;
    assert!(acked >= 1);
    assert_eq!(get(&url, "before").await.as_deref(), Some("kill"));

    // The old primary comes back as a replica holding everything.
    ha.restart_as_replica(old).await.unwrap();
    let old_url = ha.node_url(old, 0);
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut redis_conn(&old_url).await)
        .await
        .unwrap();
    assert_eq!(
        redis::from_redis_value_ref::<String>(&role[0]).unwrap(),
        "slave"
    );
    assert_eq!(get(&old_url, "before").await.as_deref(), Some("kill"));
    assert_eq!(get(&old_url, "after").await.as_deref(), Some("failover"));
    assert_eq!(ha.primary_node().await.unwrap(), new);

    // A primary that loses its replicas refuses writes rather than
    // accepting ones a failover would drop.
    for replica in (0..ha.node_count()).filter(|&n| n != new) {
        ha.kill(replica);
    }
    let refusal = testkit::eventually(
        "the lone primary to refuse writes",
        FAILOVER_DEADLINE,
        || {
            let url = url.clone();
            async move {
                let mut conn = redis_conn(&url).await;
                let set: redis::RedisResult<()> = redis::cmd("SET")
                    .arg("alone")
                    .arg("x")
                    .query_async(&mut conn)
                    .await;
                set.err()
            }
        },
    )
    .await;
    assert!(refusal.to_string().contains("NOREPLICAS"), "{refusal}");
}

#[tokio::test]
async fn postgres_primary_node_killed_the_standby_takes_over_behind_the_same_url() {
    let mut ha = PostgresHa::start(PostgresHaOptions::default())
        .await
        .unwrap();
    let url = ha.url("postgres");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE ballots (id text PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO ballots VALUES ('before')")
        .execute(&mut conn)
        .await
        .unwrap();

    let old = ha.kill_primary_node().await.unwrap();
    // The connection through HAProxy went down with its node.
    assert!(
        sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
        "a connection to the killed primary still answers"
    );
    let new = ha.wait_for_failover(FAILOVER_DEADLINE).await.unwrap();
    assert_ne!(new, old);

    // Same URL, new primary: the commit from before the kill is there
    // (synchronous replication), writes and LISTEN work.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM ballots")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, ["before"]);
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen("tally").await.unwrap();
    sqlx::query("INSERT INTO ballots VALUES ('after')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("NOTIFY tally, 'changed'")
        .execute(&mut conn)
        .await
        .unwrap();
    let note = tokio::time::timeout(FAILOVER_DEADLINE, listener.recv())
        .await
        .expect("a notification through HAProxy")
        .unwrap();
    assert_eq!(note.payload(), "changed");

    // The old node rejoins as the synchronous standby with all the data.
    ha.restart_node(old).await.unwrap();
    assert_eq!(ha.primary_node().await.unwrap(), new);
    let mut standby = PgConnection::connect(&ha.node_url(old, "postgres"))
        .await
        .unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut standby)
        .await
        .unwrap();
    assert!(in_recovery, "the old primary came back as a primary");
    let standby_url = ha.node_url(old, "postgres");
    let rows: Vec<String> =
        testkit::eventually("both rows on the standby", FAILOVER_DEADLINE, || {
            let standby_url = standby_url.clone();
            async move {
                let mut standby = PgConnection::connect(&standby_url).await.ok()?;
                let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM ballots ORDER BY id")
                    .fetch_all(&mut standby)
                    .await
                    .ok()?;
                (rows.len() == 2).then_some(rows)
            }
        })
        .await;
    assert_eq!(rows, ["after", "before"]);
}
