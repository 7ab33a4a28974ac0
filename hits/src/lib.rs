//! `hits`: the hit counter, the small distributed system that comes before
//! the voting app.
//!
//! It is the first lesson of the source document: two containers, a web app
//! and Redis, that find each other by name on a Docker network. Every
//! `GET /` runs `INCR hits` in Redis and answers
//! `Hello from Redis! I have been seen N times.` with the new count. Because
//! the count lives in Redis (and, in the compose file, in Redis's volume),
//! it outlives the web container; whether it outlives the Redis container
//! depends on that volume, which is the point of the exercise.
//!
//! Compatible with the original Flask app where it matters: the same key
//! (`hits`, a plain Redis integer), the same sentence byte for byte (no
//! trailing newline, and "1 times" as the original says), the same
//! settings (`REDIS_HOST`, `REDIS_PORT`, `BIND_PORT`). Beyond it:
//!
//! - One `INCR` per visit, whose reply *is* the count: concurrent visitors
//!   each see a different number and none is lost (the original did `INCR`
//!   then `GET`, so two visitors could see the same number).
//! - While Redis is down or unreachable, a visit gets a one-line 503
//!   instead of a stack trace, within [`HIT_TIMEOUT`]; the app keeps
//!   running and counts again as soon as Redis is back. A visit Redis did
//!   not confirm (a timeout) is said to be possibly counted, never "not
//!   counted".
//! - A visit is counted at most once: a failed `INCR` is retried only when
//!   it cannot have reached Redis (no connection could be made), never
//!   after a timeout or a connection lost mid-command, because a lost reply
//!   cannot tell whether Redis counted it. The connection to Redis is
//!   remade as soon as Redis drops it, so the first visit after a restart
//!   is counted.
//! - An admin listener (`ADMIN_PORT`, 8083) with `/healthz`, `/readyz` and
//!   `/metrics` (see [`servicekit::admin`]); `/healthz` and `/readyz` on the
//!   page's port too; a `healthcheck` subcommand; a graceful stop on
//!   SIGTERM. The shared scaffold (`servicekit::launch`) starts it like
//!   every service of the voting app.
//! - A Redis outage is logged when it starts and when it ends (see
//!   [`servicekit::outage`]), not once per visit that fails meanwhile.
//!
//! Must not depend on: the voting app's `contract` (the hit counter is a
//! separate system that shares no data with it), Postgres or sqlx, or the
//! test harness outside `[dev-dependencies]`. It uses `servicekit` for the
//! plumbing every service shares.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::builder::NonEmptyStringValueParser;
use redis::{ErrorKind, RedisError, ServerErrorKind};
use servicekit::admin::Probe;
use servicekit::connect::{Primary, Redis};
use servicekit::http::ServeOptions;
use servicekit::launch::{Listeners, Service, public_listener};
use servicekit::outage::Outage;
use servicekit::settings::{AdminArgs, ConnectionArgs};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The Redis key holding the count, as in the original app.
pub const HITS_KEY: &str = "hits";
/// Longest a visitor waits for Redis before getting a 503.
pub const HIT_TIMEOUT: Duration = Duration::from_secs(2);

const TEXT: &str = "text/plain; charset=utf-8";

/// The admin listener's port unless `ADMIN_PORT` says otherwise (one per
/// service: see [`AdminArgs`]). The Dockerfiles, compose files and k8s
/// manifests name it too; `xtask/tests/deployment.rs` checks they agree.
pub const DEFAULT_ADMIN_PORT: u16 = 8083;

/// The hit counter's settings: the original's three environment variables,
/// with defaults instead of a crash when they are missing.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Host name or address of the Redis server (in the compose file: `db`).
    #[arg(long, env = "REDIS_HOST", default_value = "redis", value_parser = NonEmptyStringValueParser::new())]
    pub redis_host: String,
    /// TCP port of the Redis server.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// TCP port to serve on.
    #[arg(long, env = "BIND_PORT", default_value_t = 5000)]
    pub bind_port: u16,
    /// Address to serve on (all interfaces, as the original does).
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub admin: AdminArgs<DEFAULT_ADMIN_PORT>,
}

