//! The result service when the database is not what it expects: no table
//! yet, only the original app's table, Postgres restarting under it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use support::{DEADLINE, TestApp, insert_vote, migrate, settings, tally};
use testkit::{PostgresOptions, PostgresServer};

/// The `votes` table as the original worker creates it (the same shape as
/// our first migration), with none of our additions.
const ORIGINAL_TABLE: &str = include_str!("../../contract/migrations/0001_votes.sql");

#[tokio::test]
async fn a_missing_table_shows_no_votes_until_the_worker_creates_it() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));
    assert!(app.page().await.contains("No votes yet"));
    // Postgres answers, so the service is ready: "no table" is "no votes".
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    migrate(&db.pool).await;
    insert_vote(&db.pool, "v1", "a").await;
    client.wait_for(tally(1, 0)).await;
    assert!(app.page().await.contains("1 vote"));
}

#[tokio::test]
async fn a_database_with_only_the_original_table_is_counted_by_polling() {
    let db = testkit::postgres().await;
    // What the original worker creates: no tally table, no triggers, no
    // notifications — only the poll can see changes.
    sqlx::query(ORIGINAL_TABLE).execute(&db.pool).await.unwrap();
    insert_vote(&db.pool, "v1", "b").await;
    let app = TestApp::spawn_with(result::Settings {
        poll_interval_ms: 100,
        ..settings(&db.url)
    })
    .await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 1));
    insert_vote(&db.pool, "v2", "a").await;
    insert_vote(&db.pool, "v3", "a").await;
    client.wait_for(tally(2, 1)).await;
}

/// The lines of `server`'s log that report a failed statement.
fn failed_statements(server: &PostgresServer) -> Vec<String> {
    std::fs::read_to_string(server.socket_dir().join("postgres.log"))
        .unwrap()
        .lines()
        .filter(|line| line.contains("ERROR:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn polling_a_database_without_our_schema_sends_no_failing_queries() {
    // A server of our own, so its log holds only this test's statements.
    let server = PostgresServer::start(PostgresOptions::default())
        .await
        .unwrap();
    let url = server.url("postgres");
    let pool = connect(&url).await;
    let app = TestApp::spawn_with(result::Settings {
        poll_interval_ms: 10,
        ..settings(&url)
    })
    .await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));
    // No table yet, then the original worker's table: every change below
    // is seen by a poll, so each takes at least one read.
    sqlx::query(ORIGINAL_TABLE).execute(&pool).await.unwrap();
    for n in 1..=20 {
        insert_vote(&pool, &format!("v{n}"), "a").await;
        client.wait_for(tally(n, 0)).await;
    }
    let failed = failed_statements(&server);
    assert!(
        failed.is_empty(),
        "{} failed statements in the Postgres log, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

#[tokio::test]
async fn the_fast_tally_is_read_once_the_worker_migrates_an_original_database() {
    let db = testkit::postgres().await;
    sqlx::query(ORIGINAL_TABLE).execute(&db.pool).await.unwrap();
    insert_vote(&db.pool, "v1", "b").await;
    let app = TestApp::spawn_with(result::Settings {
        poll_interval_ms: 20,
        ..settings(&db.url)
    })
    .await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 1));

    // Our worker migrates. A skewed `vote_tally` (no trigger fires for a
    // direct update) tells which query the service reads.
    migrate(&db.pool).await;
    sqlx::query("UPDATE vote_tally SET count = 1000 WHERE vote = 'b'")
        .execute(&db.pool)
        .await
        .unwrap();
    // The first change notification makes the service look again.
    support::store_with_the_worker(&db.pool, "v2", "a", 1).await;
    client.wait_for(tally(1, 1000)).await;
}

