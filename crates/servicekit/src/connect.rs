//! Connections to Redis and Postgres that survive the other side being
//! down: at start (compose starts everything at once) and later (restarts,
//! failovers).
//!
//! Every handle is *lazy*: a service starts at once, answers 503 (or, like
//! the worker at start, waits) while a store is unreachable, and recovers
//! by itself.
//!
//! - Redis (the `redis` feature): [`Redis`] says where Redis is (one
//!   server, or the primary the Sentinels name) and makes every kind of
//!   connection a service needs: the shared handle for short commands
//!   ([`SharedRedis`], which follows a Sentinel failover:
//!   [`sentinel`](self::sentinel)) and dedicated connections for blocking
//!   commands. What a failed command means — did it run, did the primary
//!   move — is read in one place: [`sent`], [`suspicion`].
//! - Postgres (the `postgres` feature): a lazy pool ([`pg_pool`]) and its
//!   readiness ping.
//!
//! Connecting takes settings already parsed ([`crate::settings`]); it
//! never reads raw strings.

use std::time::Duration;

#[cfg(feature = "redis")]
mod failure;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub mod sentinel;
#[cfg(feature = "redis")]
mod shared;

#[cfg(feature = "redis")]
pub use self::redis::{Redis, ping_redis};
#[cfg(feature = "redis")]
pub use failure::{
    Sent, Suspicion, is_not_writable_primary, is_out_of_memory, never_sent, sent, suspicion,
};
#[cfg(feature = "postgres")]
pub use postgres::{POSTGRES_PING_TIMEOUT, pg_pool, ping_postgres};
#[cfg(feature = "redis")]
pub use sentinel::LOOKUP_GAP;
#[cfg(feature = "redis")]
pub use shared::SharedRedis;

/// How long any single Redis command or connection attempt may take before
/// the caller gets an error (and a web client a 503).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts one lookup of the Redis primary through Sentinel.
#[cfg(feature = "redis")]
fn count_primary_lookup() {
    ::metrics::counter!(crate::metric::REDIS_PRIMARY_LOOKUPS.name).increment(1);
}
