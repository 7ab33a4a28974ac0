//! Following the Redis primary through Sentinel, for the shared handle
//! ([`super::SharedRedis`]): which node it is, and when to ask again.
//!
//! After a command's failure the handle reads the error
//! ([`super::suspicion`]): a node that died or was demoted is dropped and
//! the next command asks the Sentinels where the primary is; a node that
//! may merely be slow, or short of replicas, is checked in the background
//! and left only if the Sentinels name another.
//!
//! # No thundering herd
//!
//! After a primary's death every command in flight fails at once. Only one
//! lookup runs at a time per handle (a lock around the Sentinel client);
//! commands arriving meanwhile wait for it and then use the connection it
//! made. While no primary can be found (for the second or two before the
//! Sentinels promote a replica), a handle asks at most once per
//! [`LOOKUP_GAP`]: commands in between fail at once with the last lookup's
//! error, reported as a refused connection, since nothing was sent. So a
//! process sends the Sentinels at most a handful of lookups a second
//! whatever its traffic, and finds a new primary within [`LOOKUP_GAP`] of
//! its promotion. Each lookup counts in `redis_primary_lookups_total`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, RedisError, RedisResult};

use super::REDIS_TIMEOUT;
use super::failure::{Suspicion, never_sent, suspicion};
use super::redis::{Sentinels, look_up};

/// Shortest time between two lookups of the primary by one handle while
/// none is found.
pub const LOOKUP_GAP: Duration = Duration::from_millis(200);

/// A Sentinel handle's shared state.
pub(super) struct Tracker {
    db: i64,
    /// Held while asking the Sentinels: one lookup at a time.
    lookup: tokio::sync::Mutex<Lookup>,
    /// The connection to the primary, if there is one. Never held across
    /// an await.
    current: Mutex<Option<Current>>,
    /// A background check of a suspect primary is running.
    checking: AtomicBool,
    config: AsyncConnectionConfig,
}

struct Lookup {
    sentinel: SentinelClient,
    /// When the last lookup failed, and why: commands within
    /// [`LOOKUP_GAP`] of it fail with the same error without asking.
    failed: Option<(Instant, String)>,
    /// Connections made so far: each one's number.
    connections: u64,
}

/// The connection to the node last found to be the primary.
#[derive(Clone)]
pub(super) struct Current {
    /// Which connection this is: a failure on an older one changes nothing.
    number: u64,
    addr: String,
    pub(super) conn: MultiplexedConnection,
}

impl Tracker {
    pub(super) fn new(sentinels: Arc<Sentinels>) -> RedisResult<Self> {
        Ok(Tracker {
            db: sentinels.node.db(),
            lookup: tokio::sync::Mutex::new(Lookup {
                sentinel: sentinels.client()?,
                failed: None,
                connections: 0,
            }),
            current: Mutex::new(None),
            checking: AtomicBool::new(false),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT)),
        })
    }

    /// The database the handle's commands go to.
    pub(super) fn db(&self) -> i64 {
        self.db
    }

    fn current(&self) -> Option<Current> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn install(&self, current: Option<Current>) {
        if let Ok(mut slot) = self.current.lock() {
            *slot = current;
        }
    }

    /// The connection to the primary, found first if there is none.
    pub(super) async fn connection(&self) -> RedisResult<Current> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut lookup = self.lookup.lock().await;
        // Another command may have found it while we waited for the lock.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if let Some((at, why)) = &lookup.failed
            && at.elapsed() < LOOKUP_GAP
        {
            return Err(never_sent(why.clone()));
        }
        match self.find(&mut lookup).await {
            Ok(current) => {
                lookup.failed = None;
                tracing::info!(primary = %current.addr, "connected to the Redis primary that Sentinel names");
                self.install(Some(current.clone()));
                Ok(current)
            }
            Err(e) => {
                let why = format!("no Redis primary found through Sentinel: {e}");
                lookup.failed = Some((Instant::now(), why.clone()));
                Err(never_sent(why))
            }
        }
    }

    /// Asks the Sentinels for the primary and connects to it.
    async fn find(&self, lookup: &mut Lookup) -> RedisResult<Current> {
        super::count_primary_lookup();
        let client = look_up(&mut lookup.sentinel).await?;
        let addr = client.get_connection_info().addr().to_string();
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        lookup.connections += 1;
        Ok(Current {
            number: lookup.connections,
            addr,
            conn,
        })
    }

    /// Acts on a command's failure on `on` (see [`suspicion`]).
    pub(super) fn failed(self: &Arc<Self>, on: &Current, e: &RedisError) {
        match suspicion(e) {
            Suspicion::None => {}
            Suspicion::Reconnect => {
                let forgot = match self.current.lock() {
                    Ok(mut slot) if slot.as_ref().is_some_and(|c| c.number == on.number) => {
                        *slot = None;
                        true
                    }
                    _ => false,
                };
                if forgot {
                    tracing::info!(primary = %on.addr, error = %e, "lost the Redis primary; asking Sentinel where it is now");
                }
            }
            Suspicion::Verify => {
                if !self.checking.swap(true, Ordering::AcqRel) {
                    let tracker = self.clone();
                    let number = on.number;
                    tokio::spawn(async move {
                        tracker.check(number).await;
                        tracker.checking.store(false, Ordering::Release);
                    });
                }
            }
        }
    }

    /// Asks the Sentinels whether connection `number` still reaches the
    /// primary; switches to the one they name if not. A failed lookup
    /// leaves the connection in place: it may well be the primary still.
    async fn check(&self, number: u64) {
        let mut lookup = self.lookup.lock().await;
        let Some(current) = self.current().filter(|c| c.number == number) else {
            return;
        };
        if let Some((at, _)) = &lookup.failed
            && at.elapsed() < LOOKUP_GAP
        {
            return;
        }
        super::count_primary_lookup();
        let named = match look_up(&mut lookup.sentinel).await {
            Ok(client) => client,
            Err(e) => {
                lookup.failed = Some((Instant::now(), e.to_string()));
                tracing::debug!(error = %e, "could not check the Redis primary with Sentinel");
                return;
            }
        };
        let addr = named.get_connection_info().addr().to_string();
        if addr == current.addr {
            return;
        }
        match named
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(conn) => {
                lookup.connections += 1;
                tracing::info!(primary = %addr, was = %current.addr, "the Redis primary moved; switched to it");
                self.install(Some(Current {
                    number: lookup.connections,
                    addr,
                    conn,
                }));
            }
            Err(e) => {
                tracing::debug!(error = %e, primary = %addr, "could not connect to the primary Sentinel names");
                self.install(None);
            }
        }
    }
}
