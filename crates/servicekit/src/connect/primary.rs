//! Where the Redis primary is, and the handle every service command goes
//! through, so that a service keeps reaching the primary after Sentinel
//! has replaced it.
//!
//! A service's settings name Redis one of two ways ([`Redis`]):
//!
//! - `REDIS_URL` alone: one Redis at that address, as always. The handle
//!   is redis-rs's `ConnectionManager`, which reconnects to that address
//!   after errors; nothing here changes how it behaves.
//! - `REDIS_SENTINELS` (`host:port,…`) and `REDIS_SENTINEL_MASTER` (the
//!   name the Sentinels monitor): a primary with replicas, which the
//!   Sentinels replace when it dies. `REDIS_URL` then only contributes the
//!   database number and credentials. The handle asks the Sentinels which
//!   node is the primary (redis-rs's `SentinelClient`, which also checks
//!   that the node it names answers `ROLE` as a master and skips one the
//!   Sentinels see as down), connects there, and asks again when a
//!   command's error says the primary may have moved.
//!
//! # Which errors mean the primary moved
//!
//! [`suspicion`] sorts a failed command's error into three kinds:
//!
//! | error | what it says | what the handle does |
//! | --- | --- | --- |
//! | connection refused, reset, broken pipe, end of stream | the node died or restarted | drops the connection; the next command asks the Sentinels |
//! | `READONLY` | the node is now a replica (a demoted old primary) | the same |
//! | `MASTERDOWN`, `LOADING` | the node is a replica cut off from its primary, or still loading its data after a restart | the same |
//! | a response timeout | the node may be hung or gone without a word (a machine lost), or merely slow | keeps the connection, asks the Sentinels in the background, and switches if they name another node |
//! | `NOREPLICAS` | the node cannot see enough replicas to take writes: an isolated old primary, or a primary whose replicas are resyncing | the same |
//! | anything else (`BADSEQ`, `WRONGTYPE`, `NOSCRIPT`, …) | the command itself failed | nothing: the primary is fine |
//!
//! The handle never resends a command: whether that is safe is the
//! caller's call (vote sends a push once more after a dropped connection,
//! the worker retries its whole step).
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

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, ProtocolVersion, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use super::REDIS_TIMEOUT;
use crate::settings::redact_url;

/// Shortest time between two lookups of the primary by one handle while
/// none is found.
pub const LOOKUP_GAP: Duration = Duration::from_millis(200);

/// Where Redis is: one server, or a primary found through Sentinel. Cheap
/// to clone; connects nothing by itself.
#[derive(Debug, Clone)]
pub struct Redis {
    place: Place,
    /// Where, without a password: for logs, never for visitors.
    shown: String,
}

#[derive(Debug, Clone)]
enum Place {
    Url(ConnectionInfo),
    Sentinel(Arc<Sentinels>),
}

/// A primary found through Sentinel.
#[derive(Debug)]
struct Sentinels {
    addrs: Vec<(String, u16)>,
    master: String,
    /// Database and credentials for the data nodes (from `REDIS_URL`).
    node: redis::RedisConnectionInfo,
}

impl Redis {
    /// Redis at `url` (`redis://host:port[/db]`, `redis+unix:///path.sock`);
    /// a bad URL is an error that names `REDIS_URL` without its password.
    pub fn at(url: &str) -> anyhow::Result<Redis> {
        Ok(Redis {
            place: Place::Url(parse_url(url)?),
            shown: redact_url(url),
        })
    }

    /// The primary the Sentinels at `sentinels` (`host:port,host:port,…`)
    /// know as `master`. The database, user and password for the data nodes
    /// come from `url`, whose host is not used.
    pub fn through_sentinels(sentinels: &str, master: &str, url: &str) -> anyhow::Result<Redis> {
        let addrs = parse_sentinels(sentinels)?;
        anyhow::ensure!(
            !master.trim().is_empty(),
            "REDIS_SENTINEL_MASTER is empty: name the primary the Sentinels monitor"
        );
        let node = parse_url(url)?.redis_settings().clone();
        let shown = format!(
            "Sentinel master {master} at {}",
            addrs
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Redis {
            place: Place::Sentinel(Arc::new(Sentinels {
                addrs,
                master: master.trim().to_owned(),
                node,
            })),
            shown,
        })
    }

