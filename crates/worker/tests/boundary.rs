//! The queue is a trust boundary: any client of Redis can write to `votes`
//! and `votes:seq`. What the worker does with payloads and counters that no
//! vote service of ours would write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contract::queue::{QUEUE_KEY, SEQ_KEY};
use contract::{Ballot, Vote, VoterId};
use support::{Env, ballot};
use worker::queue::processing_key;
use worker::{Outcome, Worker};

/// Long enough for a worker to start, store and acknowledge on a busy box.
const WAIT: Duration = Duration::from_secs(30);

/// A day in microseconds.
const DAY_US: i64 = 86_400_000_000;
/// How far ahead of now a `seq` may be, in microseconds.
const AHEAD_US: i64 = contract::SeqWindow::ahead_us();

fn now_us() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

async fn worker(env: &Env, id: &str) -> Worker {
    env.migrate().await;
    Worker::new(&env.settings(id)).unwrap()
}

fn stored(outcome: Outcome) -> worker::BatchReport {
    match outcome {
        Outcome::Stored(report) => report,
        Outcome::Idle => panic!("expected a stored batch, got Idle"),
    }
}

fn expect(rows: &[(&str, &str)]) -> HashMap<String, String> {
    rows.iter()
        .map(|(v, c)| ((*v).to_owned(), (*c).to_owned()))
        .collect()
}

/// Redis's clock in microseconds: the clock the enqueue script stamps
/// `seq` from.
async fn queue_clock_us(env: &Env) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    secs * 1_000_000 + micros
}

/// The report: a ballot whose `seq` is 23 h 59 min ahead of the queue's
/// clock was stored, pinned its voter for the rest of the day (their next
/// vote through the vote service changed nothing), and a restarted worker
/// raised `votes:seq` a day ahead. It must be a dead letter instead.
#[tokio::test]
async fn a_seq_a_day_ahead_of_the_queues_clock_is_dead_lettered_and_pins_nobody() {
    let env = Env::new().await;
    env.migrate().await;
    let ahead = queue_clock_us(&env).await + DAY_US - 60_000_000;
    env.push(&[ballot("pinned", "a", Some(ahead))]).await;
    let mut running = env.spawn(env.settings("w1")).await;
    wait_until_taken(&env, "w1").await;
    running.stop().await;

    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1, "the ballot from the future is a dead letter");
    assert!(
        dead[0].reason.contains("outside the accepted window"),
        "{:?}",
        dead[0].reason
    );
    // A restart raises the counter from the stored rows: none is ahead.
    let mut running = env.spawn(env.settings("w1")).await;
    vote(&env, "pinned", Vote::B).await;
    wait_until_taken(&env, "w1").await;
    running.stop().await;
    env.assert_rows(&expect(&[("pinned", "b")])).await;
    let seq: i64 = counter(&env).await.unwrap().parse().unwrap();
    let window_end = queue_clock_us(&env).await + contract::SeqWindow::ahead_us();
    assert!(
        seq <= window_end,
        "votes:seq moved to {seq}, past the window's end {window_end}"
    );
}

#[tokio::test]
async fn a_seq_up_to_the_window_ahead_is_accepted() {
    let env = Env::new().await;
    let mut w = worker(&env, "w1").await;
    // A worker whose clock is behind the vote service's Redis still
    // accepts its ballots.
    env.push(&[ballot("ahead", "b", Some(now_us() + AHEAD_US - 10_000_000))])
        .await;
    let report = stored(w.step().await.unwrap());
    assert_eq!(report.dead_lettered, 0);
    env.assert_rows(&expect(&[("ahead", "b")])).await;
}

/// Waits until the queue and the worker's processing list are empty.
async fn wait_until_taken(env: &Env, id: &str) {
    testkit::eventually("the worker to take every queued ballot", WAIT, || async {
        (env.len(QUEUE_KEY).await + env.len(&processing_key(id)).await == 0).then_some(())
    })
    .await;
}

async fn counter(env: &Env) -> Option<String> {
    redis::cmd("GET")
        .arg(SEQ_KEY)
        .query_async(&mut env.redis().await)
        .await
        .unwrap()
}

/// Queues a ballot the way the vote service does: stamped by the enqueue
/// script from `votes:seq` and Redis's clock.
async fn vote(env: &Env, voter: &str, vote: Vote) {
    let ballot = Ballot::new(VoterId::parse(voter).unwrap(), vote);
    contract::queue::enqueue(&mut env.redis().await, &ballot)
        .await
        .unwrap();
}

