//! The admin listener every service runs beside its public one, and the
//! health and metrics endpoints.
//!
//! On the admin listener (`ADMIN_PORT`, `ADMIN_BIND_ADDRESS`; see
//! [`AdminArgs`](crate::settings::AdminArgs)), for probes and Prometheus:
//!
//! - `GET /healthz` — the process is alive and serving: always 200.
//! - `GET /servingz` — send me traffic: 200 while the process serves and
//!   is not draining, 503 from the stop signal on (see
//!   [`crate::shutdown`]). It asks no store: an orchestrator's readiness
//!   probe asks this, so a Redis or Postgres outage does not take every
//!   replica out of its Service at once (vote's page and result's page
//!   still render, and a vote is answered with a clear 503 page).
//! - `GET /readyz` — the stores this service needs answer: 200, or 503
//!   naming what is down and why (addresses and errors included: this
//!   port is for operators). For people, alerts and the `healthcheck`
//!   subcommand, not for routing.
//! - `GET /metrics` — Prometheus text format.
//!
//! The public listener of a web service answers `/healthz` and `/readyz`
//! too ([`public_routes`]), for load balancers that probe the port they
//! send traffic to, but its `/readyz` says only "ready" or "not ready": the
//! reason names internal addresses. `/metrics` is never public.
//!
//! `/metrics` renders the process-wide recorder
//! ([`crate::metric::metrics_handle`]).

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::ServeOptions;
use crate::metric::metrics_handle;

/// What the probes check: for `/readyz`, whichever stores the service
/// uses; for `/servingz`, whether the service is draining.
#[derive(Clone, Default)]
pub struct Probe {
    draining: Option<CancellationToken>,
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

    /// Also answers "draining" on `/servingz` once `draining` fires.
    pub fn draining(mut self, draining: CancellationToken) -> Self {
        self.draining = Some(draining);
        self
    }

    /// Whether the service has begun to stop and wants no new clients.
    pub fn is_draining(&self) -> bool {
        self.draining
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
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

/// The admin listener's router: `/healthz`, `/servingz`, `/readyz` with
/// the reason when not ready, and `/metrics`.
pub fn router(probe: Probe) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/servingz", get(servingz).with_state(probe.clone()))
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

async fn servingz(State(probe): State<Probe>) -> impl IntoResponse {
    if probe.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "serving\n")
    }
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
        // Routing readiness asks no store.
        assert_eq!(
            get(admin_addr, "/servingz").await,
            (200, "serving\n".to_owned())
        );

        assert_eq!(
            get(public_addr, "/readyz").await,
            (503, "not ready\n".to_owned())
        );
        assert_eq!(get(public_addr, "/healthz").await.0, 200);
        assert_eq!(get(public_addr, "/metrics").await.0, 404);
    }

    #[tokio::test]
    async fn servingz_turns_503_when_draining_begins_and_nothing_else_changes() {
        let draining = CancellationToken::new();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = admin.local_addr().unwrap();
        let probe = Probe::nothing().draining(draining.clone());
        tokio::spawn(serve(admin, probe, CancellationToken::new()));

        assert_eq!(get(addr, "/servingz").await, (200, "serving\n".to_owned()));
        draining.cancel();
        assert_eq!(get(addr, "/servingz").await, (503, "draining\n".to_owned()));
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 200);
    }
}
