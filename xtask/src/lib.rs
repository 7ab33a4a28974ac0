//! The engines behind `cargo xtask`, as a library so that tests drive the
//! very code the commands run:
//!
//! - [`stack`] — the voting app as local processes (`xtask up`, `xtask bench`).
//! - [`screenshots`] — the README's pictures of the pages, taken in
//!   headless Chromium against the native stack (`xtask screenshots`, and
//!   `xtask/tests/screenshots.rs`).
//! - [`chaos`] — ballots over HTTP while workers are killed and the stores
//!   crash, then a check of every voter's row (`xtask chaos`, and the
//!   CI-sized run in `xtask/tests/chaos.rs`).
//! - [`ha`] — the replicated stores (Sentinel; Patroni, etcd, HAProxy) for
//!   `xtask up --ha` and `xtask chaos --ha` (`xtask/tests/chaos_ha.rs`).
//!
//! The binary (`src/main.rs`) adds argument parsing, release builds and the
//! reports that write files.
//!
//! Must not be depended on by anything but itself: it is tooling. It may
//! use every crate of the workspace (it starts the real services) and the
//! test harness's browser, replicated stores and `/metrics` reader; the
//! throwaway single stores come from `localstores`.

pub mod chaos;
pub mod ha;
pub mod screenshots;
pub mod stack;
