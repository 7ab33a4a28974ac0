//! Postgres: a lazy pool, and its readiness ping.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::settings::DatabaseUrl;

/// A Postgres pool that connects on first use; a query waits at most
/// `acquire_timeout` for a connection while Postgres is away.
pub fn pg_pool(url: &DatabaseUrl, max_connections: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(url.options().clone())
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
