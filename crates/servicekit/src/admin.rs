//! The admin listener every service runs beside its public one, and the
//! health and metrics endpoints.
//!
//! On the admin listener (`ADMIN_PORT`, `ADMIN_BIND_ADDRESS`; see
//! [`AdminArgs`](crate::settings::AdminArgs)), for probes and Prometheus:
//!
//! - `GET /healthz` — the process is alive and serving: always 200.
//! - `GET /readyz` — the stores this service needs answer: 200, or 503
//!   naming what is down and why (addresses and errors included: this
//!   port is for operators).
//! - `GET /metrics` — Prometheus text format.
//!
//! The public listener of a web service answers `/healthz` and `/readyz`
//! too ([`public_routes`]), for load balancers that probe the port they
//! send traffic to, but its `/readyz` says only "ready" or "not ready": the
//! reason names internal addresses. `/metrics` is never public.
//!
//! The exporter keeps every raw histogram sample until its upkeep folds
//! them into buckets. Installed the way we install it (so `/metrics` can be
//! served from our own router), the exporter leaves that upkeep to us: the
//! recorder comes with a thread that runs it every
//! [`METRICS_UPKEEP_INTERVAL`], whether or not anyone scrapes. Without it a
//! busy service keeps about 20 bytes per request for good.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::ServeOptions;

/// What `/readyz` checks: whichever stores the service uses.
#[derive(Clone, Default)]
pub struct Probe {
    #[cfg(feature = "redis")]
    redis: Option<crate::connect::SharedRedis>,
    #[cfg(feature = "postgres")]
    postgres: Option<sqlx::PgPool>,
}

impl Probe {
    /// Checks nothing: always ready.
    pub fn nothing() -> Self {
        Probe::default()
    }

    /// Also checks that Redis answers a PING on `conn`.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, conn: crate::connect::SharedRedis) -> Self {
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
        let problems: Vec<String> = [self.redis_problem().await, self.postgres_problem().await]
            .into_iter()
            .flatten()
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    async fn redis_problem(&self) -> Option<String> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis
            && let Err(e) = crate::connect::ping_redis(&mut redis.clone()).await
        {
            return Some(format!("redis: {e}"));
        }
        None
    }

    async fn postgres_problem(&self) -> Option<String> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = &self.postgres
            && let Err(e) = crate::connect::ping_postgres(pool).await
        {
            return Some(format!("postgres: {e}"));
        }
        None
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
    // How long work waited in a queue before it was done: from
    // milliseconds (an idle pipeline) to minutes (a backlog), so a p99
    // above the latency buckets' 5 s is still a number.
    let waits = [
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    // The exporter tries suffix matchers in lexical order, so
    // `_delivery_seconds` is matched before `_seconds`.
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_delivery_seconds".into()), &waits))
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

/// The admin listener's router: `/healthz`, `/readyz` with the reason
/// when not ready, and `/metrics`.
pub fn router(probe: Probe) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_with_reason).with_state(probe))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { handle.render() }
            }),
        )
}

/// `/healthz` and `/readyz` for a service's public router: readiness
/// without the reason, which names internal addresses and errors.
pub fn public_routes<S>(probe: Probe) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(probe))
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    match probe.check().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

async fn readyz_with_reason(State(probe): State<Probe>) -> impl IntoResponse {
    match probe.check().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Serves the admin router on `listener` until `stop` fires. Probes and
/// scrapes are few and quick: the default server limits, none of the
/// public router's layers (a scrape is not a request of the service's).
pub async fn serve(
    listener: TcpListener,
    probe: Probe,
    stop: CancellationToken,
) -> std::io::Result<()> {
    crate::http::serve(listener, router(probe), stop, ServeOptions::default()).await
}

/// Runs `service` with the admin listener on `admin` beside it: the admin
/// endpoints answer from before the service starts until after it has
/// finished (a stopping worker drains its batch, a web service its
/// connections), then stop. The service's outcome is returned.
pub async fn alongside<E>(
    admin: TcpListener,
    probe: Probe,
    service: impl Future<Output = Result<(), E>>,
) -> Result<(), E> {
    let stop = CancellationToken::new();
    let admin = tokio::spawn(serve(admin, probe, stop.clone()));
    let outcome = service.await;
    stop.cancel();
    match admin.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the admin listener failed"),
        Err(e) => tracing::warn!(error = %e, "the admin listener's task failed"),
    }
    outcome
}

#[cfg(test)]
#[cfg(feature = "redis")]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    /// A probe of a Redis nobody listens on: never ready.
    fn unready() -> Probe {
        let dead = crate::connect::Redis::at("redis://127.0.0.1:1").unwrap();
        Probe::nothing().redis(dead.shared().unwrap())
    }

    #[test]
    fn queue_waits_get_buckets_up_to_minutes_and_latencies_stop_at_seconds() {
        let handle = metrics_handle();
        ::metrics::histogram!("bucket_test_delivery_seconds").record(100.0);
        ::metrics::histogram!("bucket_test_seconds").record(100.0);
        handle.run_upkeep();
        let text = handle.render();
        assert!(
            text.contains("bucket_test_delivery_seconds_bucket{le=\"120\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bucket_test_seconds_bucket{le=\"5\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("bucket_test_seconds_bucket{le=\"120\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn only_the_admin_router_says_why_it_is_not_ready_and_serves_metrics() {
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        tokio::spawn(serve(admin, unready(), CancellationToken::new()));
        let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_addr = public.local_addr().unwrap();
        let router: Router = public_routes(unready());
        tokio::spawn(async move { axum::serve(public, router).await });

        let (status, why) = get(admin_addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(why.starts_with("not ready: redis: "), "{why}");
        assert_eq!(get(admin_addr, "/metrics").await.0, 200);
        assert_eq!(get(admin_addr, "/healthz").await, (200, "ok\n".to_owned()));

        assert_eq!(
            get(public_addr, "/readyz").await,
            (503, "not ready\n".to_owned())
        );
        assert_eq!(get(public_addr, "/healthz").await.0, 200);
        assert_eq!(get(public_addr, "/metrics").await.0, 404);
    }
}