impl Settings {
    /// Where the hit counter listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.bind_port)
    }

    /// The Redis URL that `REDIS_HOST` and `REDIS_PORT` describe.
    pub fn redis_url(&self) -> String {
        redis_url(&self.redis_host, self.redis_port)
    }
}

/// `redis://host:port`, with an IPv6 address in brackets.
pub fn redis_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("redis://[{host}]:{port}")
    } else {
        format!("redis://{host}:{port}")
    }
}

/// The page's sentence for the `count`th visit, exactly as the original
/// writes it.
pub fn greeting(count: i64) -> String {
    format!("Hello from Redis! I have been seen {count} times.")
}

/// Why a visit could not be counted. The text is for the log; what the
/// visitor reads ([`IntoResponse`]) says what happened without naming where
/// Redis is or quoting its reply.
#[derive(Debug, thiserror::Error)]
pub enum HitError {
    /// No connection to Redis could be made: the visit was certainly not
    /// counted. Temporary.
    #[error("Redis did not answer: {cause}")]
    Unavailable { cause: String },
    /// Redis did not confirm the `INCR` (too slow, or the connection was
    /// lost with it in flight): the visit may or may not have been counted.
    #[error("Redis did not confirm the visit: {cause}")]
    Unconfirmed { cause: String },
    /// `hits` holds something that is not a whole number (text, a list…),
    /// so Redis refused to increment it. Needs someone to look at Redis.
    #[error("Redis refused to count: {reply}")]
    NotANumber { reply: String },
    /// Redis answered with another error (out of memory, no permission…).
    #[error("Redis refused to count: {reply}")]
    Refused { reply: String },
}

impl IntoResponse for HitError {
    fn into_response(self) -> Response {
        match self {
            HitError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, TEXT), (RETRY_AFTER, "1")],
                "Sorry, this visit was not counted: Redis is not answering. Try again in a moment.",
            )
                .into_response(),
            HitError::Unconfirmed { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, TEXT), (RETRY_AFTER, "1")],
                "Sorry, Redis did not confirm this visit, so it may or may not have been \
                 counted. Try again in a moment.",
            )
                .into_response(),
            HitError::NotANumber { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, TEXT)],
                format!(
                    "Sorry, this visit was not counted: Redis refused to increment the key \
                     `{HITS_KEY}`, which does not hold a whole number."
                ),
            )
                .into_response(),
            HitError::Refused { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, TEXT)],
                format!(
                    "Sorry, this visit was not counted: Redis refused to increment the key \
                     `{HITS_KEY}`. The app's log says why."
                ),
            )
                .into_response(),
        }
    }
}

/// Shared by every request: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    redis: Primary,
    /// Where Redis is, for the log (any password hidden); never shown to
    /// visitors.
    redis_at: Arc<str>,
    /// Failed visits, logged by state changes rather than one by one.
    outage: Arc<Outage>,
    /// Connection limits and timeouts.
    serve: ServeOptions,
}

impl AppState {
    /// Builds the state from a Redis URL without contacting Redis: the
    /// connection is made on first use and remade after failures, so the
    /// app starts (and answers 503) before Redis is up.
    pub fn new(redis: &Redis) -> anyhow::Result<Self> {
        Ok(AppState {
            redis: redis.manager_reconnecting_on_drop()?,
            redis_at: redis.shown().into(),
            outage: Arc::new(Outage::new(
                "Redis",
                "visits get an error page and are not counted",
            )),
            serve: ServeOptions::default(),
        })
    }

