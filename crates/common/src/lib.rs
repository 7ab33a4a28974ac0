//! The plumbing every service of the voting app shares.
//!
//! configuration ([`config`]), logging ([`telemetry`], [`outage`]), shutdown
//! ([`shutdown`]), resilient connections ([`connect`]), the HTTP server
//! ([`http`]), health and metrics endpoints ([`health`]), process limits
//! ([`limits`]), the ends of a service's `main` ([`service`]) and the rule
//! for which requests come from the site's own pages ([`origin`]).

pub mod config;
pub mod connect;
pub mod health;
pub mod http;
pub mod limits;
pub mod origin;
pub mod outage;
pub mod service;
pub mod shutdown;
pub mod telemetry;
