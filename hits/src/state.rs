//! The hit counter's state and its one job: count a visit with `INCR`,
//! at most once, and say truthfully what happened when Redis did not.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use servicekit::connect::{Redis, Sent, SharedRedis, is_not_writable_primary, sent};
use servicekit::http::ServeOptions;
use servicekit::outage::Outage;

use crate::metrics;

/// The Redis key holding the count, as in the original app.
pub const HITS_KEY: &str = "hits";
/// Longest a visitor waits for Redis before getting a 503.
pub const HIT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

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
    pub(crate) redis: SharedRedis,
    /// Where Redis is, for the log (any password hidden); never shown to
    /// visitors.
    redis_at: Arc<str>,
    /// Failed visits, logged by state changes rather than one by one.
    outage: Arc<Outage>,
    /// Connection limits and timeouts.
    pub(crate) serve: ServeOptions,
}

impl AppState {
    /// Builds the state from a Redis URL without contacting Redis: the
    /// connection is made on first use and remade after failures, so the
    /// app starts (and answers 503) before Redis is up.
    pub fn new(redis: &Redis) -> redis::RedisResult<Self> {
        Ok(AppState {
            redis: redis.shared_reconnecting_on_drop()?,
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
                metrics::counted();
                tracing::debug!(count, "visit counted");
                self.outage.succeeded();
            }
            Err(e) => {
                metrics::failed(matches!(e, HitError::Unconfirmed { .. }));
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
            Err(e) if sent(&e) == Sent::Never => {
                tracing::debug!(error = %e, "no connection to Redis; trying once more");
                incr.query_async(&mut conn).await
            }
            counted => counted,
        }
    }

    /// An error reply from Redis is a refusal — of a `hits` that is not a
    /// number, or another; a node that does not take writes now (loading,
    /// a replica), or no connection at all, means Redis is not available
    /// right now and nothing was counted; anything else (a timeout, a
    /// connection lost mid-command) leaves the count unknown.
    fn classify(e: &RedisError) -> HitError {
        let reply = e.to_string();
        match sent(e) {
            Sent::Never => HitError::Unavailable { cause: reply },
            Sent::Maybe => HitError::Unconfirmed { cause: reply },
            Sent::Refused if is_not_writable_primary(e) => HitError::Unavailable { cause: reply },
            Sent::Refused
                if e.code() == Some("WRONGTYPE")
                    || (e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
                        && reply.contains("not an integer")) =>
            {
                HitError::NotANumber { reply }
            }
            Sent::Refused => HitError::Refused { reply },
        }
    }
}
