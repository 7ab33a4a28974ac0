//! The worker's blocking wait on an empty queue: [`Waiter`].
//!
//! When a claim finds nothing, the worker blocks with `BLMOVE votes
//! <processing> LEFT RIGHT <block>` on a connection of its own (a blocking
//! command holds up everything else on its connection, and needs a
//! response timeout longer than the block). The move keeps the queue
//! reliable: the ballot lands in this worker's processing list, so even a
//! wait whose answer is lost to a broken connection leaves it where the
//! next claim finds it.

use std::time::Duration;

use contract::queue::QUEUE_KEY;
use redis::aio::MultiplexedConnection;
use servicekit::connect::Redis;

use crate::queue::processing_key;

/// Waits on an empty queue: `BLMOVE` on a connection of its own, remade
/// after any error.
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
    /// the block time passes. True if a ballot moved.
    pub async fn wait_for_ballot(&mut self) -> redis::RedisResult<bool> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.redis.dedicated(self.block + Self::GRACE).await?;
                self.conn.insert(conn)
            }
        };
        let moved: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("BLMOVE")
            .arg(QUEUE_KEY)
            .arg(&self.processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(self.block.as_secs_f64())
            .query_async(conn)
            .await;
        if moved.is_err() {
            // A broken or timed-out connection may still have the command
            // pending on the server; drop it so the server cancels it. If it
            // moved a ballot anyway, that ballot is in our processing list
            // and the next claim returns it.
            self.conn = None;
        }
        Ok(moved?.is_some())
    }
}