    /// From the settings: through the Sentinels if both `sentinels` and
    /// `master` are given, else at `url`. One without the other is an error.
    pub fn from_settings(
        url: &str,
        sentinels: Option<&str>,
        master: Option<&str>,
    ) -> anyhow::Result<Redis> {
        match (sentinels, master) {
            (None, None) => Redis::at(url),
            (Some(sentinels), Some(master)) => Redis::through_sentinels(sentinels, master, url),
            (Some(_), None) => {
                anyhow::bail!("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not")
            }
            (None, Some(_)) => {
                anyhow::bail!("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not")
            }
        }
    }

    /// Where Redis is, without a password: for logs.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the primary is found through Sentinel.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.place, Place::Sentinel(_))
    }

    /// A handle for short commands that connects on first use and
    /// reconnects after errors (through Sentinel: to the primary it names
    /// then). Commands fail fast, within [`REDIS_TIMEOUT`], while Redis is
    /// away.
    pub fn manager(&self) -> anyhow::Result<Primary> {
        match &self.place {
            Place::Url(info) => Ok(Primary::from(ConnectionManager::new_lazy_with_config(
                client(info.clone(), &self.shown)?,
                manager_config(),
            )?)),
            Place::Sentinel(sentinels) => Ok(Primary::tracking(sentinels)?),
        }
    }

    /// Like [`Redis::manager`], but with one Redis it also reconnects as
    /// soon as Redis drops the connection (a restart, a crash), not when
    /// the next command fails on the dead one: the connection speaks RESP3,
    /// over which redis-rs learns of the disconnect and reconnects in the
    /// background (Redis ≥ 6). After a restart, the first command finds a
    /// fresh connection, or — if Redis was still down when the manager
    /// tried — an error from connecting, so it was never sent
    /// ([`super::was_never_sent`]) and can be retried safely.
    /// Through Sentinel, the same as [`Redis::manager`]: a dropped
    /// connection is replaced by the next command, after asking where the
    /// primary is.
    pub fn manager_reconnecting_on_drop(&self) -> anyhow::Result<Primary> {
        match &self.place {
            Place::Url(info) => {
                let resp3 = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let info = info.clone().set_redis_settings(resp3);
                Ok(Primary::from(ConnectionManager::new_lazy_with_config(
                    client(info, &self.shown)?,
                    manager_config(),
                )?))
            }
            Place::Sentinel(_) => self.manager(),
        }
    }

    /// A connection of its own to the primary, for a blocking command
    /// (`BLMOVE`): nothing else waits behind it, and its replies may take up
    /// to `response_timeout` (redis-rs would give up after 500 ms). Through
    /// Sentinel, each call asks where the primary is; the caller makes a new
    /// one after any error.
    pub async fn dedicated(
        &self,
        response_timeout: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        let client = match &self.place {
            Place::Url(info) => redis::Client::open(info.clone())?,
            Place::Sentinel(sentinels) => {
                metrics::counter!("redis_primary_lookups_total").increment(1);
                look_up(&mut sentinels.client()?).await?
            }
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

fn parse_url(url: &str) -> anyhow::Result<ConnectionInfo> {
    url.into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid REDIS_URL {}: {e}", redact_url(url)))
}

fn client(info: ConnectionInfo, shown: &str) -> anyhow::Result<redis::Client> {
    redis::Client::open(info).map_err(|e| anyhow::anyhow!("invalid REDIS_URL {shown}: {e}"))
}

/// `host:port,host:port,…` (spaces around entries allowed).
fn parse_sentinels(list: &str) -> anyhow::Result<Vec<(String, u16)>> {
    let addrs =
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (host, port) = entry.rsplit_once(':').ok_or_else(|| {
                    anyhow::anyhow!("REDIS_SENTINELS entry {entry:?} is not host:port")
                })?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                anyhow::ensure!(
                    !host.is_empty(),
                    "REDIS_SENTINELS entry {entry:?} has no host"
                );
                let port: u16 =
                    port.parse().ok().filter(|&p| p != 0).ok_or_else(|| {
                        anyhow::anyhow!("REDIS_SENTINELS entry {entry:?}: bad port")
                    })?;
                Ok((host.to_owned(), port))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        !addrs.is_empty(),
        "REDIS_SENTINELS names no Sentinel (expected host:port,host:port,…)"
    );
    Ok(addrs)
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
}

impl Sentinels {
    /// A client that asks these Sentinels for the primary and connects to
    /// it with the database and credentials from `REDIS_URL`.
    fn client(&self) -> RedisResult<SentinelClient> {
        let sentinels = self
            .addrs
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port))
            .collect();
        SentinelClient::build(
            sentinels,
            self.master.clone(),
            Some(
                SentinelNodeConnectionInfo::default().set_redis_connection_info(self.node.clone()),
            ),
            SentinelServerType::Master,
        )
    }
}

