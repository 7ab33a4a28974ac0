//! The vote service as the scaffold starts it ([`servicekit::launch`]):
//! settings in, the service built without contacting Redis, its public
//! side served until shutdown.

use servicekit::admin::Probe;
use servicekit::connect::Redis;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::metric::Metric;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::router;
use crate::settings::Settings;
use crate::state::AppState;

/// Serves the vote service's public side on `listener` until `shutdown`
/// fires (the scaffold adds the admin listener: [`Service::serve`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let options = state.serve;
    servicekit::http::serve(listener, router(state), shutdown, options).await
}

impl Service for AppState {
    const NAME: &'static str = "vote";
    const ABOUT: &'static str =
        "The voting app's vote page: queues each visitor's choice in Redis.";
    const METRICS: &'static [Metric] = crate::metrics::ALL;
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::web(settings.http.addr(), settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            max_connections = s.http.connections.max_connections,
            max_connections_per_address = s.http.connections.max_connections_per_address,
            shutdown_delay_seconds = s.http.shutdown_delay_seconds,
            redis = %s.redis,
            option_a = %s.choices.option_a,
            option_b = %s.choices.option_b,
            allowed_origins = %s.origins.allowed_origins,
            redis_min_replicas_ack = s.redis_min_replicas_ack,
            redis_replica_ack_timeout_ms = s.redis_replica_ack_timeout_ms,
            "starting vote"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = Redis::new(&settings.redis);
        let replication = settings.replication();
        Ok(
            AppState::new(&redis, &settings.choices, servicekit::host::name())?
                .with_allowed_origins(settings.origins.allowed_origins)
                .with_serve_options(settings.http.serve_options())
                .with_replication(&redis, replication),
        )
    }

    fn probe(&self) -> Probe {
        Probe::nothing().redis(self.redis.clone())
    }

    fn shutdown_delay(settings: &Settings) -> std::time::Duration {
        settings.http.shutdown_delay()
    }

    async fn serve(
        self,
        public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        crate::metrics::start_at_zero();
        Ok(serve(public_listener::<Self>(public)?, self, shutdown).await?)
    }
}
