//! Queue payloads: `contract::Ballot::from_json` with a `seq` window.

use std::time::{Duration, UNIX_EPOCH};

use contract::ballot::MAX_BALLOT_BYTES;
use contract::{Ballot, SeqWindow, Vote, VoterId};
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::Value;

/// The worker's clock for these checks: 2026-01-01T00:00:00Z.
pub fn window() -> SeqWindow {
    SeqWindow::at(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
}

pub fn check(data: &[u8]) {
    let window = window();
    let parsed = Ballot::from_json(data, window);
    let value: Option<Value> = serde_json::from_slice(data).ok();
    match parsed {
        Ok(ballot) => {
            assert!(
                data.len() <= MAX_BALLOT_BYTES,
                "an oversized payload parsed"
            );
            assert!(
                std::str::from_utf8(data).is_ok(),
                "a payload that is not UTF-8 parsed"
            );
            // A JSON object, read as leniently as the ballot reads fields it
            // ignores (a lone surrogate escape is grammatical JSON, which
            // `Value` refuses).
            let keys: BTreeMap<String, IgnoredAny> =
                serde_json::from_slice(data).unwrap_or_else(|e| {
                    panic!("{ballot:?} parsed from a payload that is not a JSON object: {e}")
                });
            assert!(keys.contains_key("voter_id") && keys.contains_key("vote"));
            assert_eq!(
                keys.contains_key("seq"),
                ballot.seq.is_some(),
                "a seq was dropped"
            );
            if let Some(seq) = ballot.seq {
                assert!(window.contains(seq), "seq {seq} is outside the window");
            }
            if let Some(object) = value.as_ref().and_then(Value::as_object) {
                check_fields(&ballot, object);
            }
            let json = ballot.to_json();
            assert_eq!(
                Ballot::from_json(json.as_bytes(), window).as_ref(),
                Ok(&ballot),
                "{json} does not read back as the ballot it came from"
            );
        }
        Err(why) => {
            assert!(!why.to_string().is_empty());
            // Every JSON object with valid fields is a ballot. Checked on
            // its canonical form: the raw bytes may repeat a key, which a
            // ballot may not.
            if let Some(expected) = value.as_ref().and_then(expected_ballot) {
                let canonical = serde_json::to_vec(&value).unwrap_or_default();
                if canonical.len() <= MAX_BALLOT_BYTES {
                    assert_eq!(
                        Ballot::from_json(&canonical, window),
                        Ok(expected),
                        "a valid ballot object was refused"
                    );
                }
            }
        }
    }
}

/// What the JSON says is what the ballot says.
fn check_fields(ballot: &Ballot, object: &serde_json::Map<String, Value>) {
    assert_eq!(
        object.get("voter_id").and_then(Value::as_str),
        Some(ballot.voter_id.as_str())
    );
    assert_eq!(
        object.get("vote").and_then(Value::as_str),
        Some(ballot.vote.as_str())
    );
    assert_eq!(object.get("seq").and_then(Value::as_i64), ballot.seq);
}

/// The ballot a JSON value must parse to, by the contract, if any.
fn expected_ballot(value: &Value) -> Option<Ballot> {
    let object = value.as_object()?;
    let voter_id = VoterId::parse(object.get("voter_id")?.as_str()?).ok()?;
    let vote = Vote::parse(object.get("vote")?.as_str()?).ok()?;
    let seq = match object.get("seq") {
        None => None,
        Some(seq) => Some(seq.as_i64().filter(|seq| window().contains(*seq))?),
    };
    Some(Ballot {
        seq,
        ..Ballot::new(voter_id, vote)
    })
}
