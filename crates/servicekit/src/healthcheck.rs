//! The `healthcheck` subcommand of every service binary: container images
//! need no curl to check a service, and the check asks the same admin
//! listener the orchestrators' probes and Prometheus use.
//!
//! `<binary> healthcheck` exits 0 when the service is ready (`/readyz`:
//! the stores it needs answer), 1 with the reason on stderr otherwise;
//! `--live` asks only whether the process answers (`/healthz`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// How long the check waits for an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The subcommand's flags.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Healthcheck {
    /// Only check that the process answers (`/healthz`), not its stores
    /// (`/readyz`): for orchestrators that restart unhealthy containers,
    /// where restarting would not bring a store back.
    #[arg(long)]
    pub live: bool,
}

impl Healthcheck {
    /// The endpoint the check asks.
    pub fn path(self) -> &'static str {
        if self.live { "/healthz" } else { "/readyz" }
    }

    /// Asks the service `name`, whose admin listener listens on `admin`;
    /// exit 0 on a 2xx answer, else 1 with the reason on stderr.
    pub async fn run(self, name: &str, admin: SocketAddr) -> ExitCode {
        match ask(admin, self.path()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name} healthcheck failed: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Asks the service listening on `listen` for `path`; succeeds only on a
/// 2xx answer within five seconds. A service bound to every interface
/// (`0.0.0.0`, `::`) is asked on loopback.
pub async fn ask(listen: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let check = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = axum::http::Request::get(path)
            .header("host", addr.to_string())
            .body(axum::body::Body::empty())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "{path} answered {status}");
        anyhow::Ok(())
    };
    tokio::time::timeout(ANSWER_WITHIN, check)
        .await
        .map_err(|_| anyhow::anyhow!("{path} did not answer within {ANSWER_WITHIN:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Probe, router};

    /// Serves the admin endpoints on `bind` (port 0); returns the address.
    async fn serve_admin(bind: &str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(Probe::nothing())).await });
        addr
    }

    #[tokio::test]
    async fn the_healthcheck_asks_the_address_the_service_listens_on() {
        // A service bound to one address only is asked there.
        let own = serve_admin("127.0.0.2:0").await;
        ask(own, "/healthz").await.unwrap();
        // A service bound to every interface is asked on loopback.
        let everywhere = serve_admin("127.0.0.1:0").await;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], everywhere.port()));
        ask(unspecified, "/healthz").await.unwrap();
        // Nothing there: a clear failure.
        let error = ask(own, "/nope").await.unwrap_err().to_string();
        assert!(error.contains("404"), "{error}");
    }
}
