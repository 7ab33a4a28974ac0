//! Turning claimed payloads into something to store.
//!
//! A claimed batch is raw bytes in queue order. [`Batch::parse`] splits it
//! once, at the edge, into valid ballots and dead letters — anything but a
//! JSON object with the ballot's fields, and any `seq` outside the
//! [`SeqWindow`] at this worker's clock, is a dead letter with its reason
//! (the queue is a trust boundary: any Redis client can push onto it). An
//! entry over the ballot limit never leaves Redis: the claim hands over a
//! short stand-in ([`Oversized`]) instead, which becomes a dead letter
//! with the entry's size. [`Batch::latest`] then reduces the ballots to one
//! per voter — the voter's latest — sorted by voter id, which is the shape
//! the upsert wants:
//!
//! - *Latest* follows the same rule as the upsert in Postgres, so deciding
//!   within a batch or across batches gives the same answer: a ballot with a
//!   higher `seq` beats a lower one; when either has no `seq`, the later one
//!   in queue order wins; equal `seq` is the same ballot replayed.
//! - *Sorted by voter id* makes every worker lock rows in the same order,
//!   so two workers storing overlapping batches cannot deadlock.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use contract::{Ballot, BallotError, SeqWindow};

use crate::dead_letter::DeadLetter;
use crate::queue::Oversized;

/// One claimed batch, parsed.
#[derive(Debug, Default)]
pub struct Batch {
    /// Valid ballots in queue order.
    pub ballots: Vec<Ballot>,
    /// Payloads that are not ballots, with the reason.
    pub dead: Vec<DeadLetter>,
}

impl Batch {
    /// Parses every payload; none is dropped: each becomes a ballot or a
    /// dead letter stamped with `worker` and the current time.
    pub fn parse(payloads: &[Vec<u8>], worker: &str) -> Self {
        Self::parse_at(payloads, worker, SystemTime::now())
    }

    /// [`Batch::parse`] with the clock read at `now`: it sets the `seq`
    /// window and the dead letters' time.
    pub fn parse_at(payloads: &[Vec<u8>], worker: &str, now: SystemTime) -> Self {
        let window = SeqWindow::at(now);
        let at_ms = unix_ms(now);
        let mut batch = Batch {
            ballots: Vec::with_capacity(payloads.len()),
            dead: Vec::new(),
        };
        for payload in payloads {
            // An entry over the limit never left Redis: the claim put this
            // stand-in in its place.
            if let Some(oversized) = Oversized::parse(payload) {
                let why = BallotError::Oversized(oversized.size);
                tracing::debug!(reason = %why, "dead-lettering an entry over the limit");
                batch.dead.push(DeadLetter::of_excerpt(
                    &why.to_string(),
                    oversized.head,
                    true,
                    worker,
                    at_ms,
                ));
                continue;
            }
            match Ballot::from_json(payload, window) {
                Ok(ballot) => {
                    tracing::trace!(
                        "Processing vote for '{}' by '{}'",
                        ballot.vote,
                        ballot.voter_id
                    );
                    batch.ballots.push(ballot);
                }
                Err(why) => {
                    tracing::debug!(reason = %why, bytes = payload.len(), "dead-lettering a payload that is not a ballot");
                    batch
                        .dead
                        .push(DeadLetter::new(&why.to_string(), payload, worker, at_ms));
                }
            }
        }
        batch
    }

    /// Each voter's latest ballot in this batch, sorted by voter id.
    pub fn latest(&self) -> Vec<&Ballot> {
        let mut latest: HashMap<&str, &Ballot> = HashMap::with_capacity(self.ballots.len());
        for ballot in &self.ballots {
            latest
                .entry(ballot.voter_id.as_str())
                .and_modify(|kept| {
                    if supersedes(ballot, kept) {
                        *kept = ballot;
                    }
                })
                .or_insert(ballot);
        }
        let mut rows: Vec<&Ballot> = latest.into_values().collect();
        rows.sort_unstable_by(|x, y| x.voter_id.cmp(&y.voter_id));
        rows
    }
}

/// Whether `later` (later in queue order) replaces `earlier` for the same
/// voter. The upsert's `WHERE` clause says the same in SQL.
pub fn supersedes(later: &Ballot, earlier: &Ballot) -> bool {
    match (later.seq, earlier.seq) {
        (Some(later), Some(earlier)) => later > earlier,
        _ => true,
    }
}

