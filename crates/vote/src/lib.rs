//! The vote service: the web page where visitors pick one of two options.
//!
//! It is the front of the pipeline. Each vote becomes a ballot
//! `{"voter_id":"…","vote":"a","seq":N}` pushed onto the Redis list `votes`
//! (see [`contract::queue`]); the worker stores it and the result service
//! shows it. This service never touches Postgres.
//!
//! - `GET /` renders the page; `POST /` with the form field `vote=a|b`
//!   queues a ballot and renders the page with the choice marked.
//! - A `voter_id` cookie identifies the browser, so a later vote replaces
//!   an earlier one (see [`visitor`]).
//! - A vote posted from another site's page is refused with 403 (see
//!   [`servicekit::origin`]); clients that are not browsers may post.
//! - Bad input gets a 4xx page saying what was wrong, and queues nothing.
//!   If Redis is down or slow, the visitor gets a 503 page within
//!   [`QUEUE_TIMEOUT`]; the service stays up and recovers by itself. The
//!   outage is logged when it starts and when it ends (see
//!   [`servicekit::outage`]), not once per refused ballot. The connection is
//!   remade as soon as Redis drops it, and a push that finds it dropped is
//!   sent once more, so the first vote after a Redis restart is accepted.
//!
//! Must not depend on: Postgres or sqlx (the vote service never touches the
//! database: `cargo tree -p vote` shows no sqlx), another service's crate,
//! or the test harness outside `[dev-dependencies]`. What it shares with the
//! worker is the ballot and the queue, from `contract`; its plumbing comes
//! from `servicekit`.

pub mod confirm;
pub mod form;
pub mod page;
pub mod push;
pub mod visitor;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;
use axum::routing::get;
use contract::{Ballot, Vote, VoterId};
use servicekit::admin::Probe;
use servicekit::connect::{Primary, Redis};
use servicekit::http::ServeOptions;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::origin::{AllowedOrigins, check_same_origin};
use servicekit::outage::Outage;
use servicekit::settings::{AdminArgs, BallotChoices, HttpArgs, OriginArgs, RedisArgs, redact_url};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use confirm::{Confirmer, Replication};
pub use page::{VoteError, VotePageText};
use push::PushFailure;
use visitor::{Identity, Visitor};

/// Largest accepted form body. `vote=a` is 6 bytes.
pub const MAX_FORM_BYTES: usize = 1024;
/// Longest a visitor waits for Redis before getting a 503 page: a push and
/// its one retry together. A single Redis command gives up sooner, after
/// [`servicekit::connect::REDIS_TIMEOUT`] (redis-rs would wait only 500 ms by
/// default), so a stalled Redis is reported after about a second.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8081;

/// The vote service's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub choices: BallotChoices,
    #[command(flatten)]
    pub origins: OriginArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
    /// Answer a vote only after this many Redis replicas confirm they hold
    /// its ballot (`WAIT`, for at most `REDIS_REPLICA_ACK_TIMEOUT_MS`); if
    /// fewer do, the visitor is told the vote is unconfirmed. 0: answer as
    /// soon as the primary has it. Set it with Sentinel, so that an
    /// acknowledged ballot survives the primary's loss.
    #[arg(long, env = "REDIS_MIN_REPLICAS_ACK", default_value_t = 0)]
    pub redis_min_replicas_ack: u32,
    /// With `REDIS_MIN_REPLICAS_ACK`, the longest a vote waits for the
    /// replicas' confirmation, in milliseconds, counted from its arrival;
    /// then it is answered with a 503 that says so.
    #[arg(long, env = "REDIS_REPLICA_ACK_TIMEOUT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_replica_ack_timeout_ms: u64,
}

impl Settings {
    /// How ballots must be confirmed, if replicas must confirm them.
    pub fn replication(&self) -> Option<Replication> {
        (self.redis_min_replicas_ack > 0).then(|| Replication {
            replicas: self.redis_min_replicas_ack,
            timeout: Duration::from_millis(self.redis_replica_ack_timeout_ms),
        })
    }
}

/// Shared by every request: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    redis: Primary,
    page: Arc<VotePageText>,
    /// Failed pushes, logged by state changes rather than one by one.
    outage: Arc<Outage>,
    /// Sites besides the request's own host whose pages may post votes.
    allowed_origins: Arc<AllowedOrigins>,
    /// Connection limits and timeouts.
    serve: ServeOptions,
    /// With `REDIS_MIN_REPLICAS_ACK`: confirms ballots in groups (see
    /// [`confirm`]); without, the primary's answer is enough.
    confirmer: Option<Confirmer>,
}

