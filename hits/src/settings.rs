//! The hit counter's settings: the original's three environment variables
//! (`REDIS_HOST`, `REDIS_PORT`, `BIND_PORT`), with defaults instead of a
//! crash when they are missing, and the kit's connection caps and admin
//! listener.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::builder::NonEmptyStringValueParser;
use servicekit::settings::{AdminArgs, ConnectionArgs};

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8083;

/// The hit counter's settings: the original's three environment variables,
/// with defaults instead of a crash when they are missing.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Host name or address of the Redis server (in the compose file: `db`).
    #[arg(long, env = "REDIS_HOST", default_value = "redis", value_parser = NonEmptyStringValueParser::new())]
    pub redis_host: String,
    /// TCP port of the Redis server.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// TCP port to serve on.
    #[arg(long, env = "BIND_PORT", default_value_t = 5000)]
    pub bind_port: u16,
    /// Address to serve on (all interfaces, as the original does).
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
}

impl Settings {
    /// Where the hit counter listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.bind_port)
    }

    /// The Redis URL that `REDIS_HOST` and `REDIS_PORT` describe.
    pub fn redis_url(&self) -> String {
        redis_url(&self.redis_host, self.redis_port)
    }
}

/// `redis://host:port`, with an IPv6 address in brackets.
pub fn redis_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("redis://[{host}]:{port}")
    } else {
        format!("redis://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_built_from_host_and_port() {
        assert_eq!(redis_url("db", 6379), "redis://db:6379");
        assert_eq!(redis_url("10.0.0.7", 6380), "redis://10.0.0.7:6380");
        assert_eq!(redis_url("::1", 6379), "redis://[::1]:6379");
        assert_eq!(redis_url("[::1]", 6379), "redis://[::1]:6379");
    }
}
