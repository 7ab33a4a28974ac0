//! The result service: the page that shows how the vote stands, live.
//!
//! It is the end of the pipeline. The worker stores each voter's latest
//! choice in the Postgres table `votes`; this service reads the tally and
//! pushes it to every open page. It only reads: the worker owns the schema,
//! and [`tally::TallyReader`] copes with a database that has our
//! trigger-maintained tally, only the original table, or nothing yet.
//!
//! - `GET /` renders the page with the current tally ([`page`]).
//! - `GET /ws` streams `{"a":N,"b":M}` to the page: on connect and on every
//!   change ([`live`]). Malformed handshakes get a 400 ([`handshake`]);
//!   upgrades from other sites' pages are refused (see
//!   [`servicekit::origin`]); live clients are capped in all
//!   (`MAX_CLIENTS`) and, optionally, per address
//!   ([`servicekit::addresses`]).
//! - One poller per process reads the tally — on every change notification
//!   from Postgres and at least once per poll interval — and publishes it
//!   to all clients at once ([`feed`]). Page views and clients never query
//!   Postgres themselves, so a thousand open pages cost what one does.
//!
//! Replicas share nothing but Postgres, so any number of them can run
//! behind a plain load balancer.
//!
//! Must not depend on: Redis (it reads only Postgres), another service's
//! crate, or the test harness outside `[dev-dependencies]`. The table, the
//! tally and its feed message come from `contract`; the plumbing from
//! `servicekit`.

pub mod feed;
pub mod handshake;
pub mod live;
pub mod page;
pub mod tally;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use contract::Tally;
use servicekit::addresses::AddressCap;
use servicekit::admin::Probe;
use servicekit::http::ServeOptions;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::origin::AllowedOrigins;
use servicekit::settings::{
    AdminArgs, BallotChoices, DatabaseArgs, HttpArgs, OriginArgs, redact_url,
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use feed::{FeedSender, PollOptions};
use live::LiveOptions;

/// How long a page view waits for the first tally after start before it
/// renders an empty one.
const FIRST_TALLY_WAIT: Duration = Duration::from_secs(1);
/// How long shutdown waits for live clients to take their close frames.
const CLIENTS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8082;

/// The result service's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub choices: BallotChoices,
    #[command(flatten)]
    pub origins: OriginArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
    /// Most live pages (WebSocket clients) at once; more are refused with
    /// 503. Each costs about 3.5 KiB: the default, with `MAX_CONNECTIONS`
    /// at its default, fits a 128 MiB memory limit.
    #[arg(long, env = "MAX_CLIENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Most live pages from one remote address; more are refused with 503.
    /// 0 (the default) is no limit: behind a proxy every client has the
    /// proxy's address.
    #[arg(long, env = "MAX_CLIENTS_PER_ADDRESS", default_value_t = 0)]
    pub max_clients_per_address: u32,
    /// Longest time between two reads of the tally, in milliseconds.
    /// Changes normally arrive sooner, by notification from Postgres.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub poll_interval_ms: u64,
    /// Time between pings to each live page, in milliseconds; a page that
    /// stays silent for two intervals is disconnected.
    #[arg(long, env = "PING_INTERVAL_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub ping_interval_ms: u64,
}

/// Shared by every request and client: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pool: PgPool,
    feed: FeedSender,
    choices: Arc<BallotChoices>,
    clients: Arc<Semaphore>,
    /// The per-address cap, if one is set.
    per_address: Option<Arc<AddressCap>>,
    /// Sites besides the request's own host whose pages may open the feed.
    allowed_origins: Arc<AllowedOrigins>,
    tracker: TaskTracker,
    /// Connection limits and timeouts of the HTTP side.
    serve: ServeOptions,
    poll: PollOptions,
    live: LiveOptions,
    shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state without contacting Postgres: connections are made
    /// on first use and remade after failures.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let url = &settings.database.database_url;
        Ok(AppState {
            pool: servicekit::connect::pg_pool(url, 4, Duration::from_secs(2))?,
            feed: watch::Sender::new(None),
            choices: Arc::new(settings.choices.clone()),
            clients: Arc::new(Semaphore::new(settings.max_clients as usize)),
            per_address: (settings.max_clients_per_address > 0)
                .then(|| AddressCap::new(settings.max_clients_per_address)),
            allowed_origins: Arc::new(settings.origins.allowed_origins.clone()),
            tracker: TaskTracker::new(),
            serve: settings.http.serve_options(),
            poll: PollOptions {
                interval: Duration::from_millis(settings.poll_interval_ms),
                ..PollOptions::default()
            },
            live: LiveOptions {
                ping_interval: Duration::from_millis(settings.ping_interval_ms),
                ..LiveOptions::default()
            },
            shutdown: CancellationToken::new(),
        })
    }

    /// Serves with these limits and timeouts instead of the defaults (tests
    /// of slow clients shorten them).
    pub fn with_serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
        self
    }

    /// Times live clients with these instead (tests of clients that stop
    /// reading shorten the send timeout).
    pub fn with_live_options(mut self, options: LiveOptions) -> Self {
        self.live = options;
        self
    }

    /// The tally as last published, if any has been read yet.
    pub fn current(&self) -> Option<Tally> {
        self.feed.borrow().as_ref().map(|s| s.tally)
    }

    /// How many more live clients fit.
    pub fn free_client_slots(&self) -> usize {
        self.clients.available_permits()
    }
}

/// The result service's public HTTP surface: the page, its assets, the
/// live feed, and `/healthz` and `/readyz` for load balancers (metrics and
/// the reasons for readiness are on the admin listener).
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(show_page))
        .route("/ws", get(live::live_feed))
        .route("/static/result.css", get(page::stylesheet))
        .route("/static/result.js", get(page::script))
        .route("/static/favicon.svg", get(page::favicon))
        .with_state(state)
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

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
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::web(settings.http.addr(), settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            max_connections = s.http.connections.max_connections,
            max_connections_per_address = s.http.connections.max_connections_per_address,
            database_url = %redact_url(&s.database.database_url),
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
        AppState::new(&settings)
    }

    fn probe(&self) -> Probe {
        Probe::nothing().postgres(self.pool.clone())
    }

    async fn serve(
        self,
        public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        Ok(serve(public_listener::<Self>(public)?, self, shutdown).await?)
    }
}

async fn show_page(State(state): State<AppState>) -> Response {
    let mut feed = state.feed.subscribe();
    // Just after start the first read may still be under way. If there is
    // still none (Postgres unreachable), the page says it is waiting.
    let tally = match tokio::time::timeout(FIRST_TALLY_WAIT, feed.wait_for(Option::is_some)).await {
        Ok(Ok(snapshot)) => snapshot.as_ref().map(|s| s.tally),
        _ => None,
    };
    page::result_page(&state.choices, tally)
}
