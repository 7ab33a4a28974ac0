//! The properties the fuzz targets check, one module per parser that takes
//! untrusted input. Each `check` asserts what must hold for *any* input —
//! not only "no panic" — and panics (a crash, to libFuzzer) when it does
//! not:
//!
//! - [`ballot`]: a queue payload (`Ballot::from_json` with the `seq`
//!   window): only JSON objects with valid fields and an in-window `seq`
//!   parse, what parses says what the JSON says, and its own JSON parses
//!   back to the same ballot; every such object parses.
//! - [`form`]: the vote form (`vote::form::parse_vote`): a form parses only
//!   if it is URL-encoded with exactly one `vote` field of `a` or `b`, and
//!   every such form does.
//! - [`cookie`]: the `Cookie` headers (`vote::visitor::Visitor`): no header
//!   without `voter_id` yields an identity, a known id is one the headers
//!   carry, and the cookies we set are read back as set, whatever follows.
//! - [`feed`]: the live-feed message: `Tally`'s JSON parses back to the same
//!   counts (serde and `Tally::from_feed`, the readers' parser), which
//!   accepts only a JSON object whose `a` and `b` are those counts; the
//!   result page's percentages add up for any counts.
//!
//! Two runners share these checks:
//! - `cargo xtask fuzz` runs the coverage-guided targets in `fuzz/`
//!   (libFuzzer through cargo-fuzz; thin wrappers around these) for a set
//!   time each, growing the corpus in `fuzz/corpus/<target>/`;
//! - `cargo test -p props` runs them on every input of that checked-in
//!   corpus (and `fuzz/regressions/<target>/`) and on seeded mutations of
//!   it: what any stable toolchain checks in seconds.
//!
//! Typed inputs are built with [`arbitrary`] from the raw bytes exactly as
//! libFuzzer's `fuzz_target!` does, so a corpus file means the same input
//! to both runners.
//!
//! Must not depend on: a running store or the test harness: the properties
//! take bytes and call the parsers directly (`contract`'s, and the vote
//! form, cookie and percentage code of `vote` and `result`), so a fuzz run
//! starts nothing.

pub use arbitrary;

pub mod ballot;
pub mod cookie;
pub mod feed;
pub mod form;
