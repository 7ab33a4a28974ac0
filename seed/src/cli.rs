//! The `seed` binary's command line: posting votes (the default) or
//! `seed watch`. In the library so the docs test can check the commands
//! the documents show against it.

use clap::{Parser, Subcommand};

/// Load for the voting app: posts votes like the original seed's ab runs.
#[derive(Parser, Debug)]
#[command(name = "seed", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: crate::Settings,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Follow a result service's live feed: print each tally as `a=N b=M`
    /// and exit 0 once the expected one (or, without --expect, the first)
    /// arrives; 1 if it does not within --timeout, 3 if the feed is
    /// unreachable or broken.
    Watch(crate::watch::WatchArgs),
}
