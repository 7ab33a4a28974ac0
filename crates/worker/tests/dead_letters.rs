//! The dead-letter list `votes:dead` is bounded twice: each letter has a
//! byte bound that holds whatever bytes were queued, and the list keeps
//! only the newest letters, counting the ones it drops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, http_get};
use worker::queue::DEAD_LETTER_KEY;

/// The byte bound of one dead letter as stored in Redis.
const MAX_LETTER_BYTES: usize = worker::dead_letter::DeadLetter::MAX_BYTES;
/// How many dead letters `votes:dead` keeps by default.
const KEPT: usize = worker::dead_letter::DEFAULT_KEPT as usize;

#[tokio::test]
async fn a_dead_letter_stays_within_its_byte_bound_whatever_bytes_were_queued() {
    let env = Env::new().await;
    env.migrate().await;
    let mut worker = worker::Worker::new(&env.settings("w1")).unwrap();
    // The report's inputs: escaping grew the first to 24,149 bytes and
    // the second to 12,405. Then the other characters JSON escapes.
    let entries: Vec<Vec<u8>> = vec![
        vec![0x01; 4000],
        vec![0xff; 1 << 20],
        vec![b'"'; 4000],
        vec![b'\\'; 4000],
        vec![b'\n'; 4096],
        [vec![b'x'; 4095], "é".as_bytes().to_vec()].concat(),
    ];
    let mut conn = env.redis().await;
    for entry in &entries {
        let _: () = redis::cmd("RPUSH")
            .arg(QUEUE_KEY)
            .arg(entry)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    worker.step().await.unwrap();

    let raw = env.list(DEAD_LETTER_KEY).await;
    assert_eq!(raw.len(), entries.len(), "one dead letter per entry");
    for (letter, entry) in raw.iter().zip(&entries) {
        assert!(
            letter.len() <= MAX_LETTER_BYTES,
            "the dead letter of {} bytes of {:?} takes {} bytes: {:.200}",
            entry.len(),
            entry[0],
            letter.len(),
            letter
        );
        // Still a dead letter that names the entry's start.
        let parsed: worker::dead_letter::DeadLetter = serde_json::from_str(letter).unwrap();
        let lossy = String::from_utf8_lossy(entry);
        assert!(!parsed.payload.is_empty() && lossy.starts_with(&parsed.payload));
    }
}

/// `dead_letters_dropped_total` on the worker's `/metrics`.
async fn dropped(admin: std::net::SocketAddr) -> f64 {
    let (_, text) = http_get(admin, "/metrics").await;
    testkit::metrics::series(&text, "dead_letters_dropped_total")
        .first()
        .map_or(0.0, |s| s.value)
}

#[tokio::test]
async fn votes_dead_keeps_the_newest_letters_and_counts_the_ones_it_drops() {
    let env = Env::new().await;
    let mut running = env.spawn(env.settings("w1")).await;
    let before = dropped(running.addr).await;
    let junk: Vec<String> = (1..=KEPT + 5).map(|i| format!("junk{i:05}")).collect();
    env.push(&junk).await;
    env.push(&[support::ballot("after", "a", None)]).await;
    env.wait_until_drained(&["w1"], 1).await;

    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), KEPT, "votes:dead keeps {KEPT} letters");
    assert_eq!(
        letters[0].payload, "junk00006",
        "the oldest five are dropped"
    );
    assert_eq!(letters[KEPT - 1].payload, format!("junk{:05}", KEPT + 5));
    let counted = testkit::eventually("the drops to be counted", DEADLINE, || async {
        let now = dropped(running.addr).await;
        (now - before >= 5.0).then_some(now - before)
    })
    .await;
    assert_eq!(counted, 5.0);
    running.stop().await;
}
