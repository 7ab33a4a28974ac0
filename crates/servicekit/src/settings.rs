//! Settings shared by the services, as `clap` argument groups.
//!
//! Every setting is a flag and an environment variable with a default that
//! fits the compose file, so `docker compose up` needs no configuration and
//! `--help` documents everything. Binaries flatten the groups they need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::Args;

use crate::connect::Redis;
use crate::http::{DEFAULT_MAX_CONNECTIONS, ServeOptions};
use crate::origin::AllowedOrigins;

/// Where a web service listens.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// TCP port to serve on.
    #[arg(long, env = "PORT", default_value_t = 80)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

impl HttpArgs {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }

    /// The server's limits, with these connection caps.
    pub fn serve_options(&self) -> ServeOptions {
        self.connections.serve_options()
    }
}

/// How many HTTP connections a web service serves at once (the hit
/// counter, which names its listener's settings as the original did,
/// flattens this group alone).
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Most HTTP connections served at once; more wait to be accepted. Each
    /// costs up to about 21 KiB: the default fits a 128 MiB memory limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most HTTP connections served at once from one remote address; more
    /// from it are closed when accepted, so one client cannot take every
    /// connection. 0 (the default) is no limit: behind a proxy or a NAT
    /// every client has the same address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 0)]
    pub max_connections_per_address: u32,
}

impl ConnectionArgs {
    /// The defaults: [`DEFAULT_MAX_CONNECTIONS`], no cap per address.
    pub fn new() -> Self {
        ConnectionArgs {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: 0,
        }
    }

    /// The server's limits, with these connection caps.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions::with_max_connections(self.max_connections, self.max_connections_per_address)
    }
}

impl Default for ConnectionArgs {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a service's admin listener listens: `/healthz`, `/readyz` and
/// `/metrics`, for probes and Prometheus, never for visitors (see
/// [`crate::admin`]). `PORT` is the service's default, one per service so
/// that all of them can run on one machine without flags: worker 8080,
/// vote 8081, result 8082, hits 8083.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs<const PORT: u16> {
    /// Port of the admin listener: /healthz, /readyz (with the reason when
    /// not ready) and /metrics.
    #[arg(long, env = "ADMIN_PORT", default_value_t = PORT)]
    pub admin_port: u16,
    /// Address the admin listener binds.
    #[arg(long, env = "ADMIN_BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub admin_bind_address: IpAddr,
}

impl<const PORT: u16> AdminArgs<PORT> {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.admin_bind_address, self.admin_port)
    }

    /// On `addr` instead (tests: loopback, port 0).
    pub fn at(addr: SocketAddr) -> Self {
        AdminArgs {
            admin_port: addr.port(),
            admin_bind_address: addr.ip(),
        }
    }
}

/// Where Redis is: one server at `REDIS_URL`, or, with both Sentinel
/// settings, the primary the Sentinels name (see [`crate::connect::Redis`]).
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// Redis URL (`redis://host:port[/db]`, `redis+unix:///path.sock`).
    /// With Sentinels, only its database number and credentials are used.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://redis:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Sentinels to ask for the Redis primary, comma-separated
    /// `host:port` (needs REDIS_SENTINEL_MASTER). Unset: one Redis at
    /// REDIS_URL.
    #[arg(long, env = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    /// The name the Sentinels monitor the primary under (needs
    /// REDIS_SENTINELS).
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
}

impl RedisArgs {
    /// One Redis at `url` (tests).
    pub fn at(url: impl Into<String>) -> Self {
        RedisArgs {
            redis_url: url.into(),
            redis_sentinels: None,
            redis_sentinel_master: None,
        }
    }

    /// The handle every connection to this Redis comes from; connects
    /// nothing yet. A bad URL or Sentinel list, or only one of the two
    /// Sentinel settings, is an error.
    pub fn handle(&self) -> anyhow::Result<Redis> {
        Redis::from_settings(
            &self.redis_url,
            // An empty variable (a compose file's `${REDIS_SENTINELS:-}`)
            // means unset.
            self.redis_sentinels
                .as_deref()
                .filter(|s| !s.trim().is_empty()),
            self.redis_sentinel_master
                .as_deref()
                .filter(|s| !s.trim().is_empty()),
        )
    }
}

/// Where Postgres is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Postgres URL. The password is never printed.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@db/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// The two choices on the ballot: the names the pages show for `a` and
/// `b`. (The ballot itself only ever carries `a` or `b`: see
/// `contract::Vote`.)
#[derive(Args, Debug, Clone)]
pub struct BallotChoices {
    /// Name of option `a` (not empty).
    #[arg(long, env = "OPTION_A", default_value = "Cats",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub option_a: String,
    /// Name of option `b` (not empty).
    #[arg(long, env = "OPTION_B", default_value = "Dogs",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub option_b: String,
}

/// Which sites' pages may post votes or open the live feed, besides the
/// request's own host (see [`crate::origin`]).
#[derive(Args, Debug, Clone, Default)]
pub struct OriginArgs {
    /// Origins accepted besides the request's own host, comma-separated
    /// (e.g. `https://vote.example.com`): the public addresses of a proxy
    /// that rewrites `Host`.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: AllowedOrigins,
}

/// Hides the password in a URL for logs: `postgres://user:***@host/db`,
/// and a `password=` query parameter if there is one.
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    match url.find("password=") {
        Some(i) => {
            let start = i + "password=".len();
            let end = url[start..].find('&').map_or(url.len(), |j| start + j);
            format!("{}***{}", &url[..start], &url[end..])
        }
        None => url,
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://postgres:secret@db/postgres"),
            "postgres://postgres:***@db/postgres"
        );
        assert_eq!(
            redact_url("redis://:pw@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(redact_url("redis://redis:6379"), "redis://redis:6379");
        assert_eq!(
            redact_url("postgres://u@h/db?password=x"),
            "postgres://u@h/db?password=***"
        );
    }
}
