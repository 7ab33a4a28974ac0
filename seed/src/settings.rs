//! What the seed does, from flags or environment: the target, the counts
//! (per option, or a total and a split), concurrency, rate, soak duration,
//! verification and output.

use crate::plan::{Run, plan};
use crate::progress::ProgressMode;

/// What the seed does, from flags or environment.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// The vote service to post to.
    #[arg(long, env = "SEED_TARGET", default_value = "http://vote/")]
    pub target: String,
    /// Votes for option `a` (posted in two runs, before and after `b`'s).
    #[arg(short = 'a', long, env = "SEED_VOTES_A", default_value_t = 2000)]
    pub votes_a: u64,
    /// Votes for option `b`.
    #[arg(short = 'b', long, env = "SEED_VOTES_B", default_value_t = 1000)]
    pub votes_b: u64,
    /// Total votes instead of per-option counts, shared out by `--split`
    /// (e.g. `--total 30000` posts 20,000 `a` and 10,000 `b`).
    #[arg(short = 'n', long, env = "SEED_TOTAL", conflicts_with_all = ["votes_a", "votes_b"])]
    pub total: Option<u64>,
    /// How `--total` is shared between `a` and `b`, as `A:B`.
    #[arg(long, env = "SEED_SPLIT", default_value = "2:1", value_parser = parse_split,
          requires = "total")]
    pub split: Split,
    /// Requests in flight at once.
    #[arg(short = 'c', long, env = "SEED_CONCURRENCY", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Cap on requests per second (default: as fast as the target answers).
    #[arg(long, env = "SEED_RATE", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Soak mode: keep repeating the runs for this many seconds instead of
    /// posting the counts once.
    #[arg(long, env = "SEED_DURATION", value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Seconds one request may take before it counts as failed.
    #[arg(
        long,
        env = "SEED_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub timeout: u64,
    /// Seconds to wait for the target to answer at all before giving up.
    #[arg(long, env = "SEED_WAIT", default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
    /// After posting, follow this result service's live feed (e.g.
    /// `http://result/`) until it shows the new votes.
    #[arg(long, env = "SEED_VERIFY", value_name = "RESULT_URL")]
    pub verify: Option<String>,
    /// Seconds `--verify` waits for the votes to show.
    #[arg(
        long,
        env = "SEED_VERIFY_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub verify_timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "SEED_REPORT_JSON", value_name = "FILE")]
    pub report_json: Option<std::path::PathBuf>,
    /// Progress output: a bar on a terminal, periodic lines otherwise.
    #[arg(long, env = "SEED_PROGRESS", default_value = "auto")]
    pub progress: ProgressMode,
}

impl Settings {
    /// The runs to post: per-option counts, or `--total` shared by `--split`,
    /// in the original's order.
    pub fn plan(&self) -> Vec<Run> {
        match self.total {
            Some(total) => {
                let (a, b) = self.split.share(total);
                plan(a, b)
            }
            None => plan(self.votes_a, self.votes_b),
        }
    }
}

/// The ratio `A:B` in which `--total` is shared between the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub a: u64,
    pub b: u64,
}

impl Split {
    /// `total` shared out as `(a, b)`: `a` rounded to the nearest vote,
    /// `b` the rest, so the two always add up to `total`.
    pub fn share(self, total: u64) -> (u64, u64) {
        let parts = u128::from(self.a) + u128::from(self.b);
        // No overflow: total·a < 2^128 − 2^64 and parts/2 ≤ 2^64. `parse_split`
        // refuses 0:0, and a ≤ parts, so the quotient fits in u64.
        let a = ((u128::from(total) * u128::from(self.a) + parts / 2) / parts) as u64;
        (a, total - a)
    }
}

/// Parses `A:B` (two whole numbers, not both zero).
fn parse_split(text: &str) -> Result<Split, String> {
    let (a, b) = text
        .split_once(':')
        .ok_or_else(|| format!("expected A:B, e.g. 2:1, got {text:?}"))?;
    let part = |p: &str| {
        p.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected A:B with whole numbers, got {text:?}"))
    };
    let split = Split {
        a: part(a)?,
        b: part(b)?,
    };
    if split.a == 0 && split.b == 0 {
        return Err("the split 0:0 shares out nothing; give at least one non-zero part".into());
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use contract::Vote;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Cli::try_parse_from(std::iter::once("seed").chain(args.iter().copied()))
            .map(|cli| cli.settings)
    }

    fn counts(settings: &Settings) -> (u64, u64) {
        settings
            .plan()
            .iter()
            .fold((0, 0), |(a, b), run| match run.vote {
                Vote::A => (a + run.count, b),
                Vote::B => (a, b + run.count),
            })
    }

    #[test]
    fn a_total_is_shared_two_to_one_by_default() {
        assert_eq!(counts(&parse(&[]).unwrap()), (2000, 1000));
        assert_eq!(
            counts(&parse(&["--total", "30000"]).unwrap()),
            (20_000, 10_000)
        );
        assert_eq!(
            counts(&parse(&["-n", "10", "--split", "1:1"]).unwrap()),
            (5, 5)
        );
        assert_eq!(
            counts(&parse(&["-n", "7", "--split", "0:3"]).unwrap()),
            (0, 7)
        );
    }

    #[test]
    fn a_shared_total_rounds_a_and_always_adds_up() {
        let split = |a, b| Split { a, b };
        assert_eq!(split(2, 1).share(1), (1, 0));
        assert_eq!(split(1, 1).share(3), (2, 1));
        assert_eq!(split(1, 2).share(3), (1, 2));
        assert_eq!(split(u64::MAX, 1).share(u64::MAX), (u64::MAX - 1, 1));
        assert_eq!(split(1, 0).share(u64::MAX), (u64::MAX, 0));
        for total in 0..50 {
            let (a, b) = split(3, 4).share(total);
            assert_eq!(a + b, total);
        }
    }

    #[test]
    fn bad_totals_and_splits_are_refused_with_a_reason() {
        for args in [
            &["--total", "5", "-a", "3"][..],
            &["--split", "1:1"],
            &["-n", "5", "--split", "0:0"],
            &["-n", "5", "--split", "2"],
            &["-n", "5", "--split", "a:b"],
            &["-n", "-5"],
        ] {
            let error = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(!error.to_string().is_empty());
        }
        let error = parse(&["-n", "5", "--split", "0:0"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("shares out nothing"), "{error}");
    }
}
