//! Where Redis is, and every kind of connection a service makes to it.
//!
//! A service's settings name Redis one of two ways
//! ([`RedisArgs`](crate::settings::RedisArgs)):
//!
//! - `REDIS_URL` alone: one Redis at that address, as always. Commands go
//!   through redis-rs's `ConnectionManager`, which reconnects to that
//!   address after errors.
//! - `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`: a primary with
//!   replicas, which the Sentinels replace when it dies. `REDIS_URL` then
//!   only contributes the database number and credentials. Commands go to
//!   the node the Sentinels name (redis-rs's `SentinelClient`, which also
//!   checks that the node answers `ROLE` as a master and skips one the
//!   Sentinels see as down), and the handle follows it ([`super::sentinel`]).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, RedisError, RedisResult,
};

use super::REDIS_TIMEOUT;
use super::shared::SharedRedis;
use crate::settings::RedisArgs;

/// Where Redis is: one server, or a primary found through Sentinel. Cheap
/// to clone; connects nothing by itself.
#[derive(Debug, Clone)]
pub struct Redis {
    place: Place,
    /// Where, without a password: for logs, never for visitors.
    shown: Arc<str>,
}

#[derive(Debug, Clone)]
enum Place {
    Url(ConnectionInfo),
    Sentinel(Arc<Sentinels>),
}

/// A primary found through Sentinel.
#[derive(Debug)]
pub(super) struct Sentinels {
    addrs: Vec<(String, u16)>,
    master: String,
    /// Database and credentials for the data nodes (from `REDIS_URL`).
    pub(super) node: redis::RedisConnectionInfo,
}

impl Redis {
    /// Redis as the settings place it.
    pub fn new(settings: &RedisArgs) -> Redis {
        let shown = settings.to_string().into();
        let place = match settings.sentinels() {
            None => Place::Url(settings.redis_url.info().clone()),
            Some((sentinels, master)) => Place::Sentinel(Arc::new(Sentinels {
                addrs: sentinels.addrs().to_vec(),
                master: master.trim().to_owned(),
                node: settings.redis_url.info().redis_settings().clone(),
            })),
        };
        Redis { place, shown }
    }

    /// One Redis at `url`; a bad URL is an error that names `REDIS_URL`
    /// without its password.
    pub fn at(url: &str) -> anyhow::Result<Redis> {
        Ok(Redis::new(&RedisArgs::at(url)?))
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
    pub fn shared(&self) -> RedisResult<SharedRedis> {
        match &self.place {
            Place::Url(info) => Ok(SharedRedis::from(manager(info.clone())?)),
            Place::Sentinel(sentinels) => SharedRedis::tracking(sentinels.clone()),
        }
    }

    /// Like [`Redis::shared`], but with one Redis it also reconnects as
    /// soon as Redis drops the connection (a restart, a crash), not when
    /// the next command fails on the dead one: the connection speaks RESP3,
    /// over which redis-rs learns of the disconnect and reconnects in the
    /// background (Redis ≥ 6). After a restart, the first command finds a
    /// fresh connection, or — if Redis was still down when the manager
    /// tried — an error from connecting, so it was never sent
    /// ([`super::Sent::Never`]) and can be retried safely. Through
    /// Sentinel, the same as [`Redis::shared`]: a dropped connection is
    /// replaced by the next command, after asking where the primary is.
    pub fn shared_reconnecting_on_drop(&self) -> RedisResult<SharedRedis> {
        match &self.place {
            Place::Url(info) => {
                let resp3 = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                Ok(SharedRedis::from(manager(
                    info.clone().set_redis_settings(resp3),
                )?))
            }
            Place::Sentinel(_) => self.shared(),
        }
    }

    /// A connection of its own to the primary, for a blocking command or a
    /// `WAIT`: nothing else waits behind it, and its replies may take up to
    /// `response_timeout` (redis-rs would give up after 500 ms). Through
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
                super::count_primary_lookup();
                look_up(&mut sentinels.client()?).await?
            }
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// A lazy `ConnectionManager` for `info`, whose commands give up after
/// [`REDIS_TIMEOUT`].
fn manager(info: ConnectionInfo) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(redis::Client::open(info)?, config)
}

impl Sentinels {
    /// A client that asks these Sentinels for the primary and connects to
    /// it with the database and credentials from `REDIS_URL`.
    pub(super) fn client(&self) -> RedisResult<SentinelClient> {
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
pub(super) async fn look_up(sentinel: &mut SentinelClient) -> RedisResult<redis::Client> {
    match tokio::time::timeout(REDIS_TIMEOUT, sentinel.async_get_client()).await {
        Ok(found) => found,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the Sentinels named no primary within {REDIS_TIMEOUT:?}"),
        ))),
    }
}

/// PINGs Redis within [`REDIS_TIMEOUT`].
pub async fn ping_redis(conn: &mut SharedRedis) -> anyhow::Result<()> {
    let pong: String = tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(conn))
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer within {REDIS_TIMEOUT:?}"))??;
    anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinels_are_asked_when_both_settings_name_them() {
        let one = Redis::at("redis://:pw@h:1/3").unwrap();
        assert!(!one.is_sentinel());
        assert_eq!(one.shown(), "redis://:***@h:1/3");
        let args = RedisArgs {
            redis_sentinels: Some(crate::settings::SentinelList::parse("h:1,h:2").unwrap()),
            redis_sentinel_master: Some("voting".into()),
            ..RedisArgs::at("redis://:pw@ignored:1/3").unwrap()
        };
        let through = Redis::new(&args);
        assert!(through.is_sentinel());
        assert_eq!(through.shown(), "Sentinel master voting at h:1,h:2");
    }
}
