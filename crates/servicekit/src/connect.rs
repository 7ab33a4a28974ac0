//! Connections to Redis and Postgres that survive the other side being
//! down: at start (compose starts everything at once) and later (restarts).
//!
//! Every handle is *lazy*: a service starts at once, answers 503 (or, like
//! the worker at start, waits) while a store is unreachable, and recovers
//! by itself.
//!
//! A service reaches Redis through one [`Redis`] handle, made from its
//! settings ([`RedisArgs::handle`](crate::settings::RedisArgs::handle)):
//! every kind of connection a service needs comes from it, so how Redis is
//! found is decided in one place. Postgres (the `postgres` feature) is a
//! lazy pool ([`pg_pool`]).

use std::time::Duration;

mod primary;

pub use primary::{LOOKUP_GAP, Primary, Redis, Suspicion, is_not_writable_primary, suspicion};

#[cfg(feature = "postgres")]
use crate::settings::redact_url;

/// How long any single Redis command or connection attempt may take before
/// the caller gets an error (and a web client a 503).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a failed command certainly never reached Redis: no connection
/// could be made (refused, or no socket file), so nothing was sent. Any
/// other failure — a timeout, a connection lost with the command in flight
/// — leaves open whether Redis ran it.
pub fn was_never_sent(e: &redis::RedisError) -> bool {
    e.is_connection_refusal()
}

/// PINGs Redis within [`REDIS_TIMEOUT`].
pub async fn ping_redis(conn: &mut Primary) -> anyhow::Result<()> {
    let pong: String = tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(conn))
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer within {REDIS_TIMEOUT:?}"))??;
    anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong:?}");
    Ok(())
}

/// A Postgres pool that connects on first use; a query waits at most
/// `acquire_timeout` for a connection while Postgres is away.
#[cfg(feature = "postgres")]
pub fn pg_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<sqlx::PgPool> {
    // sqlx reads any scheme as Postgres's, so a `mysql://` URL would be
    // tried (and retried) as one.
    anyhow::ensure!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "invalid DATABASE_URL {}: not a postgres:// URL",
        redact_url(url)
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url)
        .map_err(|e| anyhow::anyhow!("invalid DATABASE_URL {}: {e}", redact_url(url)))?;
    Ok(pool)
}

/// How long a readiness ping may wait for Postgres.
#[cfg(feature = "postgres")]
pub const POSTGRES_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `SELECT 1` on Postgres within [`POSTGRES_PING_TIMEOUT`].
#[cfg(feature = "postgres")]
pub async fn ping_postgres(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    tokio::time::timeout(POSTGRES_PING_TIMEOUT, sqlx::query("SELECT 1").execute(pool))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {POSTGRES_PING_TIMEOUT:?}"))??;
    Ok(())
}

/// Delays between retries: from 100 ms, doubling after each failure, up to
/// `max`; back to 100 ms after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    pub fn up_to(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST.min(max),
            max,
        }
    }

    /// The delay before the next retry; the one after will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }

    /// Starts again from the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_starts_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::up_to(Duration::from_secs(2));
        let delays: Vec<_> = (0..7).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                ms(2000)
            ]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
        assert_eq!(Backoff::up_to(ms(50)).next_delay(), ms(50));
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let error = Redis::at("redis://:secret@host:notaport")
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_URL"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(
            Redis::at("redis://:pw@h:1/0").unwrap().shown(),
            "redis://:***@h:1/0"
        );
    }
}
