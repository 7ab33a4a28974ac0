//! The hit counter as the scaffold starts it ([`servicekit::launch`]).

use servicekit::admin::Probe;
use servicekit::connect::Redis;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::metric::Metric;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::router;
use crate::settings::Settings;
use crate::state::AppState;

/// Serves the hit counter's public side on `listener` until `shutdown`
/// fires, then lets requests in flight finish (the scaffold adds the admin
/// listener: [`Service::serve`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let options = state.serve;
    servicekit::http::serve(listener, router(state), shutdown, options).await
}

impl Service for AppState {
    const NAME: &'static str = "hits";
    const ABOUT: &'static str = "A web page that counts its views in Redis: every `GET /` runs \
                                 `INCR hits` and answers \"Hello from Redis! I have been seen N \
                                 times.\"";
    const AFTER_HELP: &'static str = "Settings come from the environment, as in the original \
        app: REDIS_HOST, REDIS_PORT, BIND_PORT. Where the original crashes without them, hits \
        uses the defaults above (Redis at redis:6379, serving on port 5000). Logs go to \
        stderr; RUST_LOG sets the level, RUST_LOG_FORMAT=json makes them JSON.";
    const METRICS: &'static [Metric] = crate::metrics::ALL;
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::web(settings.addr(), settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            redis_host = %s.redis_host,
            redis_port = s.redis_port,
            bind_port = s.bind_port,
            bind_address = %s.bind_address,
            max_connections = s.connections.max_connections,
            max_connections_per_address = s.connections.max_connections_per_address,
            "starting hits"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.redis_url();
        // The only way to get here with a bad URL is a REDIS_HOST that is
        // no host name: say so in the words of the settings the user wrote.
        let state = Redis::at(&url)
            .and_then(|redis| Ok(AppState::new(&redis)?))
            .map_err(|_| {
                anyhow::anyhow!(
                    "REDIS_HOST={:?} with REDIS_PORT={} is not a valid Redis address ({url})",
                    settings.redis_host,
                    settings.redis_port
                )
            })?;
        Ok(state.with_serve_options(settings.connections.serve_options()))
    }

    fn probe(&self) -> Probe {
        Probe::nothing().redis(self.redis.clone())
    }

    async fn serve(
        self,
        public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        Ok(serve(public_listener::<Self>(public)?, self, shutdown).await?)
    }
}
