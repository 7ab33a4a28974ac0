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

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, ProtocolVersion};

use crate::settings::redact_url;

/// How long any single Redis command or connection attempt may take before
/// the caller gets an error (and a web client a 503).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Where Redis is, and the connections a service makes to it. Cheap to
/// clone; connects nothing by itself.
#[derive(Debug, Clone)]
pub struct Redis {
    info: ConnectionInfo,
    /// The URL without its password, for logs and errors.
    shown: String,
}

impl Redis {
    /// Redis at `url` (`redis://host:port[/db]`, `redis+unix:///path.sock`);
    /// a bad URL is an error that names `REDIS_URL` without its password.
    pub fn at(url: &str) -> anyhow::Result<Redis> {
        let info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", redact_url(url)))?;
        Ok(Redis {
            info,
            shown: redact_url(url),
        })
    }

    /// Where Redis is, without a password: for logs, never for visitors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn client(&self, info: ConnectionInfo) -> anyhow::Result<redis::Client> {
        redis::Client::open(info)
            .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", self.shown))
    }

    /// A handle for short commands that connects on first use and
    /// reconnects after errors. Commands fail fast (within
    /// [`REDIS_TIMEOUT`]) while Redis is away.
    pub fn manager(&self) -> anyhow::Result<ConnectionManager> {
        Ok(ConnectionManager::new_lazy_with_config(
            self.client(self.info.clone())?,
            manager_config(),
        )?)
    }

    /// Like [`Redis::manager`], but it also reconnects as soon as Redis
    /// drops the connection (a restart, a crash), not when the next command
    /// fails on the dead one: the connection speaks RESP3, over which
    /// redis-rs learns of the disconnect and reconnects in the background
    /// (Redis ≥ 6). After a restart, the first command finds a fresh
    /// connection, or — if Redis was still down when the manager tried — an
    /// error from connecting, so it was never sent ([`was_never_sent`]) and
    /// can be retried safely.
    pub fn manager_reconnecting_on_drop(&self) -> anyhow::Result<ConnectionManager> {
        let resp3 = self
            .info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        Ok(ConnectionManager::new_lazy_with_config(
            self.client(self.info.clone().set_redis_settings(resp3))?,
            manager_config(),
        )?)
    }

    /// A connection of its own, for a blocking command (`BLMOVE`): nothing
    /// else waits behind it, and its replies may take up to
    /// `response_timeout` (redis-rs would give up after 500 ms).
    pub async fn dedicated(
        &self,
        response_timeout: Duration,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        redis::Client::open(self.info.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
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

/// PINGs Redis within [`REDIS_TIMEOUT`].
pub async fn ping_redis(conn: &mut ConnectionManager) -> anyhow::Result<()> {
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
