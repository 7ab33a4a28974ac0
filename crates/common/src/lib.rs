//! What every part of the voting app shares.
//!
//! The voting app is a pipeline: the **vote** web service queues ballots in
//! Redis, the **worker** stores each voter's latest choice in Postgres, and
//! the **result** web service streams the tally to browsers. This crate is
//! the single source of truth for the contracts between them — the ballot
//! JSON ([`ballot`]), the Redis keys and enqueue script ([`queue`]), the
//! Postgres schema and tally queries ([`db`]), the tally and its
//! presentation ([`tally`]) — and for the plumbing every service needs:
//! configuration ([`config`]), logging ([`telemetry`], [`outage`]), shutdown
//! ([`shutdown`]), resilient connections ([`connect`]), the HTTP server
//! ([`http`]), health and metrics endpoints ([`health`]) and the rule for
//! which requests come from the site's own pages ([`origin`]).

pub mod ballot;
pub mod config;
pub mod connect;
pub mod db;
pub mod health;
pub mod http;
pub mod json;
pub mod limits;
pub mod origin;
pub mod outage;
pub mod queue;
pub mod service;
pub mod shutdown;
pub mod tally;
pub mod telemetry;

pub use ballot::{Ballot, BallotError, SeqWindow, Vote, VoterId};
pub use tally::Tally;
