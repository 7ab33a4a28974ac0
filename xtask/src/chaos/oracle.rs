//! The oracle: what each voter's row in `votes` must hold after the run,
//! judged from the ledger of what the voters were told.
//!
//! For each voter the ledger lists their attempts in order, each
//! **acknowledged** (answered 200) or of **unknown outcome** (any other
//! answer, or none: the ballot may or may not have been queued). Let *L*
//! be the voter's last acknowledged attempt. The row must be:
//!
//! | the voter's attempts          | allowed row                                              |
//! | ----------------------------- | -------------------------------------------------------- |
//! | none                          | no row                                                   |
//! | *L* exists                    | *L*'s choice, or the choice of an attempt after *L*      |
//! | some, none acknowledged       | no row, or the choice of one of them                     |
//!
//! An attempt after *L* is of unknown outcome by definition; it may have
//! landed, and being later it may win. Anything else is a failure:
//!
//! - **lost** — *L* exists and the voter has no row;
//! - **stale** — *L* exists and the row holds a choice that neither *L* nor
//!   any later attempt carried: an older ballot won;
//! - **extra** — a row no attempt explains: for an id that never voted, or
//!   holding a choice none of the voter's attempts carried.
//!
//! Rows are compared by choice: a ballot is `a` or `b`, and its `seq` is
//! stamped inside Redis where the client cannot see it. The voters'
//! choices alternate, so the ballot before *L* carries the other choice
//! and a lost *L* that leaves it standing shows as stale; two lost ballots
//! in a row would leave *L*'s choice standing and go unseen. A voter
//! retries the *same* choice after an unknown outcome, so an attempt after
//! *L* with a different choice exists only for a voter who gave up; for
//! such a voter either choice passes, and the verdict counts them
//! ([`Verdict::open`]) so a reader knows how many rows were checked less
//! strictly.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::voters::VoterLog;

/// How many failing voters a verdict describes in full.
const EXAMPLES: usize = 10;

/// The rows judged against the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Voters in the ledger.
    pub voters: u64,
    /// Rows in `votes`.
    pub rows: u64,
    pub lost: u64,
    pub stale: u64,
    pub extra: u64,
    /// Voters with an unconfirmed attempt after their last acknowledged
    /// one that carried the other choice: either choice passes for them.
    pub open: u64,
    /// Voters never acknowledged whose unconfirmed ballot landed (a row,
    /// allowed).
    pub unacknowledged_landed: u64,
    /// A few failures, described.
    pub examples: Vec<String>,
}

impl Verdict {
    /// No lost, stale or extra row.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.stale == 0 && self.extra == 0
    }

    fn note(&mut self, example: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} voters, {} rows: {} lost, {} stale, {} extra",
            self.voters, self.rows, self.lost, self.stale, self.extra
        )?;
        if self.open > 0 || self.unacknowledged_landed > 0 {
            write!(
                f,
                " ({} voters with an unconfirmed change after their last acknowledged ballot; \
                 {} never acknowledged, their unconfirmed ballot stored)",
                self.open, self.unacknowledged_landed
            )?;
        }
        for example in &self.examples {
            write!(f, "\n  {example}")?;
        }
        Ok(())
    }
}

/// Judges `rows` (voter id → stored choice) against the ledger.
pub fn judge(ledger: &[VoterLog], rows: &HashMap<String, String>) -> Verdict {
    let mut verdict = Verdict {
        voters: ledger.len() as u64,
        rows: rows.len() as u64,
        ..Verdict::default()
    };
    let mut known = HashSet::with_capacity(ledger.len());
    for voter in ledger {
        known.insert(voter.id.as_str());
        let row = rows.get(&voter.id).map(String::as_str);
        let attempts = &voter.attempts;
        match attempts.iter().rposition(|a| a.acked) {
            Some(last) => {
                let allowed: Vec<&str> = attempts[last..].iter().map(|a| a.vote.as_str()).collect();
                if allowed.iter().any(|&choice| choice != allowed[0]) {
                    verdict.open += 1;
                }
                match row {
                    Some(stored) if allowed.contains(&stored) => {}
                    Some(stored) => {
                        verdict.stale += 1;
                        verdict.note(|| {
                            format!(
                                "stale: voter {} holds {stored}; last acknowledged {} \
                                 (attempt {} of {}: {})",
                                voter.id,
                                allowed[0],
                                last + 1,
                                attempts.len(),
                                history(voter)
                            )
                        });
                    }
                    None => {
                        verdict.lost += 1;
                        verdict.note(|| {
                            format!(
                                "lost: voter {} has no row; last acknowledged {} \
                                 (attempt {} of {}: {})",
                                voter.id,
                                allowed[0],
                                last + 1,
                                attempts.len(),
                                history(voter)
                            )
                        });
                    }
                }
            }
            None => match row {
                None => {}
                Some(stored) if attempts.iter().any(|a| a.vote.as_str() == stored) => {
                    verdict.unacknowledged_landed += 1;
                }
                Some(stored) => {
                    verdict.extra += 1;
                    verdict.note(|| {
                        format!(
                            "extra: voter {} holds {stored}, which none of their attempts \
                             carried ({})",
                            voter.id,
                            history(voter)
                        )
                    });
                }
            },
        }
    }
    let mut strangers: Vec<(&String, &String)> = rows
        .iter()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .collect();
    strangers.sort();
    for (id, stored) in strangers {
        verdict.extra += 1;
        verdict.note(|| format!("extra: a row for {id} ({stored}), who never voted"));
    }
    verdict
}

