//! Several workers on one queue, and the admin endpoints of a running one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{DEADLINE, Env, http_get, workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_store_every_voters_last_ballot() {
    let env = Env::new().await;
    let (ballots, last) = workload(2_000, 20_000, 7);
    let mut settings = [env.settings("w1"), env.settings("w2")];
    for s in &mut settings {
        // Small batches: many concurrent batches holding the same voters.
        s.batch_size = 250;
    }
    let [s1, s2] = settings;
    let mut w1 = env.spawn(s1).await;
    let mut w2 = env.spawn(s2).await;

    // Pushed while both run, in slices, so they also wake from blocking.
    for slice in ballots.chunks(500) {
        env.push(slice).await;
    }
    env.wait_until_drained(&["w1", "w2"], last.len()).await;
    w1.stop().await;
    w2.stop().await;

    env.assert_rows(&last).await;
}

#[tokio::test]
async fn the_admin_listener_answers_and_the_metrics_count_what_was_stored() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let env = Env::new().await;
    let mut running = env.spawn(env.settings("w1")).await;
    env.push(&[support::ballot("m1", "a", Some(1)), "poison".to_owned()])
        .await;
    env.wait_until_drained(&["w1"], 1).await;

    assert_eq!(http_get(running.addr, "/healthz").await.0, 200);
    let ready = testkit::eventually("/readyz to answer 200", DEADLINE, || async {
        let (status, _) = http_get(running.addr, "/readyz").await;
        (status == 200).then_some(())
    });
    ready.await;
    assert_eq!(http_get(running.addr, "/metrics").await.0, 200);
    running.stop().await;

    // One good ballot and one poison payload, in however many batches.
    assert_eq!(recorded.value("ballots_stored_total", &[]), 1.0);
    assert_eq!(recorded.value("ballots_dead_lettered_total", &[]), 1.0);
    assert_eq!(recorded.value("batch_size_sum", &[]), 2.0);
    let batches = recorded.value("batch_size_count", &[]);
    assert!(batches >= 1.0, "{batches} batches");
    assert_eq!(recorded.value("commit_seconds_count", &[]), batches);
    assert_eq!(recorded.value("queue_depth", &[]), 0.0);
}
