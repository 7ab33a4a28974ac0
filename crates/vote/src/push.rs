//! Pushing a ballot onto the queue, and what a failed push tells the
//! visitor.
//!
//! A failed push is either certain — Redis refused it, or could not be
//! reached at all, so nothing was queued — or not: after a timeout, or with
//! the connection lost while the push was in flight, the ballot may still
//! arrive. [`PushFailure`] carries that difference to the page
//! ([`crate::VoteError`]), whichever way the ballot was pushed: alone
//! ([`push_retrying_once`]) or confirmed by replicas in a group
//! ([`crate::confirm`]).
//!
//! Both ways push once more when the first try finds the connection
//! dropped (Redis restarted or crashed) or the node not a primary that
//! takes writes (a demoted primary after a failover). Pushing a ballot
//! twice is harmless: both carry the same choice, and the later `seq` wins.

use contract::Ballot;
use servicekit::connect::{Sent, SharedRedis, is_not_writable_primary, is_out_of_memory, sent};

/// A push that failed, and whether the ballot may be queued all the same.
#[derive(Debug, Clone)]
pub struct PushFailure {
    /// What happened, for the log (never for the visitor).
    pub cause: String,
    /// The ballot may be queued: Redis did not say either way.
    pub maybe_queued: bool,
    /// Redis answered with an error: it is up, and refused the push.
    pub refused: bool,
    /// Redis refused it for want of memory (`maxmemory`): the queue is full
    /// until the worker catches up.
    pub full: bool,
}

impl PushFailure {
    /// A push that failed with `e`; `earlier_maybe_queued` if an earlier
    /// try may have queued the ballot already.
    pub fn from_error(e: &redis::RedisError, earlier_maybe_queued: bool) -> Self {
        let sent = sent(e);
        PushFailure {
            maybe_queued: earlier_maybe_queued || sent == Sent::Maybe,
            // A node that does not take writes now is an outage, not a
            // refusal: it passes with the failover.
            refused: sent == Sent::Refused && !is_not_writable_primary(e),
            full: is_out_of_memory(e),
            cause: e.to_string(),
        }
    }

    /// The ballot is queued on the primary, but it is not known to be safe
    /// (its replicas did not confirm it).
    pub fn unconfirmed(cause: String) -> Self {
        PushFailure {
            cause,
            maybe_queued: true,
            refused: false,
            full: false,
        }
    }

    /// Nothing was sent, so nothing was queued.
    pub fn not_sent(cause: String) -> Self {
        PushFailure {
            cause,
            maybe_queued: false,
            refused: false,
            full: false,
        }
    }
}

/// Whether a retry may help: the first try found the connection dropped or
/// a node that does not take writes (now), so a fresh connection may reach
/// the primary.
pub fn worth_retrying(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || is_not_writable_primary(e)
}

/// Pushes one ballot on `conn` (the shared connection), once more if the
/// first try is [`worth_retrying`].
pub async fn push_retrying_once(conn: &SharedRedis, ballot: &Ballot) -> Result<u64, PushFailure> {
    let mut conn = conn.clone();
    match first_try(contract::queue::enqueue(&mut conn, ballot).await) {
        Ok(outcome) => outcome,
        Err(first) => second_try(contract::queue::enqueue(&mut conn, ballot).await, &first),
    }
}

/// The outcome of a first push, or — as `Err` — the error to push once
/// more after (see [`worth_retrying`]; then [`second_try`]).
pub fn first_try<T>(
    pushed: redis::RedisResult<T>,
) -> Result<Result<T, PushFailure>, redis::RedisError> {
    match pushed {
        Err(first) if worth_retrying(&first) => {
            tracing::debug!(error = %first, "Redis connection dropped or not the primary; pushing again");
            Err(first)
        }
        pushed => Ok(pushed.map_err(|e| PushFailure::from_error(&e, false))),
    }
}

/// The outcome of the push sent again after `first` failed: a failure
/// says whether either try may have queued the ballot.
pub fn second_try<T>(
    pushed: redis::RedisResult<T>,
    first: &redis::RedisError,
) -> Result<T, PushFailure> {
    pushed.map_err(|again| PushFailure::from_error(&again, sent(first) == Sent::Maybe))
}
