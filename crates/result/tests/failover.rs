//! The live feed through a Postgres failover (two Patroni nodes in
//! synchronous mode, reached through HAProxy): after the primary's
//! SIGKILL, pages keep the last tally, and once the standby is promoted the
//! feed moves again by itself, with every committed vote counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{TestApp, migrate, tally};
use testkit::{PostgresHa, PostgresHaOptions};
use tokio::time::Instant;

/// Far above the few seconds a failover takes.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

/// `INSERT` through HAProxy, retried until it commits (the primary is
/// being replaced; a retry after a commit whose answer was lost changes
/// nothing); returns when it has.
async fn insert_until_committed(pool: &sqlx::PgPool, voter: &str, vote: &str) {
    testkit::eventually(
        "a vote committed on the new primary",
        FAILOVER_DEADLINE,
        || async {
            sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(voter)
                .bind(vote)
                .execute(pool)
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test]
async fn after_the_primary_is_killed_the_feed_keeps_the_last_tally_then_moves_again() {
    let mut ha = PostgresHa::start(PostgresHaOptions::default())
        .await
        .unwrap();
    let url = ha.url("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&url)
        .unwrap();
    migrate(&pool).await;
    support::insert_vote(&pool, "before-1", "a").await;
    support::insert_vote(&pool, "before-2", "b").await;

    let app = TestApp::spawn(&url).await;
    let mut client = app.connect().await;
    client.wait_for(tally(1, 1)).await;

    let old = ha.kill_primary_node().await.unwrap();
    let killed = Instant::now();
    // While there is no primary, the page still shows the last tally.
    let page = app.page().await;
    assert!(page.contains("2 votes"), "{page}");
    assert_eq!(app.state.current(), Some(tally(1, 1)));

    insert_until_committed(&pool, "after-1", "a").await;
    client.wait_for(tally(2, 1)).await;
    let still = killed.elapsed();
    let new = ha.primary_node().await.unwrap();
    assert_ne!(new, old, "the standby was promoted");
    // A figure for the log; the outcome is that the feed moved again, each
    // step awaited with its deadline.
    println!("the feed stood still for {still:?} after the kill");

    // And the feed goes on following the new primary.
    support::insert_vote(&pool, "after-2", "b").await;
    client.wait_for(tally(2, 2)).await;
}
