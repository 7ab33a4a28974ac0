//! The worker's blocking wait on an empty queue: [`Waiter`].
//!
//! When a claim finds nothing, the worker blocks with `BLMOVE votes
//! <processing> LEFT RIGHT <block>` on a connection of its own (a blocking
//! command holds up everything else on its connection, and needs a
//! response timeout longer than the block). The move keeps the queue
//! reliable: the ballot lands in this worker's processing list, so even a
//! wait whose answer is lost to a broken connection leaves it where the
//! next claim finds it.
//!
//! But `BLMOVE` answers with the element it moved, whatever its size, and
//! anything that can write to Redis can push an entry of hundreds of
//! megabytes. The wait therefore asks for no answer: it is sent as
//! `CLIENT REPLY SKIP`, `BLMOVE …`, `LLEN <processing>` in one write. Redis
//! sends nothing for the first two and answers the `LLEN` only once the
//! `BLMOVE` has returned (a client's commands run in order, and a blocked
//! client's next command waits). So the wait is only a wake-up: what moved
//! is read by the next claim, which turns an entry over the limit into a
//! short stand-in inside Redis (see [`crate::queue`]).
//!
//! The skipped answer would also have carried the `BLMOVE`'s error: a
//! replica's `READONLY` after a failover, `OOM` from a Redis at its memory
//! limit. Such a wait returns at once with nothing moved, and the worker
//! would claim and wait again in a tight loop. A wait that moved nothing
//! can only have blocked for its whole time, so one that comes back with
//! nothing in under half of it is taken as refused: an error, like any
//! other, which drops the connection and backs off.

use std::time::Duration;

use contract::queue::QUEUE_KEY;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use servicekit::connect::Redis;

use crate::queue::processing_key;

/// Waits on an empty queue: `BLMOVE` on a connection of its own, remade
/// after any error, its answer skipped.
pub struct Waiter {
    redis: Redis,
    conn: Option<MultiplexedConnection>,
    processing: String,
    block: Duration,
}

impl Waiter {
    /// Grace on top of the block time before we call the server unresponsive.
    const GRACE: Duration = Duration::from_secs(5);

    /// A waiter for worker `id` that blocks up to `block` at a time;
    /// connects lazily.
    pub fn new(redis: &Redis, id: &str, block: Duration) -> Self {
        Waiter {
            redis: redis.clone(),
            conn: None,
            processing: processing_key(id),
            block,
        }
    }

    /// Blocks until a ballot arrives (it moves into the processing list) or
    /// the block time passes. True if the processing list holds anything
    /// afterwards: a ballot moved.
    pub async fn wait_for_ballot(&mut self) -> redis::RedisResult<bool> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.redis.dedicated(self.block + Self::GRACE).await?;
                self.conn.insert(conn)
            }
        };
        let mut wait = redis::pipe();
        wait.cmd("CLIENT")
            .arg("REPLY")
            .arg("SKIP")
            .cmd("BLMOVE")
            .arg(QUEUE_KEY)
            .arg(&self.processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(self.block.as_secs_f64())
            .cmd("LLEN")
            .arg(&self.processing);
        let started = tokio::time::Instant::now();
        // Three commands, one answer: the `LLEN`'s.
        let held = conn
            .req_packed_commands(&wait, 0, 1)
            .await
            .and_then(|answers| match <[redis::Value; 1]>::try_from(answers) {
                Ok([answer]) => redis::from_redis_value::<u64>(answer).map_err(Into::into),
                Err(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "the wait for a ballot got an unexpected answer",
                ))),
            })
            .and_then(|held| {
                if held == 0 && started.elapsed() < self.block / 2 {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "Redis refused the blocking wait for a ballot \
                         (a read-only replica, or out of memory?)",
                    )))
                } else {
                    Ok(held)
                }
            });
        if held.is_err() {
            // A broken or timed-out connection may still have the command
            // pending on the server; drop it so the server cancels it. If it
            // moved a ballot anyway, that ballot is in our processing list
            // and the next claim returns it.
            self.conn = None;
        }
        Ok(held? > 0)
    }
}
