//! Where Redis is, as settings: `REDIS_URL`, or the Sentinels that name the
//! primary (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`). Each value is
//! parsed when the command line is, so a bad one stops the service at
//! start with clap's message naming the variable; connecting
//! ([`crate::connect::Redis`]) takes the parsed values and cannot fail on
//! them.

use std::fmt;

use clap::Args;
use clap::builder::NonEmptyStringValueParser;
use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::redact::redact_url;

/// Where Redis is: one server at `REDIS_URL`, or, with both Sentinel
/// settings, the primary the Sentinels name.
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// Redis URL (`redis://host:port[/db]`, `redis+unix:///path.sock`).
    /// With Sentinels, only its database number and credentials are used.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://redis:6379",
        hide_env_values = true,
        value_parser = RedisUrl::parse
    )]
    pub redis_url: RedisUrl,
    /// Sentinels to ask for the Redis primary, comma-separated
    /// `host:port` (needs REDIS_SENTINEL_MASTER). Unset: one Redis at
    /// REDIS_URL.
    #[arg(long, env = "REDIS_SENTINELS", value_parser = SentinelList::parse,
          requires = "redis_sentinel_master")]
    pub redis_sentinels: Option<SentinelList>,
    /// The name the Sentinels monitor the primary under (needs
    /// REDIS_SENTINELS).
    #[arg(long, env = "REDIS_SENTINEL_MASTER", value_parser = NonEmptyStringValueParser::new(),
          requires = "redis_sentinels")]
    pub redis_sentinel_master: Option<String>,
}

impl RedisArgs {
    /// One Redis at `url`; an error names `REDIS_URL` without its password.
    pub fn at(url: &str) -> anyhow::Result<Self> {
        Ok(RedisArgs {
            redis_url: RedisUrl::parse(url).map_err(anyhow::Error::msg)?,
            redis_sentinels: None,
            redis_sentinel_master: None,
        })
    }

    /// The primary the Sentinels at `sentinels` (`host:port,…`) name
    /// `master`; `url` gives the database number and credentials.
    pub fn through_sentinels(sentinels: &str, master: &str, url: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(!master.trim().is_empty(), "REDIS_SENTINEL_MASTER is empty");
        Ok(RedisArgs {
            redis_sentinels: Some(SentinelList::parse(sentinels).map_err(anyhow::Error::msg)?),
            redis_sentinel_master: Some(master.to_owned()),
            ..RedisArgs::at(url)?
        })
    }

    /// The Sentinels and the master name, if both are set (clap makes sure
    /// neither comes alone).
    pub fn sentinels(&self) -> Option<(&SentinelList, &str)> {
        self.redis_sentinels
            .as_ref()
            .zip(self.redis_sentinel_master.as_deref())
    }
}

/// For the start-up log: where Redis is, without a password.
impl fmt::Display for RedisArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sentinels() {
            Some((sentinels, master)) => write!(f, "Sentinel master {master} at {sentinels}"),
            None => f.write_str(&self.redis_url.shown),
        }
    }
}

/// A Redis URL, parsed; shown without its password.
#[derive(Debug, Clone)]
pub struct RedisUrl {
    info: ConnectionInfo,
    shown: String,
}

impl RedisUrl {
    /// Parses a `redis://`, `rediss://` or `redis+unix://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = redact_url(url);
        let info = url
            .into_connection_info()
            .map_err(|e| format!("invalid REDIS_URL {shown}: {e}"))?;
        // The client checks what the URL alone cannot (a scheme this build
        // does not speak).
        redis::Client::open(info.clone()).map_err(|e| format!("invalid REDIS_URL {shown}: {e}"))?;
        Ok(RedisUrl { info, shown })
    }

    /// Where and how to connect.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The URL without its password, for logs.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `host:port,host:port,…` (spaces around entries allowed), at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelList(Vec<(String, u16)>);

impl SentinelList {
    pub fn parse(list: &str) -> Result<Self, String> {
        let addrs = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (host, port) = entry
                    .rsplit_once(':')
                    .ok_or_else(|| format!("entry {entry:?} is not host:port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(format!("entry {entry:?} has no host"));
                }
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("entry {entry:?}: bad port"))?;
                Ok((host.to_owned(), port))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if addrs.is_empty() {
            return Err("names no Sentinel (expected host:port,host:port,…)".to_owned());
        }
        Ok(SentinelList(addrs))
    }

    /// Each Sentinel's host and port.
    pub fn addrs(&self) -> &[(String, u16)] {
        &self.0
    }
}

impl fmt::Display for SentinelList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        f.write_str(&all.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_lists_are_parsed_and_bad_ones_named() {
        assert_eq!(
            SentinelList::parse("a:1, b:26379,,[::1]:3")
                .unwrap()
                .addrs(),
            [("a".into(), 1), ("b".into(), 26379), ("::1".into(), 3)]
        );
        for bad in ["", " , ", "a", "a:", ":1", "a:0", "a:99999"] {
            assert!(SentinelList::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let error = RedisUrl::parse("redis://:secret@host:notaport").unwrap_err();
        assert!(error.contains("REDIS_URL"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(
            RedisUrl::parse("redis://:pw@h:1/0").unwrap().to_string(),
            "redis://:***@h:1/0"
        );
    }
}
