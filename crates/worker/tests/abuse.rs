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
//! Tested elsewhere, not repeated here: arrays and scalars such as
//! `["voter","a"]`, `42`, `null`, and `seq` values 0, −1, 1.5, 2^60,
//! 2^63 − 1, 2^63, two days ahead and 23 h 59 min ahead of Redis's clock (`boundary.rs`, one step at a time,
//! with what they must not do to `votes:seq`); the parser's own unit tests
//! and property tests in `contract::ballot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contract::queue::QUEUE_KEY;
use support::{Env, ballot};
use testkit::abuse::{Case, Entry, Layer, check_catalogue};
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

/// One hostile queue entry and what must become of it.
#[derive(Debug, Clone)]
struct PayloadCase {
    name: &'static str,
    sends: String,
    payload: Vec<u8>,
    fate: Fate,
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Dead-lettered with a reason holding this fragment; nothing stored.
    Dead(&'static str),
    /// A ballot after all (readers ignore fields they do not know, however
    /// odd): stored for this voter, no dead letter.
    Stored(&'static str),
}

impl Case for PayloadCase {
    fn entry(&self) -> Entry {
        Entry {
            name: self.name,
            layer: Layer::QueuePayloads,
            sends: self.sends.clone(),
            expect: match self.fate {
                Fate::Dead(reason) => format!("dead-lettered: \"…{reason}…\"; nothing stored"),
                Fate::Stored(_) => "stored as a ballot: the unknown field is skipped".to_owned(),
            },
            waits_for: None,
        }
    }
}

fn now_us() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// `{"voter_id":"<voter>","vote":"a","seq":<now>}` with `field` replaced or
/// added as raw JSON.
fn with(field: &'static str, raw: &str) -> Vec<u8> {
    let mut fields = vec![
        ("voter_id", "\"x1\"".to_owned()),
        ("vote", "\"a\"".to_owned()),
        ("seq", now_us().to_string()),
    ];
    match fields.iter_mut().find(|(name, _)| *name == field) {
        Some(slot) => slot.1 = raw.to_owned(),
        None => fields.push((field, raw.to_owned())),
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

fn cases() -> Vec<PayloadCase> {
    let c = |name, sends: &str, payload: Vec<u8>, reason| PayloadCase {
        name,
        sends: sends.to_owned(),
        payload,
        fate: Fate::Dead(reason),
    };
    let stored = |name, sends: &str, payload: Vec<u8>, voter| PayloadCase {
        name,
        sends: sends.to_owned(),
        payload,
        fate: Fate::Stored(voter),
    };
    let json = "not valid JSON";
    let object = "a JSON object";
    let nested = format!(
        r#"{{"voter_id":"n1","vote":"a","x":{}1{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let utf16: Vec<u8> =
        r#"{"voter_id":"u1","vote":"a"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        c("empty_entry", "an empty string", b"".to_vec(), json),
        c("whitespace_only", "three spaces", b"   ".to_vec(), json),
        c("plain_text", "`hello`", b"hello".to_vec(), json),
        c("a_nul_byte", "`\\0`", b"\0".to_vec(), json),
        c(
            "bytes_that_are_not_utf8",
            "`\\xff\\xfe\\xfd`",
            b"\xff\xfe\xfd".to_vec(),
            json,
        ),
        c(
            "ballot_after_a_utf8_bom",
            "a ballot behind a byte-order mark",
            [&b"\xef\xbb\xbf"[..], br#"{"voter_id":"b1","vote":"a"}"#].concat(),
            json,
        ),
        c("ballot_in_utf16", "a ballot encoded as UTF-16", utf16, json),
        c(
            "four_thousand_control_bytes",
            "4,000 bytes `\\x01` (each escaped to 6 bytes in JSON)",
            vec![0x01; 4000],
            json,
        ),
        c(
            "one_mib_of_ff_bytes",
            "1 MiB of `\\xff` (each 3 bytes once replaced by U+FFFD)",
            vec![0xff; 1 << 20],
            "over the 4096-byte limit",
        ),
        c(
            "object_cut_short",
            "`{\"voter_id\":\"t1\",\"vote\":\"a\"` (no `}`)",
            br#"{"voter_id":"t1","vote":"a""#.to_vec(),
            json,
        ),
        c(
            "ballot_with_trailing_text",
            "a ballot followed by ` x`",
            br#"{"voter_id":"t2","vote":"a"} x"#.to_vec(),
            "trailing characters",
        ),
        c(
            "two_ballots_in_one_entry",
            "two ballot objects back to back",
            br#"{"voter_id":"t3","vote":"a"}{"voter_id":"t3","vote":"b"}"#.to_vec(),
            "trailing characters",
        ),
        c(
            "array_holding_a_ballot",
            "`[{\"voter_id\":…,\"vote\":\"a\"}]`",
            br#"[{"voter_id":"t4","vote":"a"}]"#.to_vec(),
            object,
        ),
        c("empty_array", "`[]`", b"[]".to_vec(), object),
        c("a_float", "`1.5`", b"1.5".to_vec(), object),
        c(
            "ballot_encoded_twice",
            "a ballot as a JSON string (double-encoded)",
            br#""{\"voter_id\":\"t5\",\"vote\":\"a\"}""#.to_vec(),
            object,
        ),
        c(
            "empty_object",
            "`{}`",
            b"{}".to_vec(),
            "missing field `voter_id`",
        ),
        c(
            "voter_id_a_number",
            "`\"voter_id\":123`",
            with("voter_id", "123"),
            "invalid type: integer",
        ),
        c(
            "voter_id_null",
            "`\"voter_id\":null`",
            with("voter_id", "null"),
            "invalid type: null",
        ),
        c(
            "voter_id_an_array",
            "`\"voter_id\":[\"x\"]`",
            with("voter_id", r#"["x"]"#),
            "invalid type: sequence",
        ),
        c(
            "voter_id_an_object",
            "`\"voter_id\":{\"id\":\"x\"}`",
            with("voter_id", r#"{"id":"x"}"#),
            "invalid type: map",
        ),
        c(
            "voter_id_of_256_bytes",
            "a 256-character `voter_id`",
            with("voter_id", &format!("\"{}\"", "v".repeat(256))),
            "longer than 255 bytes",
        ),
        c(
            "voter_id_with_an_escaped_newline",
            "`\"voter_id\":\"a\\nb\"`",
            with("voter_id", r#""a\nb""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_an_escaped_nul",
            "`\"voter_id\":\"a\\u0000b\"`",
            with("voter_id", r#""a\u0000b""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_an_escaped_accent",
            "`\"voter_id\":\"caf\\u00e9\"`",
            with("voter_id", r#""caf\u00e9""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_raw_utf8",
            "`\"voter_id\":\"café\"`",
            with("voter_id", "\"café\""),
            "visible ASCII",
        ),
        c(
            "voter_id_with_a_lone_surrogate",
            "`\"voter_id\":\"\\ud800\"`",
            with("voter_id", r#""\ud800""#),
            "escape",
        ),
        c(
            "voter_id_given_twice",
            "two `voter_id` fields",
            br#"{"voter_id":"d1","voter_id":"d2","vote":"a"}"#.to_vec(),
            "duplicate field",
        ),
        c(
            "vote_in_upper_case",
            "`\"vote\":\"A\"`",
            with("vote", r#""A""#),
            "unknown variant",
        ),
        c(
            "vote_empty",
            "`\"vote\":\"\"`",
            with("vote", r#""""#),
            "unknown variant",
        ),
        c(
            "vote_with_a_trailing_space",
            "`\"vote\":\"a \"`",
            with("vote", r#""a ""#),
            "unknown variant",
        ),
        c(
            "vote_a_number",
            "`\"vote\":1`",
            with("vote", "1"),
            "invalid type: integer",
        ),
        c(
            "vote_null",
            "`\"vote\":null`",
            with("vote", "null"),
            "invalid type: null",
        ),
        c(
            "vote_true",
            "`\"vote\":true`",
            with("vote", "true"),
            "invalid type: boolean",
        ),
        c(
            "vote_an_array",
            "`\"vote\":[\"a\"]`",
            with("vote", r#"["a"]"#),
            "invalid type: sequence",
        ),
        c(
            "seq_true",
            "`\"seq\":true`",
            with("seq", "true"),
            "expected i64",
        ),
        c(
            "seq_in_exponent_form",
            "`\"seq\":1e15`",
            with("seq", "1e15"),
            "expected i64",
        ),
        c(
            "seq_below_i64",
            "`\"seq\":-9223372036854775809`",
            with("seq", "-9223372036854775809"),
            "expected i64",
        ),
        c(
            "seq_an_object",
            "`\"seq\":{\"n\":1}`",
            with("seq", r#"{"n":1}"#),
            "expected i64",
        ),
        c(
            "seq_one_past_the_window",
            "`seq` the window (five minutes) and a minute ahead of the worker's clock",
            with(
                "seq",
                &(now_us() + contract::SeqWindow::ahead_us() + 60_000_000).to_string(),
            ),
            "outside the accepted window",
        ),
        stored(
            "extra_field_nested_2000_deep",
            "a ballot with an unknown field of 2,000 nested arrays",
            nested.into_bytes(),
            "n1",
        ),
        stored(
            "extra_field_with_an_infinite_number",
            "a ballot with an unknown field `1e999999`",
            br#"{"voter_id":"i1","vote":"a","x":1e999999}"#.to_vec(),
            "i1",
        ),
        c(
            "entry_of_4097_bytes",
            "a ballot padded to one byte over the 4 KiB limit",
            {
                let mut p = with("pad", "\"\"");
                let pad = 4097 - p.len();
                p = with("pad", &format!("\"{}\"", "p".repeat(pad)));
                p
            },
            "over the 4096-byte limit",
        ),
        c(
            "entry_of_1_mib",
            "a ballot padded to 1 MiB (the dead letter keeps only the start)",
            with("pad", &format!("\"{}\"", "p".repeat(1 << 20))),
            "over the 4096-byte limit",
        ),
        c(
            "entry_of_20_mib",
            "a ballot padded to 20 MiB (it must never leave Redis whole)",
            with("pad", &format!("\"{}\"", "p".repeat(20 << 20))),
            "over the 4096-byte limit",
        ),
    ]
}

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
