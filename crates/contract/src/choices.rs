//! The names the pages show for the two options: `OPTION_A` and
//! `OPTION_B`, as in the original app. vote and result must show the same
//! ones for `a` and `b`; the ballot itself only ever carries `a` or `b`
//! ([`Vote`]). With the `clap` feature they are a settings group the two
//! services flatten.

use crate::Vote;

/// What the pages call option `a` and option `b`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BallotChoices {
    /// Name of option `a` (not empty).
    #[cfg_attr(feature = "clap", arg(long, env = "OPTION_A", default_value = "Cats",
        value_parser = clap::builder::NonEmptyStringValueParser::new()))]
    pub option_a: String,
    /// Name of option `b` (not empty).
    #[cfg_attr(feature = "clap", arg(long, env = "OPTION_B", default_value = "Dogs",
        value_parser = clap::builder::NonEmptyStringValueParser::new()))]
    pub option_b: String,
}

impl BallotChoices {
    /// The name shown for `vote`.
    pub fn name(&self, vote: Vote) -> &str {
        match vote {
            Vote::A => &self.option_a,
            Vote::B => &self.option_b,
        }
    }
}

impl Default for BallotChoices {
    /// The original app's: Cats and Dogs.
    fn default() -> Self {
        BallotChoices {
            option_a: "Cats".to_owned(),
            option_b: "Dogs".to_owned(),
        }
    }
}