/// Asks the Sentinels for the primary, within [`REDIS_TIMEOUT`]: a client
/// for the node they name, which has answered `ROLE` as a master.
async fn look_up(sentinel: &mut SentinelClient) -> RedisResult<redis::Client> {
    match tokio::time::timeout(REDIS_TIMEOUT, sentinel.async_get_client()).await {
        Ok(found) => found,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the Sentinels named no primary within {REDIS_TIMEOUT:?}"),
        ))),
    }
}

/// What a failed command's error says about the node it was sent to; see
/// the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspicion {
    /// The command failed; the node is fine.
    None,
    /// The node may no longer be the primary: ask, and switch if another is.
    Verify,
    /// The node is gone or no longer the primary: find it again.
    Reconnect,
}

/// How the handle reads a failed command's error; see the module docs.
pub fn suspicion(e: &RedisError) -> Suspicion {
    if e.is_timeout() {
        return Suspicion::Verify;
    }
    if e.is_io_error() || e.is_connection_dropped() {
        return Suspicion::Reconnect;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading,
        ) => Suspicion::Reconnect,
        _ if e.code() == Some("NOREPLICAS") => Suspicion::Verify,
        _ => Suspicion::None,
    }
}

/// Whether `e` says the node that ran the command is not (or no longer)
/// a primary that takes writes — a replica, a node still loading, a
/// primary without enough replicas — so nothing was written and the same
/// command may succeed on the primary a moment later.
pub fn is_not_writable_primary(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    ) || e.code() == Some("NOREPLICAS")
}

/// The handle services send their commands through: cheap to clone, every
/// clone sharing one connection. It implements redis-rs's `ConnectionLike`,
/// so commands, pipelines and scripts run on it as on a connection.
#[derive(Clone)]
pub struct Primary(Handle);

#[derive(Clone)]
enum Handle {
    Plain(ConnectionManager),
    Sentinel(Arc<Tracker>),
}

impl From<ConnectionManager> for Primary {
    /// One Redis at a fixed address (hits, tests).
    fn from(manager: ConnectionManager) -> Self {
        Primary(Handle::Plain(manager))
    }
}

impl Primary {
    fn tracking(sentinels: &Arc<Sentinels>) -> RedisResult<Primary> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        Ok(Primary(Handle::Sentinel(Arc::new(Tracker {
            db: sentinels.node.db(),
            lookup: tokio::sync::Mutex::new(Lookup {
                sentinel: sentinels.client()?,
                failed: None,
                connections: 0,
            }),
            current: Mutex::new(None),
            checking: AtomicBool::new(false),
            config,
            lookups: std::sync::atomic::AtomicU64::new(0),
        }))))
    }

    /// The primary this handle is connected to (`host:port`), if it is a
    /// Sentinel handle with a connection.
    pub fn connected_to(&self) -> Option<String> {
        match &self.0 {
            Handle::Plain(_) => None,
            Handle::Sentinel(tracker) => tracker.current().map(|c| c.addr),
        }
    }

    /// How many times this handle asked the Sentinels for the primary (0
    /// for one Redis).
    pub fn lookups(&self) -> u64 {
        match &self.0 {
            Handle::Plain(_) => 0,
            Handle::Sentinel(tracker) => tracker.lookups.load(Ordering::Relaxed),
        }
    }
}

