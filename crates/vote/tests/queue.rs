//! The enqueue script as vote uses it for replicated ballots: a group of
//! ballots is queued in one step, in order, each with its own `seq`, or
//! none of them is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use contract::queue::{QUEUE_KEY, SEQ_KEY, enqueue_group, is_bad_counter};
use contract::{Ballot, SeqWindow, Vote, VoterId};

fn ballot(voter: &str, vote: Vote) -> Ballot {
    Ballot::new(VoterId::parse(voter).unwrap(), vote)
}

#[tokio::test]
async fn a_group_is_queued_in_order_with_consecutive_seqs() {
    let redis = testkit::redis().await;
    let group = [
        ballot("00000000000000a1", Vote::A),
        ballot("00000000000000a2", Vote::B),
        ballot("00000000000000a1", Vote::B),
    ];
    let length = enqueue_group(&mut redis.conn().await, &group)
        .await
        .unwrap();
    assert_eq!(length, 3);
    let queued: Vec<Ballot> = redis
        .list(QUEUE_KEY)
        .await
        .iter()
        .map(|json| Ballot::from_json(json.as_bytes(), SeqWindow::now()).unwrap())
        .collect();
    let first = queued[0].seq.unwrap();
    assert_eq!(
        queued,
        group
            .iter()
            .zip(first..)
            .map(|(b, seq)| Ballot {
                seq: Some(seq),
                ..b.clone()
            })
            .collect::<Vec<_>>(),
        "in order, seqs one apart"
    );
    let counter: String = redis::cmd("GET")
        .arg(SEQ_KEY)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(
        counter,
        (first + 2).to_string(),
        "the counter holds the last"
    );
}

#[tokio::test]
async fn a_group_that_cannot_be_stamped_queues_nothing() {
    let redis = testkit::redis().await;
    let _: () = redis::cmd("SET")
        .arg(SEQ_KEY)
        .arg("not a number")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let group = [
        ballot("00000000000000b1", Vote::A),
        ballot("00000000000000b2", Vote::A),
    ];
    let refused = enqueue_group(&mut redis.conn().await, &group)
        .await
        .unwrap_err();
    assert!(is_bad_counter(&refused), "{refused}");
    assert!(redis.list(QUEUE_KEY).await.is_empty());
}
