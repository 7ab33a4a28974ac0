//! The tally: how many voters currently hold each option, and its
//! live-feed message.
//!
//! The result service sends `{"a":N,"b":M}` ([`Tally::to_json`]) over its
//! WebSocket on connect and on every change; its page and the seed read it
//! back ([`Tally::from_feed`]). How the page presents a tally (percentages,
//! "N votes") is the result service's own.

use serde::{Deserialize, Serialize};

use crate::Vote;
use crate::json::ObjectOnly;

/// Current counts per option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tally {
    pub a: u64,
    pub b: u64,
}

impl Tally {
    /// The count for `vote`.
    pub fn get(self, vote: Vote) -> u64 {
        match vote {
            Vote::A => self.a,
            Vote::B => self.b,
        }
    }

    /// Sets the count for `vote`.
    pub fn set(&mut self, vote: Vote, count: u64) {
        match vote {
            Vote::A => self.a = count,
            Vote::B => self.b = count,
        }
    }

    /// Both counts together (saturating: no real tally gets near 2^64).
    pub fn total(self) -> u64 {
        self.a.saturating_add(self.b)
    }

    /// The live-feed message: `{"a":N,"b":M}`.
    pub fn to_json(self) -> String {
        format!(r#"{{"a":{},"b":{}}}"#, self.a, self.b)
    }

    /// Reads a live-feed message: a JSON object whose `a` and `b` are
    /// whole numbers (other fields are ignored, as for every contract).
    /// `None` for anything else — an array `[N,M]` included, which serde's
    /// derive alone would take.
    pub fn from_feed(text: &str) -> Option<Tally> {
        serde_json::from_str::<ObjectOnly<Tally>>(text)
            .ok()
            .map(|ObjectOnly(tally)| tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: u64, b: u64) -> Tally {
        Tally { a, b }
    }

    #[test]
    fn the_largest_counts_do_not_overflow_the_total() {
        assert_eq!(t(u64::MAX, 1).total(), u64::MAX);
        assert_eq!(t(2, 1).total(), 3);
    }

    #[test]
    fn json_matches_the_live_feed_contract() {
        assert_eq!(t(2, 1).to_json(), r#"{"a":2,"b":1}"#);
        let back: Tally = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(back, t(2, 1));
    }

    #[test]
    fn only_an_object_with_both_counts_is_a_feed_message() {
        assert_eq!(Tally::from_feed(r#"{"a":2,"b":1}"#), Some(t(2, 1)));
        assert_eq!(Tally::from_feed(r#" {"b":1,"x":[],"a":2} "#), Some(t(2, 1)));
        for other in ["nope", r#"{"a":2}"#, "[2,1]", r#"{"a":-1,"b":0}"#, "null"] {
            assert_eq!(Tally::from_feed(other), None, "{other}");
        }
    }
}
