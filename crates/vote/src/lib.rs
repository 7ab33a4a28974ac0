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

pub mod form;
pub mod page;
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
use servicekit::connect::{Primary, Redis, is_not_writable_primary};
use servicekit::http::ServeOptions;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::origin::{AllowedOrigins, check_same_origin};
use servicekit::outage::Outage;
use servicekit::settings::{AdminArgs, BallotChoices, HttpArgs, OriginArgs, RedisArgs, redact_url};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use page::{VoteError, VotePageText};
use visitor::{Identity, Visitor};

/// Largest accepted form body. `vote=a` is 6 bytes.
pub const MAX_FORM_BYTES: usize = 1024;
/// Longest a visitor waits for Redis before getting a 503 page: a push and
/// its one retry together. A single Redis command gives up sooner, after
/// [`servicekit::connect::REDIS_TIMEOUT`] (redis-rs would wait only 500 ms by
/// default), so a stalled Redis is reported after about a second.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// With `REDIS_MIN_REPLICAS_ACK`, how long a push waits for the replicas
/// to confirm its ballot (`WAIT`). Replicas on a healthy network confirm
/// within milliseconds; past this the vote is reported unconfirmed. Below
/// [`servicekit::connect::REDIS_TIMEOUT`], so the answer to `WAIT` arrives
/// before the connection gives up on it.
pub const REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// its ballot (`WAIT`, for at most 500 ms); if fewer do, the visitor is
    /// told the vote is unconfirmed. 0: answer as soon as the primary has
    /// it. Set it with Sentinel, so that an acknowledged ballot survives
    /// the primary's loss.
    #[arg(long, env = "REDIS_MIN_REPLICAS_ACK", default_value_t = 0)]
    pub redis_min_replicas_ack: u32,
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
    /// Replicas that must confirm a ballot before the visitor is told it
    /// counts (`REDIS_MIN_REPLICAS_ACK`); 0: the primary alone.
    min_replicas_ack: u32,
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
            min_replicas_ack: 0,
        })
    }

    /// Confirms a vote only once `replicas` Redis replicas hold its ballot
    /// (`REDIS_MIN_REPLICAS_ACK`); see [`REPLICA_ACK_TIMEOUT`].
    pub fn with_min_replicas_ack(mut self, replicas: u32) -> Self {
        self.min_replicas_ack = replicas;
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

    /// Pushes one ballot, giving up after [`QUEUE_TIMEOUT`]. A failure is
    /// either certain — Redis refused the push, or could not be reached at
    /// all, so nothing was queued — or not: after a timeout, or with the
    /// connection lost while the push was in flight, the ballot may still
    /// arrive, and the visitor is told exactly that
    /// ([`VoteError::Unconfirmed`]).
    async fn queue(&self, ballot: &Ballot) -> Result<(), VoteError> {
        let failure =
            match tokio::time::timeout(QUEUE_TIMEOUT, self.push_retrying_once(ballot)).await {
                Ok(Ok(_)) => {
                    metrics::counter!("ballots_queued_total", "vote" => ballot.vote.as_str())
                        .increment(1);
                    tracing::debug!(voter = %ballot.voter_id, vote = %ballot.vote, "ballot queued");
                    self.outage.succeeded();
                    return Ok(());
                }
                Ok(Err(failure)) => failure,
                Err(_) => PushFailure {
                    cause: format!("no answer from Redis within {QUEUE_TIMEOUT:?}"),
                    maybe_queued: true,
                    refused: false,
                },
            };
        metrics::counter!("redis_errors_total").increment(1);
        self.outage.failed(&failure.cause);
        if failure.maybe_queued {
            metrics::counter!("ballots_unconfirmed_total", "vote" => ballot.vote.as_str())
                .increment(1);
            tracing::debug!(error = %failure.cause, "Redis did not confirm a ballot; it may be queued");
            Err(VoteError::Unconfirmed(failure.cause))
        } else if failure.refused {
            Err(VoteError::QueueRefused(failure.cause))
        } else {
            Err(VoteError::QueueUnavailable(failure.cause))
        }
    }

    /// Pushes one ballot, once more if the connection turns out dropped
    /// (Redis restarted or crashed; the manager is reconnecting) or the
    /// node it reached turns out not to be a primary that takes writes (a
    /// demoted primary after a failover; the handle asks Sentinel again).
    /// Pushing a ballot twice is harmless: both carry the same choice, and
    /// the later `seq` wins.
    async fn push_retrying_once(&self, ballot: &Ballot) -> Result<u64, PushFailure> {
        let mut conn = self.redis.clone();
        match self.push(&mut conn, ballot).await {
            Err(Pushed::Failed(first))
                if first.is_connection_dropped() || is_not_writable_primary(&first) =>
            {
                tracing::debug!(error = %first, "Redis connection dropped or not the primary; pushing again");
                self.push(&mut conn, ballot)
                    .await
                    .map_err(|again| again.failure(maybe_queued(&first)))
            }
            pushed => pushed.map_err(|e| e.failure(false)),
        }
    }

    /// Pushes one ballot; with [`AppState::with_min_replicas_ack`], also
    /// waits for the replicas to confirm it.
    async fn push(&self, conn: &mut Primary, ballot: &Ballot) -> Result<u64, Pushed> {
        if self.min_replicas_ack == 0 {
            return contract::queue::enqueue(conn, ballot)
                .await
                .map_err(Pushed::Failed);
        }
        let (length, confirmed) = contract::queue::enqueue_replicated(
            conn,
            ballot,
            self.min_replicas_ack,
            REPLICA_ACK_TIMEOUT,
        )
        .await
        .map_err(Pushed::Failed)?;
        if confirmed < u64::from(self.min_replicas_ack) {
            metrics::counter!("ballots_replica_ack_missing_total").increment(1);
            return Err(Pushed::NotReplicated { confirmed });
        }
        Ok(length)
    }
}