impl AppState {
    /// Builds the state without contacting Redis: the connection is made on
    /// first use and remade after failures.
    pub fn new(redis: &Redis, choices: &BallotChoices, hostname: String) -> anyhow::Result<Self> {
        Ok(AppState {
            redis: redis.manager_reconnecting_on_drop()?,
            page: Arc::new(VotePageText {
                option_a: choices.option_a.clone(),
                option_b: choices.option_b.clone(),
                hostname,
            }),
            outage: Arc::new(Outage::new("Redis", "ballots are refused with a 503 page")),
            allowed_origins: Arc::default(),
            serve: ServeOptions::default(),
            confirmer: None,
        })
    }

    /// Confirms a vote only once replicas hold its ballot
    /// (`REDIS_MIN_REPLICAS_ACK`), in groups (see [`confirm`]). Starts the
    /// confirming tasks on the current runtime.
    pub fn with_replication(mut self, redis: &Redis, replication: Option<Replication>) -> Self {
        self.confirmer = replication.map(|replication| Confirmer::start(redis, replication));
        self
    }

    /// Serves with these limits and timeouts instead of the defaults (tests
    /// of slow clients shorten them).
    pub fn with_serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
        self
    }

    /// Accepts votes from these sites' pages too (`ALLOWED_ORIGINS`), not
    /// only from the host a request is sent to.
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.allowed_origins = Arc::new(origins);
        self
    }

    /// Queues one ballot (confirmed by replicas, if they must confirm it),
    /// giving up after [`QUEUE_TIMEOUT`] (on top of the confirmation's own
    /// timeout). A failure says whether the ballot may be queued all the
    /// same ([`VoteError::Unconfirmed`]) or certainly is not (see [`push`]).
    async fn queue(&self, ballot: Ballot) -> Result<(), VoteError> {
        let vote = ballot.vote;
        let limit = QUEUE_TIMEOUT
            + self
                .confirmer
                .as_ref()
                .map_or(Duration::ZERO, Confirmer::timeout);
        let pushed = match &self.confirmer {
            Some(confirmer) => tokio::time::timeout(limit, confirmer.confirm(ballot.clone())).await,
            None => tokio::time::timeout(limit, push::push_retrying_once(&self.redis, &ballot))
                .await
                .map(|pushed| pushed.map(drop)),
        };
        let failure = match pushed {
            Ok(Ok(())) => {
                metrics::counter!("ballots_queued_total", "vote" => vote.as_str()).increment(1);
                tracing::debug!(voter = %ballot.voter_id, %vote, "ballot queued");
                self.outage.succeeded();
                return Ok(());
            }
            Ok(Err(failure)) => failure,
            Err(_) => PushFailure::unconfirmed(format!("no answer from Redis within {limit:?}")),
        };
        metrics::counter!("redis_errors_total").increment(1);
        self.outage.failed(&failure.cause);
        if failure.maybe_queued {
            metrics::counter!("ballots_unconfirmed_total", "vote" => vote.as_str()).increment(1);
            tracing::debug!(error = %failure.cause, "Redis did not confirm a ballot; it may be queued");
            Err(VoteError::Unconfirmed(failure.cause))
        } else if failure.refused {
            Err(VoteError::QueueRefused(failure.cause))
        } else {
            Err(VoteError::QueueUnavailable(failure.cause))
        }
    }
}

