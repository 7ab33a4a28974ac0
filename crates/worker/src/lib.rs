//! The worker: takes ballots off the Redis list `votes` and stores each
//! voter's latest choice in the Postgres table `votes`.
//!
//! It is the middle of the pipeline (vote → Redis → **worker** → Postgres →
//! result) and the only writer of our schema, which it creates itself
//! ([`schema`]). Its promises:
//!
//! - **Nothing is lost.** A ballot leaves Redis only after its row is
//!   committed: batches wait in a processing list owned by this worker
//!   until Postgres has them (see [`queue`]). A worker killed mid-batch
//!   finds its batch again when it restarts; if it never comes back, a live
//!   worker moves the batch back to the head of the queue once its
//!   heartbeat lapses.
//! - **The latest ballot wins**, also with several workers: ballots carry a
//!   `seq` stamped by the vote service and a row is only replaced by a
//!   higher one (see [`store`]), which also makes a replayed batch a no-op.
//! - **Poison never blocks the queue**: payloads that are not ballots go to
//!   `votes:dead` with the reason (see [`batch`]), in letters of bounded
//!   size in a list of bounded length ([`dead_letter`]).
//! - **Bounded memory, whatever is queued**: no entry over the ballot limit
//!   ever leaves Redis whole (see [`queue`] and [`waiter`]), so a pushed
//!   entry of any size cannot take a worker's memory.
//! - **Fast**: under load, one claim takes up to `BATCH_SIZE` ballots in one
//!   round trip and one statement stores them; when idle it blocks on the
//!   queue instead of polling.
//!
//! The loop is built from [`Worker::step`], which does exactly one unit of
//! work and says what happened; the worker's own start-up (schema,
//! registering, the `seq` counter) comes before it, and [`serve`] (in
//! `service`, with the worker's [`servicekit::launch::Service`]
//! implementation) adds the heartbeat task (`heartbeat`), the admin
//! listener and a clean stop around it.
//!
//! Modules: [`queue`] (claiming, acknowledging, heartbeats: the worker's
//! Redis keys), [`waiter`] (the blocking wait on an empty queue),
//! [`batch`] (parsing a batch), [`dead_letter`] (what is kept of an entry
//! that is not a ballot, and how much), [`store`] (the
//! upsert into Postgres), [`schema`] (migrations, and telling a Postgres
//! that is not up yet from a migration that failed), [`summary`] (the
//! periodic INFO line), `settings` ([`Settings`]), `worker` ([`Worker`]
//! and its step, with its start-up), `heartbeat`, `service` (the service
//! around the step loop), `metrics`.
//!
//! At INFO it logs what an operator acts on — start and stop, outages,
//! takeovers, the first dead letter of an interval — and one [`summary`]
//! line per `SUMMARY_SECONDS` while it works; each batch is a DEBUG line.
//!
//! Must not depend on: another service's crate or the test harness outside
//! `[dev-dependencies]`. The ballot, the shared queue keys, the enqueue
//! script's counter and the migrations come from `contract`; everything only
//! the worker uses (its Redis keys, dead letters, start-up waits) stays here.

pub mod batch;
pub mod dead_letter;
mod heartbeat;
pub mod metrics;
pub mod queue;
pub mod schema;
mod service;
mod settings;
pub mod store;
pub mod summary;
pub mod waiter;
mod worker;

pub use service::serve;
pub use settings::{DEFAULT_ADMIN_PORT, Settings};
pub use worker::{BatchReport, Outcome, StepError, Worker};
