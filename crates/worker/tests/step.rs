//! One step at a time: what a single batch does to Redis and Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, ballot};
use worker::queue::{WORKERS_KEY, heartbeat_key, processing_key};
use worker::{Outcome, Worker};

async fn worker(env: &Env, id: &str) -> Worker {
    env.migrate().await;
    Worker::new(&env.settings(id)).unwrap()
}

fn expect(rows: &[(&str, &str)]) -> HashMap<String, String> {
    rows.iter()
        .map(|(v, c)| ((*v).to_owned(), (*c).to_owned()))
        .collect()
}

fn stored(outcome: Outcome) -> worker::BatchReport {
    match outcome {
        Outcome::Stored(report) => report,
        Outcome::Idle => panic!("expected a stored batch, got Idle"),
    }
}

#[tokio::test]
async fn one_ballot_goes_from_the_queue_to_the_table() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    env.push(&[ballot("0123456789abcdef", "a", Some(1))]).await;

    let report = stored(w.step().await.unwrap());

    assert_eq!((report.ballots, report.voters, report.changed), (1, 1, 1));
    env.assert_rows(&expect(&[("0123456789abcdef", "a")])).await;
    assert_eq!(env.len(QUEUE_KEY).await, 0);
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}

/// The id of the client blocked in `BLMOVE` on the test's own Redis
/// database, if there is one.
async fn blocked_in_blmove(env: &Env) -> Option<String> {
    let db = env
        .redis_url
        .rsplit(['/', '='])
        .next()
        .expect("the test Redis URL names its database");
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut env.redis().await)
        .await
        .ok()?;
    clients.lines().find_map(|client| {
        let fields: Vec<&str> = client.split(' ').collect();
        let has = |field: &str| fields.contains(&field);
        // `b`: blocked (`U` joins it on a Unix socket).
        let blocked = fields
            .iter()
            .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('b')));
        (has(&format!("db={db}")) && has("cmd=blmove") && blocked)
            .then(|| fields.iter().find_map(|f| f.strip_prefix("id=")))
            .flatten()
            .map(str::to_owned)
    })
}

#[tokio::test]
async fn an_empty_queue_is_waited_on_then_the_step_is_idle() {
    let env = Env::new().await;
    let mut settings = env.settings("w1");
    // Long enough to see the step waiting; a wait that ends well before
    // its block time with nothing moved counts as refused by Redis, so
    // the wait is left to run out.
    settings.block_seconds = 3.0;
    env.migrate().await;
    let mut w = Worker::new(&settings).unwrap();

    let waiting = async {
        // The step waits in Redis for a ballot instead of returning at once…
        testkit::eventually("the step to wait on the queue", DEADLINE, || {
            blocked_in_blmove(&env)
        })
        .await;
    };
    let (outcome, ()) = tokio::join!(w.step(), waiting);
    // … and, nothing having come, is idle.
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

#[tokio::test]
async fn a_ballot_pushed_while_the_worker_blocks_is_stored_by_that_step() {
    let env = Env::new().await;
    let mut settings = env.settings("w1");
    settings.block_seconds = 30.0;
    env.migrate().await;
    let mut w = Worker::new(&settings).unwrap();
    let push = async {
        // Wait until the worker is blocked on the queue, then push.
        testkit::eventually("the worker to block", DEADLINE, || blocked_in_blmove(&env)).await;
        env.push(&[ballot("v", "b", None)]).await;
    };
    let (outcome, ()) = tokio::join!(w.step(), push);
    assert_eq!(stored(outcome.unwrap()).ballots, 1);
    env.assert_rows(&expect(&[("v", "b")])).await;
}

#[tokio::test]
async fn a_voter_changing_a_b_a_ends_at_a_in_one_batch_or_many() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    // One batch.
    env.push(&[
        ballot("one", "a", Some(1)),
        ballot("one", "b", Some(2)),
        ballot("one", "a", Some(3)),
    ])
    .await;
    let report = stored(w.step().await.unwrap());
    assert_eq!((report.ballots, report.voters), (3, 1));
    // Three batches.
    for (vote, seq) in [("a", 4), ("b", 5), ("a", 6)] {
        env.push(&[ballot("many", vote, Some(seq))]).await;
        stored(w.step().await.unwrap());
    }
    env.assert_rows(&expect(&[("one", "a"), ("many", "a")]))
        .await;
}

