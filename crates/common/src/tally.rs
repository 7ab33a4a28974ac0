//! The tally: how many voters currently hold each option, and how the
//! result page presents it.
//!
//! The JSON form `{"a":N,"b":M}` is the live-feed contract; the percentage
//! and label rules match the original result page (`67.0%`, `No votes yet`,
//! `1 vote`, `N votes`).

use serde::{Deserialize, Serialize};

/// Current counts per option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tally {
    pub a: u64,
    pub b: u64,
}

impl Tally {
    /// Both counts together (saturating: no real tally gets near 2^64).
    pub fn total(self) -> u64 {
        self.a.saturating_add(self.b)
    }

    /// Whole-number percentages `(a, b)`: `a = round(100·a/(a+b))`,
    /// `b = 100 − a`; 50/50 when nobody has voted.
    pub fn percentages(self) -> (u8, u8) {
        let total = u128::from(self.a) + u128::from(self.b);
        if total == 0 {
            return (50, 50);
        }
        // Integer round-half-up of 100·a/total, exact for any count.
        let a = ((200 * u128::from(self.a) + total) / (2 * total)) as u8;
        (a, 100 - a)
    }

    /// Percentages as the page shows them, with one decimal: `("67.0%", "33.0%")`.
    pub fn percent_labels(self) -> (String, String) {
        let (a, b) = self.percentages();
        (format!("{a}.0%"), format!("{b}.0%"))
    }

    /// `No votes yet`, `1 vote` or `N votes`.
    pub fn votes_label(self) -> String {
        match self.total() {
            0 => "No votes yet".to_owned(),
            1 => "1 vote".to_owned(),
            n => format!("{n} votes"),
        }
    }

    /// The live-feed message: `{"a":N,"b":M}`.
    pub fn to_json(self) -> String {
        format!(r#"{{"a":{},"b":{}}}"#, self.a, self.b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: u64, b: u64) -> Tally {
        Tally { a, b }
    }

    #[test]
    fn no_votes_is_an_even_split() {
        assert_eq!(t(0, 0).percentages(), (50, 50));
        assert_eq!(t(0, 0).votes_label(), "No votes yet");
    }

    #[test]
    fn one_side_only() {
        assert_eq!(t(3, 0).percent_labels(), ("100.0%".into(), "0.0%".into()));
        assert_eq!(t(0, 1).percent_labels(), ("0.0%".into(), "100.0%".into()));
    }

    #[test]
    fn thirds_round_to_nearest() {
        assert_eq!(t(1, 2).percentages(), (33, 67));
        assert_eq!(t(2, 1).percentages(), (67, 33));
        assert_eq!(t(2, 1).percent_labels(), ("67.0%".into(), "33.0%".into()));
        // 0.5 rounds up, like Math.round in the original page.
        assert_eq!(t(1, 199).percentages(), (1, 99));
        assert_eq!(t(1, 1).percentages(), (50, 50));
    }

    #[test]
    fn the_largest_counts_neither_overflow_nor_skew() {
        assert_eq!(t(u64::MAX, u64::MAX).percentages(), (50, 50));
        assert_eq!(t(u64::MAX, 0).percentages(), (100, 0));
        assert_eq!(t(u64::MAX, 1).total(), u64::MAX);
    }

    #[test]
    fn singular_and_plural() {
        assert_eq!(t(1, 0).votes_label(), "1 vote");
        assert_eq!(t(1, 1).votes_label(), "2 votes");
        assert_eq!(t(2000, 1000).votes_label(), "3000 votes");
    }

    #[test]
    fn json_matches_the_live_feed_contract() {
        assert_eq!(t(2, 1).to_json(), r#"{"a":2,"b":1}"#);
        let back: Tally = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(back, t(2, 1));
    }
}
