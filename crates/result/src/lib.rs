//! The result service: the page that shows how the vote stands, live.
//!
//! It is the end of the pipeline. The worker stores each voter's latest
//! choice in the Postgres table `votes`; this service reads the tally and
//! pushes it to every open page. It only reads: the worker owns the schema,
//! and [`tally::TallyReader`] copes with a database that has our
//! trigger-maintained tally, only the original table, or nothing yet.
//!
//! - `GET /` renders the page with the current tally ([`page`]).
//! - `GET /ws` streams `{"a":N,"b":M}` to the page: on connect and on every
//!   change ([`live`]). Malformed handshakes get a 400 ([`handshake`]);
//!   upgrades from other sites' pages are refused (see
//!   [`servicekit::origin`]); live clients are capped in all
//!   (`MAX_CLIENTS`) and, optionally, per address
//!   ([`servicekit::addresses`]).
//! - One poller per process reads the tally — on every change notification
//!   from Postgres and at least once per poll interval — and publishes it
//!   to all clients at once ([`feed`]). Page views and clients never query
//!   Postgres themselves, so a thousand open pages cost what one does.
//!
//! Replicas share nothing but Postgres, so any number of them can run
//! behind a plain load balancer.
//!
//! Files: `settings` ([`Settings`]), `state` ([`AppState`]), `routes`
//! (the router and the page view), `service` (the poller, serving and the
//! scaffold's [`servicekit::launch::Service`]), `metrics`.
//!
//! Must not depend on: Redis (it reads only Postgres), another service's
//! crate, or the test harness outside `[dev-dependencies]`. The table, the
//! tally and its feed message come from `contract`; the plumbing from
//! `servicekit`.

pub mod feed;
pub mod handshake;
pub mod live;
pub mod metrics;
pub mod page;
mod routes;
mod service;
mod settings;
mod state;
pub mod tally;

pub use routes::router;
pub use service::serve;
pub use settings::{DEFAULT_ADMIN_PORT, Settings};
pub use state::AppState;
