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
//!
//! The queue is a trust boundary: any client of Redis can push onto it. So
//! a payload is a ballot only if it is a JSON *object* (serde's derives
//! would also take an array of the fields in order) and its `seq`, if any,
//! lies in the [`SeqWindow`]: a `seq` far in the future would otherwise
//! outrank every later ballot of that voter, and, once the worker raised
//! `votes:seq` to it, every later ballot of everyone.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use crate::json::ObjectOnly;

/// The largest ballot payload the worker accepts, in bytes. A real ballot is
/// well under 400 bytes (255-byte voter id plus framing); anything far larger
/// is not a ballot.
pub const MAX_BALLOT_BYTES: usize = 4096;

/// One of the two options on the ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Vote {
    #[serde(rename = "a")]
    A,
    #[serde(rename = "b")]
    B,
}

impl Vote {
    /// Every option, in the order the pages show them.
    pub const ALL: [Vote; 2] = [Vote::A, Vote::B];

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

/// Only the strings `"a"` and `"b"`: serde's derive would also take the
/// map form of an enum (`{"a":null}`), which is not the contract.
impl<'de> Deserialize<'de> for Vote {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct VoteVisitor;
        impl serde::de::Visitor<'_> for VoteVisitor {
            type Value = Vote;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the string \"a\" or \"b\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vote, E> {
                Vote::parse(s).map_err(|_| E::unknown_variant(s, &["a", "b"]))
            }
        }
        d.deserialize_str(VoteVisitor)
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

/// The `seq` values a ballot may carry, as seen from one clock.
///
/// Our vote service stamps `seq = max(last + 1, Redis time in µs)`, so a
/// real `seq` is about now in microseconds since the Unix epoch. The window
/// runs from 1 to [`SeqWindow::AHEAD`] past the reader's clock, which leaves
/// room for clocks that disagree, and never past [`SeqWindow::LIMIT`], so
/// the `seq` arithmetic in Redis's Lua (whose numbers are doubles) stays
/// exact. A `seq` outside it is a bad ballot, never a reason to move the
/// counter: every `seq` inside it can pin its voter (outrank their later
/// ballots) for at most [`SeqWindow::AHEAD`].
///
/// The clock is an argument ([`SeqWindow::at`]), so the window is testable
/// and every ballot of one batch is judged against the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWindow {
    newest: i64,
}

impl SeqWindow {
    /// How far past the reader's clock a `seq` may be: five minutes.
    ///
    /// What it must cover is clocks that disagree. A `seq` is stamped from
    /// the Redis primary's clock and judged by the worker's, and after a
    /// failover the new primary continues from the replicated counter
    /// (`seq = max(last + 1, now)`), so while its clock is behind the old
    /// primary's it stamps up to that difference ahead of its own clock.
    /// Under NTP, servers' clocks differ by milliseconds to a second or
    /// two; five minutes is a hundred times that and more. It must also be
    /// short, because a ballot stamped (or forged) up to this far ahead
    /// outranks its voter's next ballots until the clock catches up: a day
    /// let one pushed entry pin a voter for a day. A clock that drifts
    /// further than this is a fault to fix: the enqueue script then
    /// refuses to stamp (vote answers 503) rather than queue ballots the
    /// worker would dead-letter.
    pub const AHEAD: Duration = Duration::from_secs(5 * 60);
    /// The lowest accepted `seq`.
    pub const OLDEST: i64 = 1;
    /// The highest `seq` whatever the clock says: 2^53 − 1, the largest
    /// integer a double (a Lua number in Redis) holds exactly. Microseconds
    /// since 1970 reach it in the year 2255.
    pub const LIMIT: i64 = (1 << 53) - 1;

    /// The window as seen at `now`.
    pub fn at(now: SystemTime) -> Self {
        let now_us = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        SeqWindow {
            newest: now_us.saturating_add(Self::ahead_us()).min(Self::LIMIT),
        }
    }

    /// The window as seen now, by this machine's clock.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// [`SeqWindow::AHEAD`] in microseconds.
    pub const fn ahead_us() -> i64 {
        Self::AHEAD.as_secs() as i64 * 1_000_000
    }

    /// The highest accepted `seq`.
    pub fn newest(self) -> i64 {
        self.newest
    }

    pub fn contains(self, seq: i64) -> bool {
        (Self::OLDEST..=self.newest).contains(&seq)
    }
}

/// A voter's choice as it travels through the queue.
///
/// `seq` orders one voter's ballots when several workers store them
/// concurrently: the higher `seq` wins. Ballots without it (from the original
/// vote service) are ordered by their position in the queue. A ballot read
/// from the queue ([`Ballot::from_json`]) has a `seq` inside the
/// [`SeqWindow`] it was read with, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ballot {
    pub voter_id: VoterId,
    pub vote: Vote,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// The wire shape, before the checks that need more than one field or a