    /// Serves with these limits and timeouts instead of the defaults (tests
    /// of slow clients shorten them).
    pub fn with_serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
        self
    }

    /// Counts one visit: `INCR hits`, whose reply is the new count.
    pub async fn count_visit(&self) -> Result<i64, HitError> {
        let outcome = match tokio::time::timeout(HIT_TIMEOUT, self.incr_at_most_once()).await {
            Ok(Ok(count)) => Ok(count),
            Ok(Err(e)) => Err(Self::classify(&e)),
            Err(_) => Err(HitError::Unconfirmed {
                cause: format!("no answer within {HIT_TIMEOUT:?}"),
            }),
        };
        match &outcome {
            Ok(count) => {
                metrics::counter!("hits_counted_total").increment(1);
                tracing::debug!(count, "visit counted");
                self.outage.succeeded();
            }
            Err(e) => {
                metrics::counter!("redis_errors_total").increment(1);
                if let HitError::Unconfirmed { .. } = e {
                    metrics::counter!("hits_unconfirmed_total").increment(1);
                }
                // The address goes to the log only, never to the page.
                self.outage
                    .failed(&format_args!("{e} (Redis at {})", self.redis_at));
            }
        }
        outcome
    }

    /// `INCR hits`, tried a second time only if the first could not have
    /// reached Redis (no connection could be made: after a restart the
    /// manager reconnects, see
    /// [`Redis::manager_reconnecting_on_drop`]). A command
    /// that may have reached Redis is never repeated, so no visit counts
    /// twice.
    async fn incr_at_most_once(&self) -> redis::RedisResult<i64> {
        let mut conn = self.redis.clone();
        let mut incr = redis::cmd("INCR");
        incr.arg(HITS_KEY);
        match incr.query_async(&mut conn).await {
            Err(e) if servicekit::connect::was_never_sent(&e) => {
                tracing::debug!(error = %e, "no connection to Redis; trying once more");
                incr.query_async(&mut conn).await
            }
            counted => counted,
        }
    }

    /// An error *reply* from Redis is a refusal; another answer from Redis
    /// (still loading its data, read-only) or no connection at all means
    /// Redis is not available right now and nothing was counted; anything
    /// else (a timeout, a connection lost mid-command) leaves the count
    /// unknown.
    fn classify(e: &RedisError) -> HitError {
        let reply = e.to_string();
        if e.code() == Some("WRONGTYPE")
            || (e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
                && reply.contains("not an integer"))
        {
            HitError::NotANumber { reply }
        } else if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError) {
            HitError::Refused { reply }
        } else if matches!(e.kind(), ErrorKind::Server(_)) || servicekit::connect::was_never_sent(e)
        {
            HitError::Unavailable { cause: reply }
        } else {
            HitError::Unconfirmed { cause: reply }
        }
    }
}

/// The public HTTP surface: `/` counts; `/healthz` and `/readyz` are for
/// load balancers (metrics and the reasons for readiness are on the admin
/// listener).
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(hello))
        .with_state(state)
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

/// `GET /`: count the visit and say how many there have been.
async fn hello(State(state): State<AppState>) -> Result<Response, HitError> {
    let count = state.count_visit().await?;
    // Every answer is a new count: no cache may replay one.
    Ok((
        [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, "no-store")],
        greeting(count),
    )
        .into_response())
}

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
            .and_then(|redis| AppState::new(&redis))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_built_from_host_and_port() {
        assert_eq!(redis_url("db", 6379), "redis://db:6379");
        assert_eq!(redis_url("10.0.0.7", 6380), "redis://10.0.0.7:6380");
        assert_eq!(redis_url("::1", 6379), "redis://[::1]:6379");
        assert_eq!(redis_url("[::1]", 6379), "redis://[::1]:6379");
    }

    #[test]
    fn greeting_is_the_original_sentence_without_a_newline() {
        assert_eq!(greeting(1), "Hello from Redis! I have been seen 1 times.");
        assert_eq!(
            greeting(1234),
            "Hello from Redis! I have been seen 1234 times."
        );
    }
}
