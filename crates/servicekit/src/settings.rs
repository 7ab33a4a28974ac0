//! Settings shared by the services, as `clap` argument groups.
//!
//! Every setting is a flag and an environment variable with a default that
//! fits the compose file, so `docker compose up` needs no configuration and
//! `--help` documents everything. Binaries flatten the groups they need.
//! Every value is parsed here, once, when the command line is: a bad one
//! stops the binary at start with a message naming its variable, and code
//! further in takes the parsed value.
//!
//! The stores' groups are behind the features that bring their clients:
//! [`RedisArgs`] (`redis`) and [`DatabaseArgs`] (`postgres`).

#[cfg(feature = "postgres")]
mod database_args;
#[cfg(feature = "redis")]
mod redis_args;

#[cfg(feature = "postgres")]
pub use database_args::{DatabaseArgs, DatabaseUrl};
#[cfg(feature = "redis")]
pub use redis_args::{RedisArgs, RedisUrl, SentinelList};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

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
    /// Seconds the service keeps accepting and serving after SIGTERM, its
    /// readiness probe (/servingz) answering 503, before it closes its
    /// listener and drains: time for load balancers to stop sending it new
    /// connections. Ctrl-C skips it; a second signal cuts it short. 0:
    /// drain at once.
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = DEFAULT_SHUTDOWN_DELAY_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_delay_seconds: u64,
}

/// The drain delay unless configured (`SHUTDOWN_DELAY_SECONDS`): long
/// enough for kube-proxy and Swarm's routing mesh to take a stopping
/// replica out of rotation (usually one to two seconds), short enough to
/// keep a rollout quick.
pub const DEFAULT_SHUTDOWN_DELAY_SECONDS: u64 = 5;

impl HttpArgs {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }

    /// The server's limits, with these connection caps.
    pub fn serve_options(&self) -> ServeOptions {
        self.connections.serve_options()
    }

    /// How long the service keeps serving after SIGTERM before it drains.
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_seconds)
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
    // `default_value`, not `default_value_t`: clap's derive keeps the
    // latter's text in a static that every `PORT` would share, so a process
    // building several services' commands (the docs test) saw one port.
    #[arg(long, env = "ADMIN_PORT", default_value = PortText::<PORT>::TEXT)]
    pub admin_port: u16,
    /// Address the admin listener binds.
    #[arg(long, env = "ADMIN_BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub admin_bind_address: IpAddr,
}

/// `PORT` in decimal, as a `&'static str` made at compile time.
struct PortText<const PORT: u16>;

impl<const PORT: u16> PortText<PORT> {
    /// The digits, right-aligned, and how many of the 5 places they use.
    const DIGITS: ([u8; 5], usize) = {
        let mut digits = [b'0'; 5];
        let (mut n, mut i, mut used) = (PORT, 5, 0);
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            used += 1;
            if n == 0 {
                break;
            }
        }
        (digits, used)
    };
    const TEXT: &'static str =
        match std::str::from_utf8(Self::DIGITS.0.split_at(5 - Self::DIGITS.1).1) {
            Ok(text) => text,
            Err(_) => panic!("ASCII digits are UTF-8"),
        };
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

#[cfg(test)]
mod port_text_tests {
    use super::PortText;

    #[test]
    fn ports_are_written_in_decimal() {
        assert_eq!(PortText::<0>::TEXT, "0");
        assert_eq!(PortText::<8080>::TEXT, "8080");
        assert_eq!(PortText::<65535>::TEXT, "65535");
    }
}