fn unix_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(voter: &str, vote: &str, seq: Option<i64>) -> Vec<u8> {
        match seq {
            Some(seq) => format!(r#"{{"voter_id":"{voter}","vote":"{vote}","seq":{seq}}}"#),
            None => format!(r#"{{"voter_id":"{voter}","vote":"{vote}"}}"#),
        }
        .into_bytes()
    }

    fn summary(batch: &Batch) -> Vec<(String, &'static str)> {
        batch
            .latest()
            .iter()
            .map(|b| (b.voter_id.to_string(), b.vote.as_str()))
            .collect()
    }

    #[test]
    fn the_highest_seq_wins_whatever_the_queue_order() {
        let batch = Batch::parse(
            &[
                payload("v", "b", Some(20)),
                payload("v", "a", Some(10)),
                payload("v", "b", Some(20)),
            ],
            "w",
        );
        assert_eq!(summary(&batch), [("v".to_owned(), "b")]);
    }

    #[test]
    fn without_seq_the_later_ballot_wins() {
        let batch = Batch::parse(
            &[
                payload("v", "a", None),
                payload("v", "b", None),
                payload("v", "a", None),
            ],
            "w",
        );
        assert_eq!(summary(&batch), [("v".to_owned(), "a")]);
        let batch = Batch::parse(&[payload("v", "b", Some(5)), payload("v", "a", None)], "w");
        assert_eq!(summary(&batch), [("v".to_owned(), "a")]);
    }

    #[test]
    fn rows_come_out_sorted_by_voter() {
        let batch = Batch::parse(
            &[
                payload("c", "a", Some(1)),
                payload("a", "b", Some(2)),
                payload("b", "a", Some(3)),
            ],
            "w",
        );
        let voters: Vec<String> = summary(&batch).into_iter().map(|(v, _)| v).collect();
        assert_eq!(voters, ["a", "b", "c"]);
    }

    #[test]
    fn bad_payloads_become_dead_letters_with_reasons() {
        let batch = Batch::parse(
            &[
                b"not json".to_vec(),
                payload("v", "a", Some(1)),
                vec![0xff, 0xfe],
                payload("v", "c", Some(2)),
            ],
            "w-1",
        );
        assert_eq!(batch.ballots.len(), 1);
        let reasons: Vec<&str> = batch.dead.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
        assert!(reasons[2].contains("unknown variant"), "{reasons:?}");
        assert_eq!(batch.dead[0].payload, "not json");
        assert_eq!(batch.dead[1].payload, "\u{fffd}\u{fffd}");
        assert!(batch.dead.iter().all(|d| d.worker == "w-1" && d.at_ms > 0));
    }

    #[test]
    fn seqs_are_judged_by_the_clock_the_batch_is_parsed_at() {
        // 2026-01-01T00:00:00Z, and the last accepted seq then.
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        let newest = SeqWindow::at(now).newest();
        let batch = Batch::parse_at(
            &[
                payload("v", "a", Some(newest)),
                payload("w", "a", Some(newest + 1)),
                payload("x", "a", Some(0)),
            ],
            "w",
            now,
        );
        assert_eq!(summary(&batch), [("v".to_owned(), "a")]);
        assert_eq!(batch.dead.len(), 2);
        assert!(
            batch.dead.iter().all(|d| d.at_ms == 1_767_225_600_000
                && d.reason.contains("outside the accepted window"))
        );
    }

    #[test]
    fn an_oversized_payload_is_kept_only_in_part() {
        let big = vec![b'x'; 1 << 20];
        let batch = Batch::parse(&[big], "w");
        let dead = &batch.dead[0];
        assert_eq!(dead.payload.len(), DeadLetter::PAYLOAD_BUDGET);
        assert!(dead.reason.contains("1048576 bytes"), "{}", dead.reason);
    }

    #[test]
    fn the_claims_stand_in_for_an_entry_over_the_limit_is_a_dead_letter_with_its_size() {
        let stand_in = [&b"!oversized:20971520:"[..], &[b'x'; 100]].concat();
        let batch = Batch::parse(&[stand_in, payload("v", "a", None)], "w");
        assert_eq!(summary(&batch), [("v".to_owned(), "a")]);
        let dead = &batch.dead[0];
        assert_eq!(
            dead.reason,
            "ballot is 20971520 bytes, over the 4096-byte limit"
        );
        assert_eq!(dead.payload, "x".repeat(100));
    }
}
