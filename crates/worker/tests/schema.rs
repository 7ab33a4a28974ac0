//! The schema the worker creates: on an empty database, over a table the
//! original worker made, and the trigger-kept tally under every kind of
//! write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Env, ballot};

/// The `votes` table as the original worker creates it (the same shape as
/// our first migration), with none of our additions.
const ORIGINAL_TABLE: &str = include_str!("../../contract/migrations/0001_votes.sql");

async fn columns(env: &Env) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_name = 'votes' ORDER BY ordinal_position",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_worker_creates_the_schema_on_an_empty_database() {
    let env = Env::new().await;
    let mut running = env.spawn(env.settings("w1")).await;
    env.push(&[ballot("v1", "a", Some(1))]).await;
    env.wait_until_drained(&["w1"], 1).await;
    running.stop().await;

    let cols = columns(&env).await;
    let expect = |name: &str, ty: &str, nullable: &str| (name.into(), ty.into(), nullable.into());
    assert_eq!(
        cols,
        vec![
            expect("id", "character varying", "NO"),
            expect("vote", "character varying", "NO"),
            expect("seq", "bigint", "YES"),
        ]
    );
    let unique: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'votes' AND indexdef LIKE 'CREATE UNIQUE INDEX%(id)')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(unique, "votes.id must be UNIQUE");
    env.assert_tally_consistent().await;
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let env = Env::new().await;
    env.migrate().await;
    sqlx::query("INSERT INTO votes (id, vote) VALUES ('x', 'a')")
        .execute(&env.pool)
        .await
        .unwrap();
    env.migrate().await;
    assert_eq!(env.row_count().await, 1);
    env.assert_tally_consistent().await;
}

#[tokio::test]
async fn a_table_the_original_worker_made_is_upgraded_and_its_rows_counted() {
    let env = Env::new().await;
    sqlx::query(ORIGINAL_TABLE)
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO votes (id, vote) VALUES ('old1', 'a'), ('old2', 'b'), ('old3', 'a')")
        .execute(&env.pool)
        .await
        .unwrap();

    env.migrate().await;

    let tally = result::tally::read_tally(&env.pool).await.unwrap();
    assert_eq!((tally.a, tally.b), (2, 1));
    // Our ballots replace the original's rows, which have no seq.
    let mut w = worker::Worker::new(&env.settings("w1")).unwrap();
    env.push(&[ballot("old2", "a", Some(5))]).await;
    w.step().await.unwrap();
    let tally = result::tally::read_tally(&env.pool).await.unwrap();
    assert_eq!((tally.a, tally.b), (3, 0));
    env.assert_tally_consistent().await;
}

#[tokio::test]
async fn plain_inserts_and_updates_from_other_writers_still_work_and_count() {
    let env = Env::new().await;
    env.migrate().await;
    // What the original worker does: a plain insert, then an update on conflict.
    sqlx::query("INSERT INTO votes (id, vote) VALUES ('p1', 'a')")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE votes SET vote = 'b' WHERE id = 'p1'")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO votes (id, vote) VALUES ('p2', 'a'), ('p3', 'a')")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM votes WHERE id = 'p3'")
        .execute(&env.pool)
        .await
        .unwrap();
    let tally = result::tally::read_tally(&env.pool).await.unwrap();
    assert_eq!((tally.a, tally.b), (1, 1));
    env.assert_tally_consistent().await;

    sqlx::query("TRUNCATE votes")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        result::tally::read_tally(&env.pool).await.unwrap().total(),
        0
    );
    env.assert_tally_consistent().await;
}

#[tokio::test]
async fn upserts_that_insert_update_and_skip_in_one_statement_keep_the_tally_exact() {
    let env = Env::new().await;
    env.migrate().await;
    let mut w = worker::Worker::new(&env.settings("w1")).unwrap();
    // Batch 1: new voters.
    env.push(&[
        ballot("u1", "a", Some(10)),
        ballot("u2", "a", Some(11)),
        ballot("u3", "b", Some(12)),
    ])
    .await;
    w.step().await.unwrap();
    // Batch 2 mixes, in one statement: an insert (u4), a changed vote (u1),
    // a seq-only update with the same vote (u2), a stale ballot that must
    // be skipped (u3).
    env.push(&[
        ballot("u4", "b", Some(20)),
        ballot("u1", "b", Some(21)),
        ballot("u2", "a", Some(22)),
        ballot("u3", "a", Some(5)),
    ])
    .await;
    w.step().await.unwrap();

    let tally = result::tally::read_tally(&env.pool).await.unwrap();
    assert_eq!((tally.a, tally.b), (1, 3));
    env.assert_tally_consistent().await;
    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM votes WHERE id = 'u2'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(seq, Some(22), "seq moves with every accepted ballot");
}

/// Far beyond the moment a notification takes to arrive at commit.
const NOTIFIED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test]
async fn every_change_to_votes_is_notified() {
    let env = Env::new().await;
    env.migrate().await;
    let mut listener = sqlx::postgres::PgListener::connect(&env.db_url)
        .await
        .unwrap();
    listener
        .listen(contract::table::CHANGES_CHANNEL)
        .await
        .unwrap();
    let mut notified = async |what: &str| {
        let note = tokio::time::timeout(NOTIFIED_WITHIN, listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification for {what}"))
            .unwrap();
        assert_eq!(note.channel(), contract::table::CHANGES_CHANNEL, "{what}");
    };

    // The worker's insert, then every other kind of change another writer
    // may make, each notified on its own.
    let mut w = worker::Worker::new(&env.settings("w1")).unwrap();
    env.push(&[ballot("n1", "a", Some(1))]).await;
    w.step().await.unwrap();
    notified("the worker's insert").await;
    for change in [
        "INSERT INTO votes (id, vote) VALUES ('n2', 'b')",
        "UPDATE votes SET vote = 'b' WHERE id = 'n1'",
        "DELETE FROM votes WHERE id = 'n2'",
        "TRUNCATE votes",
    ] {
        sqlx::query(change).execute(&env.pool).await.unwrap();
        notified(change).await;
    }
}

#[tokio::test]
async fn a_migration_that_cannot_succeed_stops_the_worker_with_an_error() {
    let env = Env::new().await;
    env.migrate().await;
    // As if a migration had been edited after it was applied.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = 1")
        .execute(&env.pool)
        .await
        .unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let outcome = tokio::time::timeout(
        support::DEADLINE,
        worker::serve(admin, env.settings("w1"), shutdown),
    )
    .await
    .expect("the worker gives up instead of waiting forever");
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(
        error.contains("cannot create or upgrade the schema"),
        "{error}"
    );
    assert!(error.contains("modified"), "{error}");
}