#[tokio::test]
async fn a_replayed_ballot_changes_nothing() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    env.push(&[ballot("v", "a", Some(1)), ballot("v", "b", Some(2))])
        .await;
    stored(w.step().await.unwrap());
    let before: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, vote, seq FROM votes")
            .fetch_all(&env.pool)
            .await
            .unwrap();

    // Both replayed, as after a crash between commit and acknowledgement.
    env.push(&[ballot("v", "a", Some(1)), ballot("v", "b", Some(2))])
        .await;
    let report = stored(w.step().await.unwrap());

    assert_eq!(report.changed, 0);
    let after: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, vote, seq FROM votes")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(after, before);
    env.assert_rows(&expect(&[("v", "b")])).await;
}

#[tokio::test]
async fn a_stale_ballot_never_overwrites_a_newer_one() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    env.push(&[ballot("v", "b", Some(20))]).await;
    stored(w.step().await.unwrap());
    env.push(&[ballot("v", "a", Some(10))]).await;
    let report = stored(w.step().await.unwrap());
    assert_eq!(report.changed, 0);
    env.assert_rows(&expect(&[("v", "b")])).await;
}

#[tokio::test]
async fn ballots_without_seq_follow_queue_order() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    // The original vote service's format: no seq, Python spacing.
    env.push(&[ballot("v", "a", None), ballot("v", "b", None)])
        .await;
    stored(w.step().await.unwrap());
    env.push(&[ballot("v", "a", None)]).await;
    stored(w.step().await.unwrap());
    env.assert_rows(&expect(&[("v", "a")])).await;
}

#[tokio::test]
async fn poison_ballots_are_dead_lettered_with_reasons_and_good_ones_around_them_stored() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    // A few of the poison payloads (all of them are in the abuse
    // catalogue), in one batch with good ballots around them.
    let poison: Vec<(String, &str)> = testkit::poison::payloads(testkit::poison::now_us())
        .into_iter()
        .filter(|p| {
            [
                "plain_text",
                "voter_id_missing",
                "vote_missing",
                "vote_c",
                "entry_of_4097_bytes",
            ]
            .contains(&p.name)
        })
        .map(|p| (String::from_utf8(p.payload).unwrap(), p.reason))
        .collect();
    assert_eq!(poison.len(), 5);
    let mut queue = vec![ballot("good1", "a", Some(1))];
    for (payload, _) in &poison {
        queue.push(payload.clone());
    }
    queue.push(ballot("good2", "b", Some(2)));
    env.push(&queue).await;

    let report = stored(w.step().await.unwrap());

    assert_eq!((report.ballots, report.dead_lettered), (7, 5));
    env.assert_rows(&expect(&[("good1", "a"), ("good2", "b")]))
        .await;
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), poison.len());
    for (letter, (payload, why)) in dead.iter().zip(&poison) {
        // An oversized payload is kept only in part: its start.
        if payload.len() <= contract::ballot::MAX_BALLOT_BYTES {
            assert_eq!(&letter.payload, payload);
        } else {
            assert!(letter.payload.len() > 3000 && payload.starts_with(&letter.payload));
        }
        assert!(
            letter.reason.contains(why),
            "{:?} should mention {why:?}",
            letter.reason
        );
        assert_eq!(letter.worker, "w1");
    }
    assert_eq!(env.len(QUEUE_KEY).await, 0);
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}

#[tokio::test]
async fn a_batch_left_in_the_processing_list_is_stored_first() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    // What a worker killed mid-batch leaves: its batch in its processing
    // list, newer ballots still queued.
    let _: () = redis::cmd("RPUSH")
        .arg(processing_key("w1"))
        .arg(ballot("v", "a", None))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    env.push(&[ballot("v", "b", None)]).await;

    let report = stored(w.step().await.unwrap());

    // Left-over first, then the newer ballot: queue order is kept.
    assert_eq!(report.ballots, 2);
    env.assert_rows(&expect(&[("v", "b")])).await;
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}

#[tokio::test]
async fn batches_are_capped_at_the_batch_size() {
    let env = Env::new().await;
    let mut settings = env.settings("w1");
    settings.batch_size = 10;
    env.migrate().await;
    let mut w = Worker::new(&settings).unwrap();
    let ballots: Vec<String> = (0..25)
        .map(|i| ballot(&format!("v{i}"), "a", Some(i + 1)))
        .collect();
    env.push(&ballots).await;
    let sizes: Vec<(usize, u64)> = [
        stored(w.step().await.unwrap()),
        stored(w.step().await.unwrap()),
        stored(w.step().await.unwrap()),
    ]
    .iter()
    .map(|r| (r.ballots, r.queue_depth))
    .collect();
    assert_eq!(sizes, [(10, 15), (10, 5), (5, 0)]);
    assert_eq!(env.row_count().await, 25);
}

