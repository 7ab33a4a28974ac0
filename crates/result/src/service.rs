//! The result service as the scaffold starts it ([`servicekit::launch`]):
//! the poller that reads the tally, the public side, and a clean stop that
//! says goodbye to every live page.

use std::time::Duration;

use servicekit::admin::Probe;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::metric::Metric;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::feed;
use crate::routes::router;
use crate::settings::Settings;
use crate::state::AppState;

/// How long shutdown waits for live clients to take their close frames.
const CLIENTS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the result service's public side on `listener` until `shutdown`
/// fires (the scaffold adds the admin listener: [`Service::serve`]): starts
/// the poller, serves pages and live clients, then closes every client
/// with a close frame and waits (briefly) for them to go.
pub async fn serve(
    listener: TcpListener,
    mut state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // A child token, so everything started here also stops if serving ends
    // on its own.
    let stop = shutdown.child_token();
    state.shutdown = stop.clone();
    let poller = tokio::spawn(feed::run(
        state.pool.clone(),
        state.feed.clone(),
        state.poll,
        stop.clone(),
    ));
    // An upgraded WebSocket leaves the server's connection count (its HTTP
    // connection is over); live clients are capped by `MAX_CLIENTS` instead.
    let served =
        servicekit::http::serve(listener, router(state.clone()), stop.clone(), state.serve).await;
    stop.cancel();
    state.tracker.close();
    if tokio::time::timeout(CLIENTS_DRAIN_TIMEOUT, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = state.tracker.len(),
            "live clients still open after the drain timeout"
        );
    }
    let _ = poller.await;
    served
}

impl Service for AppState {
    const NAME: &'static str = "result";
    const ABOUT: &'static str =
        "The voting app's result page: shows the tally from Postgres, live.";
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
            database_url = %s.database.database_url,
            option_a = %s.choices.option_a,
            option_b = %s.choices.option_b,
            allowed_origins = %s.origins.allowed_origins,
            max_clients = s.max_clients,
            max_clients_per_address = s.max_clients_per_address,
            poll_interval_ms = s.poll_interval_ms,
            ping_interval_ms = s.ping_interval_ms,
            "starting result"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        Ok(AppState::new(&settings))
    }

    fn probe(&self) -> Probe {
        Probe::nothing().postgres(self.pool.clone())
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
