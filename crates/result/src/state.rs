//! The result service's state, shared by every page view and live client:
//! the pool, the published tally, the caps on live pages and their timing.

use std::sync::Arc;
use std::time::Duration;

use contract::{BallotChoices, Tally};
use servicekit::addresses::AddressCap;
use servicekit::http::ServeOptions;
use servicekit::origin::AllowedOrigins;
use sqlx::PgPool;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{FeedSender, PollOptions};
use crate::live::LiveOptions;
use crate::settings::Settings;

/// Shared by every request and client: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) pool: PgPool,
    pub(crate) feed: FeedSender,
    pub(crate) choices: Arc<BallotChoices>,
    pub(crate) clients: Arc<Semaphore>,
    /// The per-address cap, if one is set.
    pub(crate) per_address: Option<Arc<AddressCap>>,
    /// Sites besides the request's own host whose pages may open the feed.
    pub(crate) allowed_origins: Arc<AllowedOrigins>,
    pub(crate) tracker: TaskTracker,
    /// Connection limits and timeouts of the HTTP side.
    pub(crate) serve: ServeOptions,
    pub(crate) poll: PollOptions,
    pub(crate) live: LiveOptions,
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state without contacting Postgres: connections are made
    /// on first use and remade after failures.
    pub fn new(settings: &Settings) -> Self {
        AppState {
            pool: servicekit::connect::pg_pool(
                &settings.database.database_url,
                4,
                Duration::from_secs(2),
            ),
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
        }
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
