//! Integration tests for the hit counter, against a real Redis from the
//! test harness. One test binary (as in zero2prod's `tests/api`), so the
//! crate links once.
//!
//! - [`counting`]: what a visitor sees, alone and 50 at a time.
//! - [`outage`]: Redis down, at start and later, and the recovery.
//! - [`hostile`]: clients sending what they should not.
//! - [`abuse`]: the catalogue of hostile requests (`docs/abuse.md`).
//! - [`process`]: the binary itself: environment, `--help`, the
//!   `healthcheck` subcommand, SIGTERM.
//! - [`helpers`]: starting the app in the test process or as the binary.

#![allow(clippy::unwrap_used)]

mod abuse;
mod counting;
mod helpers;
mod hostile;
mod outage;
mod process;