impl ConnectionLike for Primary {
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
            Handle::Sentinel(tracker) => tracker.db,
        }
    }
}

/// A Sentinel handle's shared state.
struct Tracker {
    db: i64,
    /// Held while asking the Sentinels: one lookup at a time.
    lookup: tokio::sync::Mutex<Lookup>,
    /// The connection to the primary, if there is one. Never held across
    /// an await.
    current: Mutex<Option<Current>>,
    /// A background check of a suspect primary is running.
    checking: AtomicBool,
    config: AsyncConnectionConfig,
    lookups: std::sync::atomic::AtomicU64,
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
struct Current {
    /// Which connection this is: a failure on an older one changes nothing.
    number: u64,
    addr: String,
    conn: MultiplexedConnection,
}

impl Tracker {
    fn current(&self) -> Option<Current> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn install(&self, current: Option<Current>) {
        if let Ok(mut slot) = self.current.lock() {
            *slot = current;
        }
    }

    /// The connection to the primary, found first if there is none.
    async fn connection(&self) -> RedisResult<Current> {
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
        self.lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("redis_primary_lookups_total").increment(1);
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
    fn failed(self: &Arc<Self>, on: &Current, e: &RedisError) {
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
        self.lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("redis_primary_lookups_total").increment(1);
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

/// An error for a command that was never sent because no primary was
/// found: a refused connection, as far as callers are concerned.
fn never_sent(why: String) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> RedisError {
        redis::parse_redis_value(format!("-{code}\r\n").as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    #[test]
    fn sentinel_lists_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_sentinels("a:1, b:26379,,[::1]:3").unwrap(),
            [("a".into(), 1), ("b".into(), 26379), ("::1".into(), 3)]
        );
        for bad in ["", " , ", "a", "a:", ":1", "a:0", "a:99999"] {
            assert!(parse_sentinels(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sentinels_need_a_master_name_and_the_other_way_round() {
        let url = "redis://:pw@ignored:1/3";
        assert!(
            Redis::from_settings(url, None, None)
                .unwrap()
                .shown()
                .contains("***")
        );
        let found = Redis::from_settings(url, Some("h:1,h:2"), Some("voting")).unwrap();
        assert!(found.is_sentinel());
        assert_eq!(found.shown(), "Sentinel master voting at h:1,h:2");
        assert!(Redis::from_settings(url, Some("h:1"), None).is_err());
        assert!(Redis::from_settings(url, None, Some("voting")).is_err());
        assert!(Redis::from_settings(url, Some("h:1"), Some(" ")).is_err());
    }

    #[test]
    fn errors_that_say_the_primary_moved_are_told_apart_from_failed_commands() {
        let io = |kind| RedisError::from(std::io::Error::from(kind));
        use std::io::ErrorKind as Io;
        assert_eq!(suspicion(&io(Io::ConnectionRefused)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::BrokenPipe)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::ConnectionReset)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::UnexpectedEof)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::TimedOut)), Suspicion::Verify);
        assert_eq!(
            suspicion(&server("READONLY You can't write")),
            Suspicion::Reconnect
        );
        assert_eq!(
            suspicion(&server("MASTERDOWN Link down")),
            Suspicion::Reconnect
        );
        assert_eq!(suspicion(&server("LOADING loading")), Suspicion::Reconnect);
        assert_eq!(
            suspicion(&server("NOREPLICAS Not enough")),
            Suspicion::Verify
        );
        for code in [
            "BADSEQ votes:seq",
            "WRONGTYPE x",
            "NOSCRIPT x",
            "ERR x",
            "OOM x",
        ] {
            assert_eq!(suspicion(&server(code)), Suspicion::None, "{code}");
        }
        assert!(is_not_writable_primary(&server("NOREPLICAS Not enough")));
        assert!(is_not_writable_primary(&server("READONLY x")));
        assert!(!is_not_writable_primary(&server("BADSEQ x")));
        assert!(!is_not_writable_primary(&io(Io::BrokenPipe)));
    }
}