/// Why a push did not succeed.
enum Pushed {
    /// Redis failed the push, or could not be reached.
    Failed(redis::RedisError),
    /// The primary queued the ballot, but fewer replicas than asked
    /// confirmed it within [`REPLICA_ACK_TIMEOUT`].
    NotReplicated { confirmed: u64 },
}

impl Pushed {
    /// As a failure to report; `earlier_maybe_queued` if an earlier try may
    /// have queued the ballot already.
    fn failure(self, earlier_maybe_queued: bool) -> PushFailure {
        match self {
            Pushed::Failed(e) => PushFailure {
                maybe_queued: earlier_maybe_queued || maybe_queued(&e),
                refused: was_refused(&e) && !is_not_writable_primary(&e),
                cause: e.to_string(),
            },
            Pushed::NotReplicated { confirmed } => PushFailure {
                maybe_queued: true,
                refused: false,
                cause: format!(
                    "the ballot is queued on the Redis primary, but only {confirmed} replica(s) \
                     confirmed it within {REPLICA_ACK_TIMEOUT:?}"
                ),
            },
        }
    }
}

/// A push that failed, and whether the ballot may be queued all the same.
struct PushFailure {
    cause: String,
    maybe_queued: bool,
    /// Redis answered with an error: it is up, and refused the push.
    refused: bool,
}

/// Whether a push that failed with `e` may still have queued its ballot.
/// Not if it never reached Redis, nor if Redis answered with an error: the
/// enqueue script pushes as its last step, so a script that failed pushed
/// nothing. Anything else (a timeout, a connection lost mid-command) leaves
/// it open.
fn maybe_queued(e: &redis::RedisError) -> bool {
    !(was_refused(e) || servicekit::connect::was_never_sent(e))
}

/// Whether Redis answered the push with an error (it ran and refused it,
/// e.g. [`contract::queue::is_bad_counter`]). Error codes redis-rs does not
/// know, such as the enqueue script's own `BADSEQ`, are `Extension`s.
fn was_refused(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
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
            "starting vote"
        );
    }

    fn build(settings: Settings) -> anyhow::Result<Self> {
        Ok(AppState::new(
            &settings.redis.handle()?,
            &settings.choices,
            servicekit::host::name(),
        )?
        .with_allowed_origins(settings.origins.allowed_origins)
        .with_serve_options(settings.http.serve_options())
        .with_min_replicas_ack(settings.redis_min_replicas_ack))
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
    state.queue(&Ballot::new(voter_id, vote)).await?;
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
