//! The vote service's state, shared by every request, and how a ballot is
//! queued: pushed alone, or confirmed by replicas in a group
//! ([`crate::confirm`]), within a time limit, with what happened said in
//! words a visitor can act on ([`VoteError`]) and logged once per outage.

use std::sync::Arc;
use std::time::Duration;

use contract::{Ballot, BallotChoices};
use servicekit::connect::{Redis, SharedRedis};
use servicekit::http::ServeOptions;
use servicekit::origin::AllowedOrigins;
use servicekit::outage::Outage;

use crate::confirm::{Confirmer, Replication};
use crate::metrics;
use crate::page::{VoteError, VotePageText};
use crate::push::{self, PushFailure};

/// Longest a visitor waits for Redis before getting a 503 page: a push and
/// its one retry together. A single Redis command gives up sooner, after
/// [`servicekit::connect::REDIS_TIMEOUT`] (redis-rs would wait only 500 ms by
/// default), so a stalled Redis is reported after about a second.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// Shared by every request: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) redis: SharedRedis,
    pub(crate) page: Arc<VotePageText>,
    /// Failed pushes, logged by state changes rather than one by one.
    outage: Arc<Outage>,
    /// Sites besides the request's own host whose pages may post votes.
    pub(crate) allowed_origins: Arc<AllowedOrigins>,
    /// Connection limits and timeouts.
    pub(crate) serve: ServeOptions,
    /// With `REDIS_MIN_REPLICAS_ACK`: confirms ballots in groups (see
    /// [`confirm`]); without, the primary's answer is enough.
    confirmer: Option<Confirmer>,
}

impl AppState {
    /// Builds the state without contacting Redis: the connection is made on
    /// first use and remade after failures.
    pub fn new(
        redis: &Redis,
        choices: &BallotChoices,
        hostname: String,
    ) -> redis::RedisResult<Self> {
        Ok(AppState {
            redis: redis.shared_reconnecting_on_drop()?,
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
    pub(crate) async fn queue(&self, ballot: Ballot) -> Result<(), VoteError> {
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
                metrics::ballot_queued(vote);
                tracing::debug!(voter = %ballot.voter_id, %vote, "ballot queued");
                self.outage.succeeded();
                return Ok(());
            }
            Ok(Err(failure)) => failure,
            Err(_) => PushFailure::unconfirmed(format!("no answer from Redis within {limit:?}")),
        };
        metrics::push_failed(vote, failure.maybe_queued);
        self.outage.failed(&failure.cause);
        if failure.maybe_queued {
            tracing::debug!(error = %failure.cause, "Redis did not confirm a ballot; it may be queued");
            Err(VoteError::Unconfirmed(failure.cause))
        } else if failure.full {
            Err(VoteError::QueueFull(failure.cause))
        } else if failure.refused {
            Err(VoteError::QueueRefused(failure.cause))
        } else {
            Err(VoteError::QueueUnavailable(failure.cause))
        }
    }
}
