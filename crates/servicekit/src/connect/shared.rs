//! The handle every short command of a service goes through: one
//! connection, shared by every clone, remade after failures — to the one
//! Redis at `REDIS_URL`, or to whichever node the Sentinels name as the
//! primary ([`super::sentinel`]).
//!
//! The handle never resends a command: whether that is safe is the
//! caller's call (read with [`super::sent`]; vote sends a push once more
//! after a dropped connection, the worker retries its whole step).

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::redis::Sentinels;
use super::sentinel::Tracker;

/// Commands to Redis on one shared connection: cheap to clone, every clone
/// sharing it. It implements redis-rs's `ConnectionLike`, so commands,
/// pipelines and scripts run on it as on a connection.
#[derive(Clone)]
pub struct SharedRedis(Handle);

#[derive(Clone)]
enum Handle {
    Plain(ConnectionManager),
    Sentinel(Arc<Tracker>),
}

impl From<ConnectionManager> for SharedRedis {
    /// One Redis at a fixed address.
    fn from(manager: ConnectionManager) -> Self {
        SharedRedis(Handle::Plain(manager))
    }
}

impl SharedRedis {
    /// A handle that follows the primary the Sentinels name.
    pub(super) fn tracking(sentinels: Arc<Sentinels>) -> RedisResult<SharedRedis> {
        Ok(SharedRedis(Handle::Sentinel(Arc::new(Tracker::new(
            sentinels,
        )?))))
    }
}

impl ConnectionLike for SharedRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Handle::Plain(manager) => manager.req_packed_command(cmd),
            Handle::Sentinel(tracker) => Box::pin(async move {
                let mut current = tracker.connection().await?;
                let result = current.conn.req_packed_command(cmd).await;
                if let Err(e) = &result {
                    tracker.failed(&current, e);
                }
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Handle::Plain(manager) => manager.req_packed_commands(cmd, offset, count),
            Handle::Sentinel(tracker) => Box::pin(async move {
                let mut current = tracker.connection().await?;
                let result = current.conn.req_packed_commands(cmd, offset, count).await;
                match &result {
                    Err(e) => tracker.failed(&current, e),
                    // A pipeline's server errors come back as values.
                    Ok(values) => {
                        for value in values {
                            if let Value::ServerError(e) = value {
                                tracker.failed(&current, &RedisError::from(e.clone()));
                            }
                        }
                    }
                }
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Handle::Plain(manager) => manager.get_db(),
            Handle::Sentinel(tracker) => tracker.db(),
        }
    }
}
