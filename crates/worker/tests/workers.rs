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

#[tokio::test]
async fn every_stored_ballot_with_a_seq_records_how_long_it_waited() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let env = Env::new().await;
    // Stamped like the vote service does: the queue's clock in µs, here a
    // second ago, so each ballot waited at least a second.
    let queued_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        - 1_000_000;
    env.push(&[
        support::ballot("d1", "a", Some(queued_us)),
        support::ballot("d2", "b", Some(queued_us + 1)),
        support::ballot("d3", "a", Some(queued_us + 2)),
        // No seq (the original vote app's): no time to measure from.
        support::ballot("d4", "b", None),
        "poison".to_owned(),
    ])
    .await;
    let mut running = env.spawn(env.settings("w1")).await;
    env.wait_until_drained(&["w1"], 4).await;
    running.stop().await;

    assert_eq!(recorded.value("ballots_stored_total", &[]), 4.0);
    assert_eq!(recorded.value("ballot_delivery_seconds_count", &[]), 3.0);
    let waited = recorded.value("ballot_delivery_seconds_sum", &[]);
    assert!(
        (3.0..3.0 + 3.0 * DEADLINE.as_secs_f64()).contains(&waited),
        "three ballots queued a second before the worker started waited {waited} s in all"
    );
}

#[tokio::test]
async fn the_worker_counters_exist_at_zero_before_the_first_batch() {
    // Prometheus sees no increase in a counter whose first sample is
    // already N: a backlog drained before the first scrape would vanish.
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let env = Env::new().await;
    let mut running = env.spawn(env.settings("w1")).await;
    let ready = testkit::eventually("/readyz to answer 200", DEADLINE, || async {
        let (status, _) = http_get(running.addr, "/readyz").await;
        (status == 200).then_some(())
    });
    ready.await;
    let text = recorded.render();
    running.stop().await;
    for name in [
        "ballots_stored_total",
        "ballots_dead_lettered_total",
        "redis_errors_total",
        "postgres_errors_total",
    ] {
        let series = testkit::metrics::series(&text, name);
        assert_eq!(series.len(), 1, "{name} at 0:\n{text}");
        assert_eq!(series[0].value, 0.0, "{name}:\n{text}");
    }
}
