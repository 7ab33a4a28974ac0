//! The engines behind `cargo xtask`, as a library so that tests drive the
//! very code the commands run:
//!
//! - [`stack`] — the voting app as local processes (`xtask up`, `xtask bench`).
//!
//! The binary (`src/main.rs`) adds argument parsing, release builds and the
//! reports that write files.

pub mod stack;