/// The scenario: an absurd `seq` pushed onto the queue, the worker
/// restarted (which raises `votes:seq` to the highest stored `seq`), then
/// a voter votes and changes their mind.
#[tokio::test]
async fn an_absurd_seq_on_the_queue_cannot_stop_later_votes_from_counting() {
    for absurd in [i64::MAX, 1 << 60] {
        let env = Env::new().await;
        env.migrate().await;
        env.push(&[ballot("p15", "a", Some(absurd))]).await;
        let mut running = env.spawn(env.settings("w1")).await;
        wait_until_taken(&env, "w1").await;
        running.stop().await;
        let mut running = env.spawn(env.settings("w1")).await;
        // The restarted worker raises `votes:seq` before it consumes: once
        // it has taken this ballot, the counter is what it made it.
        env.push(&[ballot("sentinel", "a", Some(now_us()))]).await;
        wait_until_taken(&env, "w1").await;

        vote(&env, "voter", Vote::A).await;
        vote(&env, "voter", Vote::B).await;
        wait_until_taken(&env, "w1").await;
        running.stop().await;

        let rows = env.rows().await;
        assert_eq!(
            rows.get("voter").map(String::as_str),
            Some("b"),
            "with a seq of {absurd} pushed first, the voter's last ballot must be stored; \
             rows: {rows:?}, dead letters: {:?}",
            env.dead_letters().await
        );
        let seq: i64 = counter(&env).await.unwrap().parse().unwrap();
        assert!(
            seq <= now_us() + AHEAD_US,
            "votes:seq moved to {seq}, outside the window"
        );
    }
}

#[tokio::test]
async fn the_seq_floor_comes_only_from_accepted_seqs_and_rows_stored_with_absurd_ones_are_freed() {
    let env = Env::new().await;
    env.migrate().await;
    let highest_sane = now_us();
    // Rows stored by a worker that did not check seq.
    for (voter, seq) in [
        ("p15", i64::MAX),
        ("p60", 1 << 60),
        ("neg", -5),
        ("sane", highest_sane),
    ] {
        sqlx::query("INSERT INTO votes (id, vote, seq) VALUES ($1, 'a', $2)")
            .bind(voter)
            .bind(seq)
            .execute(&env.pool)
            .await
            .unwrap();
    }

    let mut running = env.spawn(env.settings("w1")).await;
    let raised = testkit::eventually("the worker to raise votes:seq", WAIT, || async {
        counter(&env).await
    })
    .await;
    assert_eq!(
        raised,
        highest_sane.to_string(),
        "votes:seq is raised to the highest accepted seq stored, not to an absurd one"
    );
    let freed: HashMap<String, Option<i64>> =
        sqlx::query_as("SELECT id, seq FROM votes ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        freed,
        HashMap::from([
            ("p15".to_owned(), None),
            ("p60".to_owned(), None),
            ("neg".to_owned(), None),
            ("sane".to_owned(), Some(highest_sane)),
        ]),
        "rows stored with a seq outside the window lose it, so a later ballot can replace them"
    );

    // Their voters can change their minds again.
    vote(&env, "p15", Vote::B).await;
    vote(&env, "p60", Vote::B).await;
    wait_until_taken(&env, "w1").await;
    running.stop().await;
    env.assert_rows(&expect(&[
        ("p15", "b"),
        ("p60", "b"),
        ("neg", "a"),
        ("sane", "a"),
    ]))
    .await;
}

#[tokio::test]
async fn the_worker_raises_a_sane_counter_and_leaves_a_corrupt_one_alone() {
    use worker::queue::{Consumer, SeqCounter};
    let env = Env::new().await;
    let queue = Consumer::new(
        &servicekit::connect::Redis::at(&env.redis_url).unwrap(),
        "w1",
    )
    .unwrap();
    let window = contract::SeqWindow::now();
    let floor = now_us();
    let set = |value: String| {
        let env = &env;
        async move {
            let _: () = redis::cmd("SET")
                .arg(SEQ_KEY)
                .arg(value)
                .query_async(&mut env.redis().await)
                .await
                .unwrap();
        }
    };
    for (held, found, after) in [
        (None, SeqCounter::Raised, Some(floor.to_string())),
        (
            Some("5".to_owned()),
            SeqCounter::Raised,
            Some(floor.to_string()),
        ),
        (
            Some("-5".to_owned()),
            SeqCounter::Raised,
            Some(floor.to_string()),
        ),
        (
            Some((floor + 1).to_string()),
            SeqCounter::Unchanged,
            Some((floor + 1).to_string()),
        ),
        (
            Some("not a number".to_owned()),
            SeqCounter::Corrupt,
            Some("not a number".to_owned()),
        ),
        (
            Some("1e5".to_owned()),
            SeqCounter::Corrupt,
            Some("1e5".to_owned()),
        ),
        (
            Some((1_i64 << 60).to_string()),
            SeqCounter::Corrupt,
            Some((1_i64 << 60).to_string()),
        ),
    ] {
        let _: () = redis::cmd("DEL")
            .arg(SEQ_KEY)
            .query_async(&mut env.redis().await)
            .await
            .unwrap();
        if let Some(held) = &held {
            set(held.clone()).await;
        }
        assert_eq!(
            queue.raise_seq(floor, window).await.unwrap(),
            found,
            "votes:seq held {held:?}"
        );
        assert_eq!(counter(&env).await, after, "votes:seq held {held:?}");
    }
    // A floor outside the window never moves the counter.
    let _: () = redis::cmd("DEL")
        .arg(SEQ_KEY)
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    assert_eq!(
        queue.raise_seq(1 << 60, window).await.unwrap(),
        SeqCounter::Unchanged
    );
    assert_eq!(counter(&env).await, None);
}
