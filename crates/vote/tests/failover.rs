//! The vote service against replicated Redis (a primary, replicas and
//! three Sentinels): with `REDIS_MIN_REPLICAS_ACK`, a vote is answered 200
//! only once a replica holds its ballot, and after the primary's SIGKILL
//! votes are answered again by themselves, with no acknowledged ballot
//! lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contract::Ballot;
use contract::queue::QUEUE_KEY;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use servicekit::settings::{BallotChoices, RedisArgs};
use testkit::{RedisHa, RedisHaOptions};
use tokio::time::Instant;

/// Far above the few seconds a failover takes.
const DEADLINE: Duration = Duration::from_secs(30);

async fn spawn_vote(ha: &RedisHa, min_replicas_ack: u32) -> testkit::Served<anyhow::Error> {
    let redis = RedisArgs {
        redis_url: "redis://unused/0".into(),
        redis_sentinels: Some(ha.sentinels_env()),
        redis_sentinel_master: Some(ha.master_name().to_owned()),
    };
    let choices = BallotChoices {
        option_a: "Cats".into(),
        option_b: "Dogs".into(),
    };
    let state = vote::AppState::new(&redis.handle().unwrap(), &choices, "test-host".into())
        .unwrap()
        .with_min_replicas_ack(min_replicas_ack);
    testkit::Served::start_with_admin(|public, admin, shutdown| {
        servicekit::launch::serve(state, Some(public), admin, shutdown)
    })
    .await
}

/// Posts a vote for `a` as a new voter: the status, the voter id the
/// service gave it, and the page's text.
async fn vote_as_new_voter(
    http: &reqwest::Client,
    served: &testkit::Served<anyhow::Error>,
) -> (StatusCode, String, String) {
    let res = http
        .post(served.url("/"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("vote=a")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let voter = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok()?.strip_prefix("voter_id="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .next()
        .expect("a voter_id cookie");
    (status, voter, res.text().await.unwrap())
}

/// The voter ids of the ballots queued on the node at `url`.
async fn queued_voters(url: &str) -> HashSet<String> {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(QUEUE_KEY)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .iter()
        .map(|e| {
            Ballot::from_json(
                e.as_bytes(),
                contract::SeqWindow::at(std::time::SystemTime::now()),
            )
            .unwrap()
            .voter_id
            .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_vote_is_answered_only_once_a_replica_holds_its_ballot_or_said_to_be_unconfirmed() {
    let ha = RedisHa::start(RedisHaOptions::default()).await.unwrap();
    let http = reqwest::Client::new();

    // One replica asked: the answer comes after a replica has the ballot.
    let confirmed = spawn_vote(&ha, 1).await;
    let (status, voter, _) = vote_as_new_voter(&http, &confirmed).await;
    assert_eq!(status, StatusCode::OK);
    let primary = ha.primary_node().await.unwrap();
    let mut holders = 0;
    for node in (0..ha.node_count()).filter(|&n| n != primary) {
        if queued_voters(&ha.node_url(node, 0)).await.contains(&voter) {
            holders += 1;
        }
    }
    assert!(
        holders >= 1,
        "no replica held the ballot when vote said 200"
    );

    // Three replicas asked of two: the primary has the ballot, the replicas
    // cannot all confirm, and the visitor is told the outcome is unknown.
    let unconfirmable = spawn_vote(&ha, 3).await;
    let (status, voter, page) = vote_as_new_voter(&http, &unconfirmable).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("We could not confirm your vote"), "{page}");
    assert!(page.contains("Voting again is harmless"), "{page}");
    let on_primary = queued_voters(&ha.node_url(primary, 0)).await;
    assert!(
        on_primary.contains(&voter),
        "the unconfirmed ballot is queued"
    );
}

#[tokio::test]
async fn after_the_primary_is_killed_votes_are_accepted_again_and_none_acknowledged_is_lost() {
    // One replica, confirmed by every acknowledged vote: the replica
    // Sentinel promotes has every acknowledged ballot. It refuses writes
    // until the old primary is back as its replica.
    let mut ha = RedisHa::start(RedisHaOptions {
        replicas: 1,
        ..RedisHaOptions::default()
    })
    .await
    .unwrap();
    let served = Arc::new(spawn_vote(&ha, 1).await);
    let http = reqwest::Client::new();

    // Voters vote one after another, each a new voter, until told to stop;
    // every 200 is recorded with the time its request was sent.
    let acknowledged = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = tokio_util::sync::CancellationToken::new();
    let voters = {
        let (served, acknowledged, refused, stop) = (
            served.clone(),
            acknowledged.clone(),
            refused.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let sent = Instant::now();
                let (status, voter, _) = vote_as_new_voter(&http, &served).await;
                if status == StatusCode::OK {
                    acknowledged.lock().unwrap().push((sent, voter));
                } else {
                    *refused.lock().unwrap() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    testkit::eventually("votes to be acknowledged", DEADLINE, || {
        let n = acknowledged.lock().unwrap().len();
        async move { (n >= 20).then_some(()) }
    })
    .await;

    let old = ha.kill_primary().await.unwrap();
    let killed = Instant::now();
    ha.wait_for_new_primary(old, DEADLINE).await.unwrap();
    ha.restart_as_replica(old).await.unwrap();
    // The first vote sent after the kill that was acknowledged.
    let first_after = testkit::eventually("a vote to be acknowledged again", DEADLINE, || {
        let first = acknowledged
            .lock()
            .unwrap()
            .iter()
            .find(|(at, _)| *at > killed)
            .map(|(at, _)| *at);
        async move { first }
    })
    .await;
    // A few more votes on the new primary, then stop.
    let before = acknowledged.lock().unwrap().len();
    testkit::eventually("more votes on the new primary", DEADLINE, || {
        let n = acknowledged.lock().unwrap().len();
        async move { (n >= before + 20).then_some(()) }
    })
    .await;
    stop.cancel();
    voters.await.unwrap();

    let new = ha.primary_node().await.unwrap();
    assert_ne!(new, old);
    let window = first_after - killed;
    // A figure for the log (the failover bench measures it); the outcome
    // checked is that voting resumed and lost nothing.
    println!(
        "votes refused for {window:?} after the kill ({} refused answers)",
        refused.lock().unwrap()
    );
    let queued = queued_voters(&ha.node_url(new, 0)).await;
    let lost: Vec<_> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .map(|(_, voter)| voter.clone())
        .filter(|voter| !queued.contains(voter))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged ballots missing on the new primary: {lost:?}",
        lost.len()
    );
}