/// The vote service's public HTTP surface: the page, its assets, and
/// `/healthz` and `/readyz` for load balancers (metrics and the reasons for
/// readiness are on the admin listener).
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(show_page).post(cast_vote))
        .route("/static/style.css", get(stylesheet))
        .route("/static/favicon.svg", get(favicon))
        // Shared, not cloned per request: a clone of the state (its Redis
        // handle above all) cost more to make and drop than an `Arc`.
        .with_state(Arc::new(state))
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

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
    type Settings = Settings;

    fn listeners(settings: &Settings) -> Listeners {
        Listeners::web(settings.http.addr(), settings.admin.addr())
    }

    fn log_settings(s: &Settings) {
        tracing::info!(
            max_connections = s.http.connections.max_connections,
            max_connections_per_address = s.http.connections.max_connections_per_address,
            redis_url = %redact_url(&s.redis.redis_url),
            redis_sentinels = s.redis.redis_sentinels.as_deref().unwrap_or(""),
            redis_sentinel_master = s.redis.redis_sentinel_master.as_deref().unwrap_or(""),
            option_a = %s.choices.option_a,
            option_b = %s.choices.option_b,
            allowed_origins = %s.origins.allowed_origins,
            redis_min_replicas_ack = s.redis_min_replicas_ack,
            redis_replica_ack_timeout_ms = s.redis_replica_ack_timeout_ms,
            "starting vote"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = settings.redis.handle()?;
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

    async fn serve(
        self,
        public: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        Ok(serve(public_listener::<Self>(public)?, self, shutdown).await?)
    }
}

/// The identity to answer with, and the cookies that carry it.
fn identify(visitor: &Visitor) -> Result<(VoterId, Vec<String>), VoteError> {
    match &visitor.identity {
        Identity::Known(id) => Ok((id.clone(), vec![visitor::voter_cookie(id)])),
        Identity::New | Identity::Malformed(_) => {
            let id = VoterId::random().map_err(|e| VoteError::NoRandomness(e.to_string()))?;
            let mut cookies = vec![visitor::voter_cookie(&id)];
            if visitor.remembered.is_some() {
                cookies.push(visitor::forget_choice_cookie());
            }
            Ok((id, cookies))
        }
    }
}

async fn show_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::from_headers(&headers);
    match identify(&visitor) {
        Ok((_, cookies)) => {
            let chosen = match visitor.identity {
                Identity::Known(_) => visitor.remembered,
                _ => None,
            };
            page::vote_page(&state.page, chosen, cookies)
        }
        Err(e) => e.into_page(&state.page, Vec::new()),
    }
}

async fn cast_vote(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let visitor = Visitor::from_headers(request.headers());
    let (voter_id, mut cookies) = match identify(&visitor) {
        Ok(identity) => identity,
        Err(e) => return e.into_page(&state.page, Vec::new()),
    };
    match accept_vote(&state, &visitor, voter_id, request).await {
        Ok(vote) => {
            cookies.push(visitor::choice_cookie(vote));
            page::vote_page(&state.page, Some(vote), cookies)
        }
        Err(e) => {
            tracing::debug!(error = %e, "vote refused");
            e.into_page(&state.page, cookies)
        }
    }
}

/// Checks the submission and queues the ballot. Everything that can be
/// judged from the head is judged before the body is read: a refused
/// request never gets `100 Continue`, and a client announcing a body over
/// [`MAX_FORM_BYTES`] is answered at once instead of being waited for.
async fn accept_vote(
    state: &AppState,
    visitor: &Visitor,
    voter_id: VoterId,
    request: Request,
) -> Result<Vote, VoteError> {
    let headers = request.headers();
    // A form on another site must not vote with this visitor's cookie (CSRF).
    check_same_origin(headers, &state.allowed_origins).map_err(VoteError::CrossSite)?;
    if let Identity::Malformed(why) = visitor.identity {
        return Err(VoteError::BadCookie(why));
    }
    if declared_length(headers).is_some_and(|length| length > MAX_FORM_BYTES as u64) {
        return Err(VoteError::TooLarge(MAX_FORM_BYTES));
    }
    // A client that stops half-way is told so (408) before the request
    // timeout would answer for it with a 503.
    let body_timeout = state.serve.body_timeout;
    let (head, body) = request.into_parts();
    let body = tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_FORM_BYTES))
        .await
        .map_err(|_| VoteError::SlowBody(body_timeout))?
        .map_err(|e| {
            if is_over_the_limit(&e) {
                VoteError::TooLarge(MAX_FORM_BYTES)
            } else {
                VoteError::UnreadableBody
            }
        })?;
    let vote = form::parse_vote(&head.headers, &body)?;
    state.queue(Ballot::new(voter_id, vote)).await?;
    Ok(vote)
}

/// Whether reading a body failed because it is longer than the limit (a
/// body without a `Content-Length`, or longer than it announced), rather
/// than because the client went away.
fn is_over_the_limit(e: &axum::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// The body length the client announced, if it did (hyper has already
/// refused a request whose `Content-Length` is not one number).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

async fn stylesheet() -> Response {
    servicekit::http::static_asset(
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    )
}

async fn favicon() -> Response {
    servicekit::http::static_asset("image/svg+xml", include_str!("../static/favicon.svg"))
}
