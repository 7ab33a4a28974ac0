//! Health, readiness and metrics endpoints, and the `healthcheck`
//! subcommand that lets container images check themselves without curl.
//!
//! - `GET /healthz` — the process is alive and serving: always 200.
//! - `GET /readyz` — the stores this service needs answer: 200, or 503
//!   naming what is down.
//! - `GET /metrics` — Prometheus text format.
//!
//! The exporter keeps every raw histogram sample until its upkeep folds
//! them into buckets. Installed the way we install it (so `/metrics` can be
//! served from our own router), the exporter leaves that upkeep to us: the
//! recorder comes with a thread that runs it every
//! [`METRICS_UPKEEP_INTERVAL`], whether or not anyone scrapes. Without it a
//! busy service keeps about 20 bytes per request for good.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use redis::aio::ConnectionManager;

use crate::connect::ping_redis;

/// What `/readyz` checks: whichever stores the service uses.
#[derive(Clone, Default)]
pub struct Probe {
    redis: Option<ConnectionManager>,
    #[cfg(feature = "postgres")]
    postgres: Option<sqlx::PgPool>,
}

impl Probe {
    /// Checks nothing: always ready.
    pub fn nothing() -> Self {
        Probe::default()
    }

    /// Also checks that Redis answers a PING on `conn`.
    pub fn redis(mut self, conn: ConnectionManager) -> Self {
        self.redis = Some(conn);
        self
    }

    /// Also checks that Postgres answers `SELECT 1` on `pool`.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, pool: sqlx::PgPool) -> Self {
        self.postgres = Some(pool);
        self
    }

    /// `Ok` when every configured store answers; otherwise what failed.
    pub async fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(redis) = &self.redis
            && let Err(e) = ping_redis(&mut redis.clone()).await
        {
            problems.push(format!("redis: {e}"));
        }
        #[cfg(feature = "postgres")]
        if let Some(pool) = &self.postgres
            && let Err(e) = crate::connect::ping_postgres(pool).await
        {
            problems.push(format!("postgres: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// How often the recorder's histogram samples are folded into their
/// buckets. Between two upkeeps a service holds the samples of this many
/// seconds of traffic (about 16 bytes each).
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use together
/// with the thread that keeps its memory bounded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = install_recorder();
            keep_up(handle.clone(), METRICS_UPKEEP_INTERVAL);
            handle
        })
        .clone()
}

/// Installs the global recorder with our histogram buckets.
fn install_recorder() -> PrometheusHandle {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let sizes = [
        1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes));
    match builder {
        Ok(builder) => match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (only possible in tests):
            // keep a private one so rendering still works.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        },
        // Bucket lists above are non-empty constants, so this cannot
        // happen; fall back to summaries rather than panic.
        Err(_) => PrometheusBuilder::new().build_recorder().handle(),
    }
}

/// Runs the exporter's upkeep every `interval` for as long as the process
/// lives. A plain thread rather than a task: the recorder is process-wide
/// and outlives any runtime (tests start one per test), and the upkeep
/// neither awaits nor needs stopping.
///
/// The exporter's sample buffers free drained blocks through
/// `crossbeam-epoch`'s deferred reclamation, which only makes progress when
/// threads pin the epoch, i.e. when samples are recorded. Once traffic
/// stops, the last interval's samples would stay allocated until the next
/// burst; advancing the epoch here (each flush moves it on by at most one
/// step, and garbage is freed two steps after it was retired) frees them
/// now.
fn keep_up(handle: PrometheusHandle, interval: Duration) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                handle.run_upkeep();
                for _ in 0..3 {
                    crossbeam_epoch::pin().flush();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metrics upkeep; histogram samples will pile up until /metrics is scraped");
    }
}

/// `/healthz`, `/readyz` and `/metrics`, ready to merge into a service's
/// router (or to serve alone on an admin port).
pub fn routes<S>(probe: Probe) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let handle = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(probe))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { handle.render() }
            }),
        )
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    match probe.check().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// The `healthcheck` subcommand: asks this service, listening on `listen`,
/// for `path` and succeeds only on a 2xx answer within five seconds. A
/// service bound to every interface (`0.0.0.0`, `::`) is asked on loopback.
pub async fn healthcheck(listen: std::net::SocketAddr, path: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
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
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .map_err(|_| anyhow::anyhow!("{path} did not answer within 5s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `/healthz` on `bind` (port 0); returns the bound address.
    async fn serve_health(bind: &str) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router: Router = routes(Probe::nothing());
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    #[tokio::test]
    async fn the_healthcheck_asks_the_address_the_service_listens_on() {
        // A service bound to one address only is asked there.
        let own = serve_health("127.0.0.2:0").await;
        healthcheck(own, "/healthz").await.unwrap();
        // A service bound to every interface is asked on loopback.
        let everywhere = serve_health("127.0.0.1:0").await;
        let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], everywhere.port()));
        healthcheck(unspecified, "/healthz").await.unwrap();
        // Nothing there: a clear failure.
        let error = healthcheck(own, "/nope").await.unwrap_err().to_string();
        assert!(error.contains("404"), "{error}");
    }
}