/// clock. Unknown fields are ignored (contract).
#[derive(Deserialize)]
struct WireBallot {
    voter_id: VoterId,
    vote: Vote,
    /// Absent means no `seq`; `null` is not an integer and is refused.
    #[serde(default, deserialize_with = "present")]
    seq: Option<i64>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
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
    /// anything but a JSON object, a missing or malformed field, a `seq`
    /// outside `window`, or an oversized payload is an error whose text says
    /// which.
    pub fn from_json(payload: &[u8], window: SeqWindow) -> Result<Self, BallotError> {
        if payload.len() > MAX_BALLOT_BYTES {
            return Err(BallotError::Oversized(payload.len()));
        }
        // JSON is UTF-8 throughout; serde_json checks only the strings it
        // keeps, not those of fields it skips.
        let text = std::str::from_utf8(payload)
            .map_err(|e| BallotError::Malformed(format!("not UTF-8: {e}")))?;
        let ObjectOnly(wire) = serde_json::from_str::<ObjectOnly<WireBallot>>(text)
            .map_err(|e| BallotError::Malformed(e.to_string()))?;
        if let Some(seq) = wire.seq
            && !window.contains(seq)
        {
            return Err(BallotError::SeqOutOfWindow {
                seq,
                newest: window.newest(),
            });
        }
        Ok(Ballot {
            voter_id: wire.voter_id,
            vote: wire.vote,
            seq: wire.seq,
        })
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
    #[error(
        "seq {seq} is outside the accepted window: 1 to {newest} \
         (microseconds since 1970, at most five minutes ahead of this worker's clock)"
    )]
    SeqOutOfWindow { seq: i64, newest: i64 },
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
        let b = Ballot::from_json(
            br#"{"voter_id": "5a1f2c3d4e5f6a7", "vote": "b", "x": [1]}"#,
            SeqWindow::now(),
        )
        .unwrap();
        assert_eq!(b.voter_id.as_str(), "5a1f2c3d4e5f6a7");
        assert_eq!(b.vote, Vote::B);
        assert_eq!(b.seq, None);
    }

    /// Every poison payload of the one list (`testkit::poison`, which the
    /// worker's abuse catalogue also runs) is refused with its reason.
    #[test]
    fn bad_payloads_say_why() {
        let now = SeqWindow::now();
        let payloads = testkit::poison::payloads(now.newest() - SeqWindow::ahead_us());
        assert!(payloads.len() > 50, "{} payloads", payloads.len());
        for poison in payloads {
            let err = Ballot::from_json(&poison.payload, now)
                .expect_err(poison.name)
                .to_string();
            assert!(err.contains(poison.reason), "{}: {err}", poison.name);
        }
        let big = vec![b' '; MAX_BALLOT_BYTES + 1];
        assert!(matches!(
            Ballot::from_json(&big, SeqWindow::now()),
            Err(BallotError::Oversized(_))
        ));
    }

    /// 2026-01-01T00:00:00Z.
    fn new_year() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    fn with_seq(seq: i64) -> String {
        format!(r#"{{"voter_id":"v","vote":"a","seq":{seq}}}"#)
    }

    #[test]
    fn seq_is_accepted_from_1_to_five_minutes_ahead_of_the_clock() {
        let window = SeqWindow::at(new_year());
        let now_us = 1_767_225_600_000_000;
        assert_eq!(window.newest(), now_us + 300_000_000);
        for seq in [1, 1000, now_us, window.newest()] {
            let ballot = Ballot::from_json(with_seq(seq).as_bytes(), window).unwrap();
            assert_eq!(ballot.seq, Some(seq));
        }
        for seq in [i64::MIN, -1, 0, window.newest() + 1, 1 << 60, i64::MAX] {
            assert_eq!(
                Ballot::from_json(with_seq(seq).as_bytes(), window),
                Err(BallotError::SeqOutOfWindow {
                    seq,
                    newest: window.newest()
                }),
                "{seq}"
            );
        }
        let why = Ballot::from_json(with_seq(1 << 60).as_bytes(), window)
            .unwrap_err()
            .to_string();
        assert!(why.contains("outside the accepted window"), "{why}");
    }

    #[test]
    fn the_window_never_reaches_past_exact_lua_integers() {
        let far = UNIX_EPOCH + Duration::from_secs(10_000_000_000);
        assert_eq!(SeqWindow::at(far).newest(), SeqWindow::LIMIT);
        // A clock before 1970 leaves only the five minutes ahead.
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(SeqWindow::at(before).newest(), SeqWindow::ahead_us());
    }

    #[test]
    fn a_ballot_read_back_from_its_json_is_the_same_ballot() {
        let window = SeqWindow::at(new_year());
        let b = Ballot {
            seq: Some(1_767_225_600_000_000),
            ..Ballot::new(VoterId::parse(r#"q"u\o\te"#).unwrap(), Vote::B)
        };
        assert_eq!(Ballot::from_json(b.to_json().as_bytes(), window), Ok(b));
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