#[tokio::test]
async fn a_dead_workers_batch_goes_back_to_the_head_of_the_queue_in_order() {
    let env = Env::new().await;
    let mut conn = env.redis().await;
    // "ghost" registered, holds a batch, and its heartbeat has lapsed;
    // "alive" holds a batch too but still beats.
    let _: () = redis::pipe()
        .cmd("SADD")
        .arg(WORKERS_KEY)
        .arg("ghost")
        .arg("alive")
        .ignore()
        .cmd("RPUSH")
        .arg(processing_key("ghost"))
        .arg(&["g1", "g2", "g3"])
        .ignore()
        .cmd("RPUSH")
        .arg(processing_key("alive"))
        .arg("a1")
        .ignore()
        .cmd("SET")
        .arg(heartbeat_key("alive"))
        .arg("alive")
        .arg("EX")
        .arg(60)
        .ignore()
        .cmd("RPUSH")
        .arg(QUEUE_KEY)
        .arg("q1")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let queue = worker::queue::Consumer::new(
        &servicekit::connect::Redis::at(&env.redis_url).unwrap(),
        "me",
    )
    .unwrap();

    assert_eq!(queue.recover_dead_workers().await.unwrap(), 3);

    assert_eq!(env.list(QUEUE_KEY).await, ["g1", "g2", "g3", "q1"]);
    assert_eq!(env.len(&processing_key("ghost")).await, 0);
    assert_eq!(env.list(&processing_key("alive")).await, ["a1"]);
    let workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(WORKERS_KEY)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(workers, ["alive"]);
}

#[tokio::test]
async fn an_acknowledgement_leaves_ballots_appended_after_the_claim() {
    let env = Env::new().await;
    env.migrate().await;
    let queue = worker::queue::Consumer::new(
        &servicekit::connect::Redis::at(&env.redis_url).unwrap(),
        "w1",
    )
    .unwrap();
    env.push(&["x1".to_owned(), "x2".to_owned()]).await;
    let claimed = queue.claim(10).await.unwrap();
    assert_eq!(claimed.payloads, [b"x1".to_vec(), b"x2".to_vec()]);
    // A blocking move abandoned by a broken connection may land late.
    let _: () = redis::cmd("RPUSH")
        .arg(processing_key("w1"))
        .arg("late")
        .query_async(&mut env.redis().await)
        .await
        .unwrap();

    assert!(
        queue
            .acknowledge(&claimed.payloads, &[])
            .await
            .unwrap()
            .removed
    );

    assert_eq!(env.list(&processing_key("w1")).await, ["late"]);
}

#[tokio::test]
async fn a_batch_claimed_ahead_waits_in_the_processing_list_in_queue_order() {
    let env = Env::new().await;
    let mut settings = env.settings("w1");
    settings.batch_size = 2;
    env.migrate().await;
    let first = [ballot("x1", "a", None), ballot("x2", "a", None)];
    let second = [ballot("v", "a", None), ballot("v", "b", None)];
    env.push(&first).await;
    env.push(&second).await;
    env.push(&[ballot("v", "a", None)]).await;

    let mut w = Worker::new(&settings).unwrap();
    assert_eq!(stored(w.step().await.unwrap()).ballots, 2);
    // The first batch is gone; the second was claimed during its commit.
    assert_eq!(env.list(&processing_key("w1")).await, second);
    drop(w); // a crash: the claimed-ahead batch lives on in Redis only

    let mut w = Worker::new(&settings).unwrap();
    assert_eq!(stored(w.step().await.unwrap()).ballots, 2);
    assert_eq!(stored(w.step().await.unwrap()).ballots, 1);
    assert_eq!(w.finish().await.unwrap(), None);
    env.assert_rows(&expect(&[("x1", "a"), ("x2", "a"), ("v", "a")]))
        .await;
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}

#[tokio::test]
async fn nothing_is_claimed_ahead_of_a_left_over_batch() {
    let env = Env::new().await;
    let mut settings = env.settings("w1");
    settings.batch_size = 2;
    env.migrate().await;
    // Left by a crash of a worker with a larger BATCH_SIZE.
    let left_over = [
        ballot("v", "a", None),
        ballot("w", "a", None),
        ballot("v", "b", None),
    ];
    let _: () = redis::cmd("RPUSH")
        .arg(processing_key("w1"))
        .arg(&left_over)
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    env.push(&[ballot("v", "a", None)]).await;

    let mut w = Worker::new(&settings).unwrap();
    assert_eq!(stored(w.step().await.unwrap()).ballots, 2);

    // The rest of the left-over batch comes next, not the queued ballot.
    assert_eq!(env.list(&processing_key("w1")).await, left_over[2..]);
    assert_eq!(env.len(QUEUE_KEY).await, 1);
    assert_eq!(stored(w.step().await.unwrap()).ballots, 2);
    env.assert_rows(&expect(&[("v", "a"), ("w", "a")])).await;
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}
