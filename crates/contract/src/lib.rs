//! What the parts of the voting app must agree on, and nothing else.
//!
//! The voting app is a pipeline: the **vote** service queues ballots in
//! Redis, the **worker** stores each voter's latest choice in Postgres, and
//! the **result** service streams the tally to browsers; the **seed**
//! posts votes and reads the live feed. Each contract between two of them
//! is written here once, with the tests that pin it byte for byte:
//!
//! - [`ballot`] — the ballot JSON on the queue, the vote, the voter id and
//!   the window a ballot's `seq` must lie in;
//! - [`choices`] — the names the pages show for the two options;
//! - [`json`] — "a JSON object" as the contracts mean it (not an array);
//! - [`queue`] — the Redis keys producers and consumers share and the
//!   script that stamps and queues a ballot (the call behind the `redis`
//!   feature);
//! - [`table`] — the `votes` table, the tally queries and the change
//!   channel; the migrations that create them are SQL files in
//!   `crates/contract/migrations/`, embedded by the worker;
//! - [`tally`] — the tally and its live-feed message `{"a":N,"b":M}`.
//!
//! Must not depend on: any service, the service kit, a database driver or
//! an async runtime. Its dependencies are serde, serde_json, thiserror and
//! getrandom (and redis with the `redis` feature, clap with `clap`), so the
//! seed and the fuzz targets link it at almost no cost. How a service presents or
//! stores these values is the service's business, not this crate's.

pub mod ballot;
pub mod choices;
pub mod json;
pub mod queue;
pub mod table;
pub mod tally;

pub use ballot::{Ballot, BallotError, SeqWindow, Vote, VoterId};
pub use choices::BallotChoices;
pub use tally::Tally;