/// A voter's attempts as `a✓ b? b✓`: ✓ acknowledged, ? unknown outcome.
fn history(voter: &VoterLog) -> String {
    voter
        .attempts
        .iter()
        .map(|a| format!("{}{}", a.vote.as_str(), if a.acked { "✓" } else { "?" }))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::voters::Attempt;
    use super::*;
    use contract::Vote;

    /// A voter from `a✓ b? …` shorthand.
    fn voter(id: &str, history: &str) -> VoterLog {
        let attempts = history
            .split_whitespace()
            .map(|step| {
                let (vote, mark) = step.split_at(1);
                Attempt {
                    vote: Vote::parse(vote).unwrap(),
                    acked: mark == "✓",
                }
            })
            .collect();
        VoterLog {
            id: id.to_owned(),
            attempts,
        }
    }

    fn rows(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(id, vote)| ((*id).to_owned(), (*vote).to_owned()))
            .collect()
    }

    #[test]
    fn the_last_acknowledged_choice_passes() {
        let ledger = [voter("v1", "a✓ b✓ a✓"), voter("v2", "b? b✓")];
        let verdict = judge(&ledger, &rows(&[("v1", "a"), ("v2", "b")]));
        assert!(verdict.passed(), "{verdict}");
        assert_eq!(verdict.open, 0);
    }

    #[test]
    fn a_missing_row_is_lost() {
        let ledger = [voter("v1", "a✓ b✓")];
        let verdict = judge(&ledger, &rows(&[]));
        assert_eq!((verdict.lost, verdict.stale, verdict.extra), (1, 0, 0));
        assert!(verdict.examples[0].starts_with("lost: voter v1"));
    }

    #[test]
    fn an_older_choice_is_stale() {
        let ledger = [voter("v1", "a✓ b✓")];
        let verdict = judge(&ledger, &rows(&[("v1", "a")]));
        assert_eq!((verdict.lost, verdict.stale, verdict.extra), (0, 1, 0));
        assert!(!verdict.passed());
    }

    #[test]
    fn a_later_unconfirmed_choice_may_win() {
        // The voter gave up on b; it may or may not have landed.
        let ledger = [voter("v1", "a✓ b? b?")];
        for stored in ["a", "b"] {
            let verdict = judge(&ledger, &rows(&[("v1", stored)]));
            assert!(verdict.passed(), "{stored}: {verdict}");
            assert_eq!(verdict.open, 1);
        }
        assert_eq!(judge(&ledger, &rows(&[])).lost, 1);
    }

    #[test]
    fn an_earlier_unconfirmed_choice_may_not_win() {
        // b's outcome was unknown, but a later a was acknowledged.
        let ledger = [voter("v1", "b? a✓")];
        assert_eq!(judge(&ledger, &rows(&[("v1", "b")])).stale, 1);
    }

    #[test]
    fn a_voter_never_acknowledged_may_or_may_not_have_a_row() {
        let ledger = [voter("v1", "a? a?")];
        assert!(judge(&ledger, &rows(&[])).passed());
        let landed = judge(&ledger, &rows(&[("v1", "a")]));
        assert!(landed.passed());
        assert_eq!(landed.unacknowledged_landed, 1);
        // But not with a choice they never sent.
        assert_eq!(judge(&ledger, &rows(&[("v1", "b")])).extra, 1);
    }

    #[test]
    fn rows_of_voters_who_never_voted_are_extra() {
        let ledger = [voter("v1", "a✓"), voter("silent", "")];
        let verdict = judge(&ledger, &rows(&[("v1", "a"), ("silent", "a"), ("x", "b")]));
        assert_eq!((verdict.lost, verdict.stale, verdict.extra), (0, 0, 2));
        assert_eq!(verdict.rows, 3);
    }

    #[test]
    fn a_row_holding_neither_choice_is_stale() {
        let ledger = [voter("v1", "a✓")];
        assert_eq!(judge(&ledger, &rows(&[("v1", "c")])).stale, 1);
    }
}
