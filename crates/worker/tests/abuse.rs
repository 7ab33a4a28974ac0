//! The worker's abuse catalogue: entries pushed straight onto the Redis
//! list `votes` by a client that is not our vote service, one case each,
//! against a running worker (`worker::serve`) with a real Redis and a real
//! Postgres. Each payload is followed by a good ballot (the canary): the
//! case checks that the payload landed in `votes:dead` with its reason,
//! that Redis sent its clients little while the case ran (an entry over the
//! limit never leaves Redis whole), that no row but the canaries' exists,
//! that the canary was stored (the worker keeps going), that nothing is
//! left queued or in flight, and that nothing panicked or logged an ERROR
//! (see [`testkit::abuse`]).
//! `docs/abuse.md` lists the cases (`catalogue`).
//!
//! The payloads that must be dead-lettered come from `testkit::poison`,
//! their one home, which the parser's own unit test in `contract::ballot`
//! reads too. What absurd `seq`s must not do to `votes:seq` is in
//! `boundary.rs`; the parser's property tests are in `crates/props`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "abuse/cases.rs"]
mod cases;

use std::time::Duration;

use cases::{Fate, PayloadCase, cases};
use contract::queue::QUEUE_KEY;
use support::{Env, ballot};
use testkit::abuse::{Case, Entry, check_catalogue};
use testkit::poison::now_us;
use worker::queue::{DEAD_LETTER_KEY, processing_key};

/// Most bytes Redis may send its clients while one case runs: the
/// worker's claims, acknowledgements and heartbeats, and this suite's own
/// checks. An entry over the ballot limit must never leave Redis whole, so
/// the cases of 1 MiB and more stay far below their own size.
const MAX_SENT_PER_CASE: u64 = 512 * 1024;
/// How long a case waits for its canary to be stored.
const CANARY_DEADLINE: Duration = Duration::from_secs(10);
/// The largest dead letter a payload may leave in Redis, whatever its
/// bytes: its start, escaped, within a budget.
const MAX_DEAD_LETTER_BYTES: usize = worker::dead_letter::DeadLetter::MAX_BYTES;

fn entries() -> Vec<Entry> {
    cases().iter().map(Case::entry).collect()
}

#[test]
fn catalogue() {
    check_catalogue("worker", &entries());
}

/// How many bytes Redis has sent its clients so far (`INFO stats`).
async fn redis_bytes_sent(env: &Env) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats names total_net_output_bytes")
}

/// What one case left behind, checked against what it must. Rows other
/// than the canaries are removed afterwards, so one failing case does not
/// spoil the next.
async fn check(
    env: &Env,
    case: &PayloadCase,
    canaries: usize,
    dead_before: usize,
) -> Result<(), String> {
    let allowed = match case.fate {
        Fate::Stored(voter) => Some(voter),
        Fate::Dead(_) => None,
    };
    let rows = env.rows().await;
    let strangers: Vec<&String> = rows
        .keys()
        .filter(|v| !v.starts_with("canary") && Some(v.as_str()) != allowed)
        .collect();
    let stored = match (strangers.is_empty(), allowed) {
        (_, Some(voter)) if !rows.contains_key(voter) => Err(format!("no row for {voter}")),
        (true, _) => Ok(()),
        (false, _) => Err(format!(
            "rows besides the {canaries} canaries: {strangers:?}"
        )),
    };
    sqlx::query("DELETE FROM votes WHERE id NOT LIKE 'canary%'")
        .execute(&env.pool)
        .await
        .unwrap();
    let left = env.len(QUEUE_KEY).await + env.len(&processing_key("abuse")).await;
    let in_flight = if left == 0 {
        Ok(())
    } else {
        Err(format!("{left} entries left queued or in flight"))
    };
    let raw: Vec<String> = env.list(DEAD_LETTER_KEY).await;
    let new = &raw[dead_before.min(raw.len())..];
    let letters = match (case.fate, new) {
        (Fate::Stored(_), []) => Ok(()),
        (Fate::Stored(_), new) => Err(format!("dead-lettered: {new:.300?}")),
        (Fate::Dead(reason), [one]) => dead_letter_says(case, reason, one),
        (Fate::Dead(_), other) => Err(format!(
            "{} new dead letters, expected 1: {other:.300?}",
            other.len()
        )),
    };
    testkit::abuse::all([stored, in_flight, letters])
}

/// The dead letter `raw` names `reason`, holds the start of the payload at
/// least, and is small.
fn dead_letter_says(case: &PayloadCase, reason: &str, raw: &str) -> Result<(), String> {
    let letter: worker::dead_letter::DeadLetter = serde_json::from_str(raw)
        .map_err(|e| format!("the dead letter is not one: {e}: {raw:.200}"))?;
    let expected = String::from_utf8_lossy(&case.payload);
    let kept = (expected.starts_with(&letter.payload) && !letter.payload.is_empty())
        || (expected.is_empty() && letter.payload.is_empty());
    testkit::abuse::all([
        if letter.reason.contains(reason) {
            Ok(())
        } else {
            Err(format!(
                "the reason {:?} does not say {reason:?}",
                letter.reason
            ))
        },
        if kept {
            Ok(())
        } else {
            Err(format!(
                "the dead letter holds {:.100?}, not the payload",
                letter.payload
            ))
        },
        if raw.len() <= MAX_DEAD_LETTER_BYTES {
            Ok(())
        } else {
            Err(format!(
                "the dead letter takes {} bytes in Redis",
                raw.len()
            ))
        },
    ])
}

#[tokio::test]
async fn every_hostile_queue_entry_is_dead_lettered_and_stores_nothing() {
    testkit::abuse::Watch::install();
    let env = Env::new().await;
    env.migrate().await;
    let running = env.spawn(env.settings("abuse")).await;
    let mut canaries = 0;
    let env = &env;
    testkit::abuse::run("worker", cases(), |case| {
        canaries += 1;
        let canary = format!("canary{canaries:03}");
        let count = canaries;
        async move {
            let dead_before = env.len(DEAD_LETTER_KEY).await as usize;
            let sent_before = redis_bytes_sent(env).await;
            let mut conn = env.redis().await;
            let _: () = redis::cmd("RPUSH")
                .arg(QUEUE_KEY)
                .arg(&case.payload)
                .arg(ballot(&canary, "b", Some(now_us())))
                .query_async(&mut conn)
                .await
                .unwrap();
            // The worker keeps going: the good ballot after the bad entry
            // is stored and the batch acknowledged.
            let started = std::time::Instant::now();
            loop {
                let rows = env.rows().await;
                let left = env.len(QUEUE_KEY).await + env.len(&processing_key("abuse")).await;
                if rows.get(&canary).map(String::as_str) == Some("b") && left == 0 {
                    break;
                }
                if started.elapsed() > CANARY_DEADLINE {
                    return Err(format!(
                        "the canary after it was not stored within {CANARY_DEADLINE:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let sent = redis_bytes_sent(env).await - sent_before;
            let transfer = if sent <= MAX_SENT_PER_CASE {
                Ok(())
            } else {
                Err(format!(
                    "Redis sent {sent} bytes to its clients during the case: \
                     the entry left it whole"
                ))
            };
            // The bad entry went first, so its fate is settled by now.
            testkit::abuse::all([transfer, check(env, &case, count, dead_before).await])
        }
    })
    .await;
    let (status, _) = support::http_get(running.addr, "/readyz").await;
    assert_eq!(status, 200, "the worker is still ready");
}