#[tokio::test]
async fn the_tally_source_is_looked_for_again_after_the_reprobe_interval() {
    use result::tally::{TallyReader, TallySource};
    let db = testkit::postgres().await;
    // Long enough that the migration below certainly ends within it.
    let mut reader = TallyReader::new(std::time::Duration::from_secs(5));
    assert_eq!(reader.read(&db.pool).await.unwrap(), tally(0, 0));
    assert_eq!(reader.source(), Some(TallySource::NoTable));
    // With no table yet, every read looks: the original worker's table and
    // its first vote count at once.
    sqlx::query(ORIGINAL_TABLE).execute(&db.pool).await.unwrap();
    insert_vote(&db.pool, "v1", "b").await;
    assert_eq!(reader.read(&db.pool).await.unwrap(), tally(0, 1));
    assert_eq!(reader.source(), Some(TallySource::Counted));
    // Migrated, with no notification to say so: the reader keeps counting
    // until the interval has passed, then reads `vote_tally`.
    migrate(&db.pool).await;
    sqlx::query("UPDATE vote_tally SET count = 1000 WHERE vote = 'b'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(reader.read(&db.pool).await.unwrap(), tally(0, 1));
    let reader = tokio::sync::Mutex::new(reader);
    testkit::eventually("the reader to switch to vote_tally", DEADLINE, || async {
        let read = reader.lock().await.read(&db.pool).await.unwrap();
        (read == tally(0, 1000)).then_some(())
    })
    .await;
    let mut reader = reader.into_inner();
    assert_eq!(reader.source(), Some(TallySource::Kept));
    // A dropped table is noticed at the next read.
    sqlx::query("DROP TABLE vote_tally")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(reader.read(&db.pool).await.unwrap(), tally(0, 1));
    assert_eq!(reader.source(), Some(TallySource::Counted));
}

/// A Postgres of our own to stop and crash. Durable (fsync and synchronous
/// commit on): otherwise a crash loses the last commits — the schema and
/// votes a test just wrote.
async fn dedicated_postgres() -> (PostgresServer, String) {
    let server = PostgresServer::start(PostgresOptions {
        fsync: true,
        ..PostgresOptions::default()
    })
    .await
    .unwrap();
    let url = server.url("postgres");
    (server, url)
}

async fn connect(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn updates_resume_for_connected_clients_after_postgres_restarts() {
    let (mut server, url) = dedicated_postgres().await;
    let pool = connect(&url).await;
    migrate(&pool).await;
    insert_vote(&pool, "v1", "a").await;
    let app = TestApp::spawn(&url).await;
    let mut clients = vec![app.connect().await, app.connect().await];
    for client in &mut clients {
        assert_eq!(client.next_tally().await, tally(1, 0));
    }

    server.stop();
    pool.close().await;
    testkit::eventually("readiness to report Postgres down", DEADLINE, || async {
        (app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    // Meanwhile the page keeps showing the last tally.
    assert!(app.page().await.contains("1 vote"));

    server.start_again().await.unwrap();
    let pool = connect(&url).await;
    insert_vote(&pool, "v2", "b").await;
    for client in &mut clients {
        client.wait_for(tally(1, 1)).await;
    }
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_postgres_down_from_the_start_the_page_says_it_is_waiting() {
    let (mut server, url) = dedicated_postgres().await;
    server.stop();
    let app = TestApp::spawn_with(result::Settings {
        poll_interval_ms: 100,
        ..settings(&url)
    })
    .await;
    // No tally has ever been read: no made-up "No votes yet".
    let page = app.page().await;
    assert!(page.contains(result::page::WAITING_LABEL), "{page}");
    assert!(!page.contains("No votes yet"), "{page}");

    server.start_again().await.unwrap();
    app.wait_for_tally(tally(0, 0)).await;
    let page = app.page().await;
    assert!(page.contains("No votes yet"), "{page}");
    assert!(!page.contains(result::page::WAITING_LABEL), "{page}");
}

#[tokio::test]
async fn notifications_resume_after_postgres_crashes_and_restarts() {
    let (mut server, url) = dedicated_postgres().await;
    let pool = connect(&url).await;
    migrate(&pool).await;
    // No polling to fall back on: only a re-established LISTEN delivers.
    let app = TestApp::spawn_with(result::Settings {
        poll_interval_ms: 3_600_000,
        ..settings(&url)
    })
    .await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));
    insert_vote(&pool, "v1", "a").await;
    client.wait_for(tally(1, 0)).await;

    server.kill();
    pool.close().await;
    server.start_again().await.unwrap();
    let pool = connect(&url).await;
    // The listener may still be reconnecting; each vote is a new
    // notification, and the first read after reconnecting catches up.
    insert_vote(&pool, "v2", "a").await;
    client.wait_for(tally(2, 0)).await;
    insert_vote(&pool, "v3", "b").await;
    client.wait_for(tally(2, 1)).await;
}

#[tokio::test]
async fn the_healthcheck_subcommand_reports_readiness() {
    let (mut server, url) = dedicated_postgres().await;
    let app = TestApp::spawn(&url).await;
    let check = || async {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_result"))
            .arg("healthcheck")
            .env(
                "ADMIN_PORT",
                app.served.admin_addr.unwrap().port().to_string(),
            )
            .output()
            .await
            .unwrap()
    };
    assert!(check().await.status.success());
    server.stop();
    let out = check().await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("healthcheck failed"));
}
