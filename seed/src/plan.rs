//! The plan of a seed: which runs of identical votes to post, in the
//! original seed's order.

use contract::Vote;

/// A run of identical votes, like one `ab` invocation of the original seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub vote: Vote,
    pub count: u64,
}

/// The original seed's order: half of `a`'s votes, all of `b`'s, then the
/// rest of `a`'s (1000 a, 1000 b, 1000 a by default). Empty runs are left out.
pub fn plan(votes_a: u64, votes_b: u64) -> Vec<Run> {
    let first_a = votes_a.div_ceil(2);
    [
        Run {
            vote: Vote::A,
            count: first_a,
        },
        Run {
            vote: Vote::B,
            count: votes_b,
        },
        Run {
            vote: Vote::A,
            count: votes_a - first_a,
        },
    ]
    .into_iter()
    .filter(|r| r.count > 0)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_is_the_original_order_of_runs() {
        assert_eq!(
            plan(2000, 1000),
            vec![
                Run {
                    vote: Vote::A,
                    count: 1000
                },
                Run {
                    vote: Vote::B,
                    count: 1000
                },
                Run {
                    vote: Vote::A,
                    count: 1000
                },
            ]
        );
    }

    #[test]
    fn odd_and_empty_counts_are_kept_exact() {
        let runs = plan(3, 0);
        assert_eq!(runs.iter().map(|r| r.count).sum::<u64>(), 3);
        assert!(runs.iter().all(|r| r.vote == Vote::A));
        assert_eq!(
            plan(0, 5),
            vec![Run {
                vote: Vote::B,
                count: 5
            }]
        );
        assert!(plan(0, 0).is_empty());
    }
}
