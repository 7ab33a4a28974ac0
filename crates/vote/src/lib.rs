//! The vote service: the web page where visitors pick one of two options.
//!
//! It is the front of the pipeline. Each vote becomes a ballot
//! `{"voter_id":"…","vote":"a","seq":N}` pushed onto the Redis list `votes`
//! (see [`contract::queue`]); the worker stores it and the result service
//! shows it. This service never touches Postgres.
//!
//! - `GET /` renders the page; `POST /` with the form field `vote=a|b`
//!   queues a ballot and renders the page with the choice marked.
//! - A `voter_id` cookie identifies the browser, so a later vote replaces
//!   an earlier one (see [`visitor`]).
//! - With `REDIS_MIN_REPLICAS_ACK`, a vote is answered 200 only once
//!   replicas hold its ballot, confirmed in groups ([`confirm`]).
//! - A vote posted from another site's page is refused with 403 (see
//!   [`servicekit::origin`]); clients that are not browsers may post.
//! - Bad input gets a 4xx page saying what was wrong, and queues nothing.
//!   If Redis is down or slow, the visitor gets a 503 page within
//!   [`QUEUE_TIMEOUT`]; the service stays up and recovers by itself. The
//!   outage is logged when it starts and when it ends (see
//!   [`servicekit::outage`]), not once per refused ballot. The connection is
//!   remade as soon as Redis drops it, and a push that finds it dropped is
//!   sent once more, so the first vote after a Redis restart is accepted.
//!
//! Files: [`settings`](Settings), `state` (the shared state and how a
//! ballot is queued, with [`push`] and [`confirm`]), `routes` (the router
//! and its handlers, with [`form`], [`visitor`] and [`page`]), `service`
//! (the scaffold's [`servicekit::launch::Service`]), `metrics`.
//!
//! Must not depend on: Postgres or sqlx (the vote service never touches the
//! database: `cargo tree -p vote` shows no sqlx), another service's crate,
//! or the test harness outside `[dev-dependencies]`. What it shares with the
//! worker is the ballot and the queue, from `contract`; its plumbing comes
//! from `servicekit`.

pub mod confirm;
pub mod form;
pub mod metrics;
pub mod page;
pub mod push;
mod routes;
mod service;
mod settings;
mod state;
pub mod visitor;

pub use page::{VoteError, VotePageText};
pub use routes::{MAX_FORM_BYTES, router};
pub use service::serve;
pub use settings::{DEFAULT_ADMIN_PORT, Settings};
pub use state::{AppState, QUEUE_TIMEOUT};
