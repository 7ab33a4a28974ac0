//! The live-feed message `{"a":N,"b":M}`: `contract::Tally` writes it
//! ([`Tally::to_json`]) and reads it ([`Tally::from_feed`], what the seed's
//! `--verify` uses); the result page's figures follow from it.

use arbitrary::Arbitrary;
use contract::Tally;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::Value;

#[derive(Debug, Arbitrary)]
pub struct Message<'a> {
    pub a: u64,
    pub b: u64,
    pub text: &'a str,
}

pub fn check(message: &Message<'_>) {
    // What the result service sends reads back as the same counts.
    let tally = Tally {
        a: message.a,
        b: message.b,
    };
    let json = tally.to_json();
    assert_eq!(
        serde_json::from_str::<Tally>(&json).ok(),
        Some(tally),
        "{json}"
    );
    assert_eq!(Tally::from_feed(&json), Some(tally), "{json}");
    // The page's figures hold together for any counts.
    let (pa, pb) = result::page::percentages(tally);
    assert_eq!(u16::from(pa) + u16::from(pb), 100);
    let (la, lb) = result::page::percent_labels(tally);
    assert_eq!((la, lb), (format!("{pa}.0%"), format!("{pb}.0%")));
    assert!(!result::page::votes_label(tally).is_empty());

    // Whatever else arrives, a reader accepts only a JSON object holding
    // the counts it reports.
    if let Some(Tally { a, b }) = Tally::from_feed(message.text) {
        // A JSON object, read as leniently as the parser reads fields it
        // ignores (`1e999` is grammatical JSON, which `Value` refuses).
        let keys: BTreeMap<String, IgnoredAny> =
            serde_json::from_str(message.text).unwrap_or_else(|e| {
                panic!(
                    "{:?} is not a JSON object ({e}) yet was read as a tally",
                    message.text
                )
            });
        assert!(keys.contains_key("a") && keys.contains_key("b"));
        if let Ok(value) = serde_json::from_str::<Value>(message.text) {
            assert_eq!(value.get("a").and_then(Value::as_u64), Some(a));
            assert_eq!(value.get("b").and_then(Value::as_u64), Some(b));
        }
    }
}
