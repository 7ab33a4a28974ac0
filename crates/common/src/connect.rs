//! Connections to Redis and Postgres that survive the other side being
//! down: at start (compose starts everything at once) and later (restarts).
//!
//! Every handle is *lazy*: a service starts at once, answers 503 (or
//! waits, as the worker does at start) while a store is unreachable and
//! recovers by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::redact_url;

/// How long any single Redis command or connection attempt may take before
/// the caller gets an error (and a web client a 503).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis client for `url` (no connection yet); a bad URL is an error that
/// names `REDIS_URL` without its password.
pub fn redis_client(url: &str) -> anyhow::Result<redis::Client> {
    redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", redact_url(url)))
}

/// A Redis handle that connects on first use and reconnects after errors.
/// Commands fail fast (within [`REDIS_TIMEOUT`]) while Redis is away.
pub fn redis_manager(url: &str) -> anyhow::Result<ConnectionManager> {
    Ok(ConnectionManager::new_lazy_with_config(
        redis_client(url)?,
        manager_config(),
    )?)
}

/// Like [`redis_manager`], but it also reconnects as soon as Redis drops
/// the connection (a restart, a crash), not when the next command fails on
/// the dead one: the connection speaks RESP3, over which redis-rs learns of
/// the disconnect and reconnects in the background (Redis ≥ 6). After a
/// restart, the first command finds a fresh connection, or — if Redis was
/// still down when the manager tried — an error from connecting, so it was
/// never sent ([`was_never_sent`]) and can be retried safely.
pub fn redis_manager_reconnecting_on_drop(url: &str) -> anyhow::Result<ConnectionManager> {
    let info = url
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", redact_url(url)))?;
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(resp3))
        .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", redact_url(url)))?;
    Ok(ConnectionManager::new_lazy_with_config(
        client,
        manager_config(),
    )?)
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
}

/// Whether a failed command certainly never reached Redis: no connection
/// could be made (refused, or no socket file), so nothing was sent. Any
/// other failure — a timeout, a connection lost with the command in flight
/// — leaves open whether Redis ran it.
pub fn was_never_sent(e: &redis::RedisError) -> bool {
    e.is_connection_refusal()
}

/// A Postgres pool that connects on first use; a query waits at most
/// `acquire_timeout` for a connection while Postgres is away.
pub fn pg_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url)
        .map_err(|e| anyhow::anyhow!("invalid DATABASE_URL {}: {e}", redact_url(url)))?;
    Ok(pool)
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

/// PINGs Redis within [`REDIS_TIMEOUT`].
pub async fn ping_redis(conn: &mut ConnectionManager) -> anyhow::Result<()> {
    let pong: String = tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(conn))
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer within {REDIS_TIMEOUT:?}"))??;
    anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong:?}");
    Ok(())
}

/// How long a readiness ping may wait for Postgres.
pub const POSTGRES_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `SELECT 1` on Postgres within [`POSTGRES_PING_TIMEOUT`].
pub async fn ping_postgres(pool: &PgPool) -> anyhow::Result<()> {
    tokio::time::timeout(POSTGRES_PING_TIMEOUT, sqlx::query("SELECT 1").execute(pool))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {POSTGRES_PING_TIMEOUT:?}"))??;
    Ok(())
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
}
