//! The ballot: what the vote service queues and the worker stores.
//!
//! This is the wire contract shared with the original voting app. A ballot is
//! a JSON object `{"voter_id":"…","vote":"a"}` in the Redis list
//! [`QUEUE_KEY`](crate::queue::QUEUE_KEY). Our vote service adds a `seq`
//! field (see [`crate::queue`]); readers ignore fields they do not know and
//! accept any JSON spacing, so the original's Python-spaced JSON parses too.
//!
//! Every value here is parsed once, at the edge ([`Vote::parse`],
//! [`VoterId::parse`], [`Ballot::from_json`]); code further in takes the
//! types and cannot be handed bad data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest ballot payload the worker accepts, in bytes. A real ballot is
/// well under 400 bytes (255-byte voter id plus framing); anything far larger
/// is not a ballot.
pub const MAX_BALLOT_BYTES: usize = 4096;

/// One of the two options on the ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Vote {
    #[serde(rename = "a")]
    A,
    #[serde(rename = "b")]
    B,
}

impl Vote {
    /// Parses the wire form: exactly `a` or `b`.
    pub fn parse(s: &str) -> Result<Self, BallotError> {
        match s {
            "a" => Ok(Vote::A),
            "b" => Ok(Vote::B),
            other => Err(BallotError::BadVote(truncate(other))),
        }
    }

    /// The wire form, `a` or `b`, as stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Vote::A => "a",
            Vote::B => "b",
        }
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A voter's identity: 1 to 255 visible ASCII characters (`!` to `~`).
///
/// Ours are 16 lowercase hex characters; the original's are 15. Anything
/// printable that fits the `votes.id VARCHAR(255)` column is accepted, so
/// ballots from other producers still count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VoterId(String);

impl VoterId {
    /// The longest accepted id, in bytes (the width of `votes.id`).
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: impl Into<String>) -> Result<Self, BallotError> {
        let s = s.into();
        if s.is_empty() {
            return Err(BallotError::BadVoterId("empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(BallotError::BadVoterId("longer than 255 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BallotError::BadVoterId(
                "not made of visible ASCII characters",
            ));
        }
        Ok(VoterId(s))
    }

    /// A fresh id: 16 lowercase hex characters from 64 random bits of the
    /// operating system's secure generator.
    pub fn random() -> Result<Self, getrandom::Error> {
        let bits = getrandom::u64()?;
        Ok(VoterId(format!("{bits:016x}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VoterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VoterId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VoterId::parse(s).map_err(serde::de::Error::custom)
    }
}

/// A voter's choice as it travels through the queue.
///
/// `seq` orders one voter's ballots when several workers store them
/// concurrently: the higher `seq` wins. Ballots without it (from the original
/// vote service) are ordered by their position in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub voter_id: VoterId,
    pub vote: Vote,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl Ballot {
    pub fn new(voter_id: VoterId, vote: Vote) -> Self {
        Ballot {
            voter_id,
            vote,
            seq: None,
        }
    }

    /// Parses a queued payload. Any JSON spacing and unknown fields are fine;
    /// a missing or malformed field, or an oversized payload, is an error
    /// whose text says which.
    pub fn from_json(payload: &[u8]) -> Result<Self, BallotError> {
        if payload.len() > MAX_BALLOT_BYTES {
            return Err(BallotError::Oversized(payload.len()));
        }
        serde_json::from_slice(payload).map_err(|e| BallotError::Malformed(e.to_string()))
    }

    /// The compact JSON form, fields in contract order:
    /// `{"voter_id":"…","vote":"a"}` (plus `"seq":N` when set).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, an enum and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a payload or a form field is not a valid ballot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BallotError {
    #[error("vote must be \"a\" or \"b\", got {0:?}")]
    BadVote(String),
    #[error("voter id is {0}")]
    BadVoterId(&'static str),
    #[error("ballot is {0} bytes, over the {MAX_BALLOT_BYTES}-byte limit")]
    Oversized(usize),
    #[error("ballot is not valid JSON of the expected shape: {0}")]
    Malformed(String),
}

/// Keeps error messages short when echoing untrusted input.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_matches_the_contract() {
        let b = Ballot::new(VoterId::parse("0123456789abcdef").unwrap(), Vote::A);
        assert_eq!(b.to_json(), r#"{"voter_id":"0123456789abcdef","vote":"a"}"#);
        let b = Ballot { seq: Some(7), ..b };
        assert_eq!(
            b.to_json(),
            r#"{"voter_id":"0123456789abcdef","vote":"a","seq":7}"#
        );
    }

    #[test]
    fn python_spaced_json_with_extra_fields_parses() {
        let b = Ballot::from_json(br#"{"voter_id": "5a1f2c3d4e5f6a7", "vote": "b", "x": [1]}"#)
            .unwrap();
        assert_eq!(b.voter_id.as_str(), "5a1f2c3d4e5f6a7");
        assert_eq!(b.vote, Vote::B);
        assert_eq!(b.seq, None);
    }

    #[test]
    fn bad_payloads_say_why() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not valid JSON"),
            (br#"{"vote":"a"}"#, "missing field `voter_id`"),
            (br#"{"voter_id":"x"}"#, "missing field `vote`"),
            (br#"{"voter_id":"x","vote":"c"}"#, "unknown variant"),
            (br#"{"voter_id":"","vote":"a"}"#, "empty"),
            (br#"{"voter_id":"a b","vote":"a"}"#, "visible ASCII"),
        ];
        for (payload, why) in cases {
            let err = Ballot::from_json(payload).unwrap_err().to_string();
            assert!(err.contains(why), "{payload:?}: {err}");
        }
        let big = vec![b' '; MAX_BALLOT_BYTES + 1];
        assert!(matches!(
            Ballot::from_json(&big),
            Err(BallotError::Oversized(_))
        ));
    }

    #[test]
    fn voter_ids_are_bounded_and_printable() {
        assert!(VoterId::parse("x".repeat(255)).is_ok());
        assert!(VoterId::parse("x".repeat(256)).is_err());
        assert!(VoterId::parse("tab\there").is_err());
        assert!(VoterId::parse("é").is_err());
    }

    #[test]
    fn random_ids_are_16_lowercase_hex() {
        let id = VoterId::random().unwrap();
        assert_eq!(id.as_str().len(), 16);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(id, VoterId::random().unwrap());
    }

    #[test]
    fn votes_parse_exactly() {
        assert_eq!(Vote::parse("a"), Ok(Vote::A));
        assert_eq!(Vote::parse("b"), Ok(Vote::B));
        assert!(Vote::parse("A").is_err());
        assert!(Vote::parse("").is_err());
    }
}
