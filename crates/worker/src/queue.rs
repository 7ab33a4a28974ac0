//! The worker's side of the Redis reliable queue: [`Consumer`], one
//! worker's handle for claiming, acknowledging and heartbeats (not the
//! queue itself, which is the list `votes` every producer shares), and
//! [`Waiter`], its blocking wait for the next ballot.
//!
//! A ballot leaves Redis only after Postgres has committed it. Between the
//! two it sits in this worker's *processing list*
//! (`votes:processing:<worker id>`), so a worker that dies mid-batch leaves
//! its batch in Redis, not in a lost buffer:
//!
//! 1. [`Consumer::claim`] — one Lua script: top the processing list up from the
//!    head of `votes` (`LPOP n` + `RPUSH`, atomic) and return its contents.
//!    Whatever is already there — a batch left by a crash, or one whose
//!    acknowledgement failed — is returned first, so the same call serves
//!    start-up recovery and recovery after any Redis error.
//! 2. [`Waiter::wait_for_ballot`] — when the queue is empty, `BLMOVE votes
//!    <processing> LEFT RIGHT <block>` on a dedicated connection. The moved
//!    ballot lands in the processing list, so even a reply lost to a broken
//!    connection is found by the next claim.
//! 3. The caller commits the batch to Postgres. Meanwhile it may claim the
//!    next batch with [`Consumer::claim_more`], which appends it to the
//!    processing list behind the batch being committed.
//! 4. [`Consumer::acknowledge`] — one Lua script: drop the batch from the head
//!    of the processing list (`LTRIM`, not `DEL`: anything appended after
//!    the claim stays for the next one) and push the batch's dead letters.
//!
//! Liveness: each worker keeps a heartbeat key with a TTL and its id in the
//! set `votes:workers` ([`Consumer::beat`]). [`Consumer::recover_dead_workers`]
//! moves the processing list of every registered worker whose heartbeat
//! expired back to the head of `votes`, in its original order, and forgets
//! that worker.

use std::sync::Arc;
use std::time::Duration;

use contract::SeqWindow;
use contract::queue::{QUEUE_KEY, SEQ_KEY};
use redis::aio::MultiplexedConnection;
use servicekit::connect::{Primary, Redis};

use crate::batch::DeadLetter;

/// Where payloads that are not ballots go, with the reason, instead of
/// being dropped (see [`DeadLetter`]).
pub const DEAD_LETTER_KEY: &str = "votes:dead";
/// Prefix of each worker's processing list: `votes:processing:<worker id>`.
pub const PROCESSING_PREFIX: &str = "votes:processing:";
/// Prefix of each worker's heartbeat key: `votes:worker:<worker id>`.
pub const HEARTBEAT_PREFIX: &str = "votes:worker:";
/// The set of worker ids that may own a processing list.
pub const WORKERS_KEY: &str = "votes:workers";

/// The processing list owned by one worker.
pub fn processing_key(worker_id: &str) -> String {
    format!("{PROCESSING_PREFIX}{worker_id}")
}

/// The heartbeat key that says a worker is alive.
pub fn heartbeat_key(worker_id: &str) -> String {
    format!("{HEARTBEAT_PREFIX}{worker_id}")
}

/// KEYS[1] queue, KEYS[2] processing; ARGV[1] batch size.
/// Returns {queue length, first `batch size` items of the processing list,
/// processing list length}.
const CLAIM_LUA: &str = r#"
local max = tonumber(ARGV[1])
local have = redis.call('LLEN', KEYS[2])
if have < max then
  local taken = redis.call('LPOP', KEYS[1], max - have)
  if taken then
    for i = 1, #taken, 1000 do
      redis.call('RPUSH', KEYS[2], unpack(taken, i, math.min(i + 999, #taken)))
    end
  end
end
return {redis.call('LLEN', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, max - 1), redis.call('LLEN', KEYS[2])}
"#;

/// KEYS[1] queue, KEYS[2] processing; ARGV[1] batch size.
/// Returns {queue length, the items moved, 0}.
const CLAIM_MORE_LUA: &str = r#"
local taken = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not taken then return {0, {}, 0} end
for i = 1, #taken, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(taken, i, math.min(i + 999, #taken)))
end
return {redis.call('LLEN', KEYS[1]), taken, 0}
"#;

/// KEYS[1] processing, KEYS[2] dead letters; ARGV[1] batch length,
/// ARGV[2] its first item, ARGV[3] its last item, ARGV[4..] dead letters.
/// Returns 1 if the batch was removed, 0 if the processing list no longer
/// starts with it (another worker took it over after our heartbeat lapsed).
const ACK_LUA: &str = r#"
local n = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] or redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[3] then
  return 0
end
redis.call('LTRIM', KEYS[1], n, -1)
for i = 4, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
"#;

/// KEYS[1] worker set, KEYS[2] queue; ARGV[1] heartbeat prefix,
/// ARGV[2] processing prefix, ARGV[3] our own id. Returns the number of
/// ballots moved back to the queue.
const RECOVER_LUA: &str = r#"
local moved = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. id) == 0 then
    local key = ARGV[2] .. id
    local items = redis.call('LRANGE', key, 0, -1)
    for i = #items, 1, -1 do
      redis.call('LPUSH', KEYS[2], items[i])
    end
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], id)
    moved = moved + #items
  end
end
return moved
"#;

/// KEYS[1] processing, KEYS[2] heartbeat, KEYS[3] worker set; ARGV[1] id.
/// Forgets this worker only if it holds nothing; otherwise its heartbeat
/// lapses and a live worker (or this one, restarted) takes the rest.
const DEREGISTER_LUA: &str = r#"
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"#;

/// KEYS[1] seq counter; ARGV[1] a floor (an accepted seq), ARGV[2] the
/// highest accepted seq. Raises the counter to the floor. Returns 1 if it
/// did, 0 if the counter was at or above the floor, -1 if the counter is
/// not an integer inside the window (left alone). Both arguments are below
/// 2^53, so comparing them as Lua doubles is exact; a counter beyond that
/// becomes a double that is still above the window.
const RAISE_SEQ_LUA: &str = r#"
local held = redis.call('GET', KEYS[1])
if held and (not string.match(held, '^%-?%d+$') or tonumber(held) > tonumber(ARGV[2])) then
  return -1
end
if tonumber(held or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// What [`Consumer::raise_seq`] found in `votes:seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCounter {
    /// It was below the floor (or missing) and now holds the floor.
    Raised,
    /// It was at or above the floor: left as it was.
    Unchanged,
    /// It holds something no ballot can be stamped from (not an integer,
    /// or beyond the window): left alone for an operator to delete, since
    /// lowering a counter could reorder ballots already queued.
    Corrupt,
}

/// What a claim found.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The batch, in queue order: exactly the head of the processing list.
    pub payloads: Vec<Vec<u8>>,
    /// Ballots still waiting in the queue after the claim.
    pub queue_depth: u64,
    /// Entries of the processing list behind the batch (left by a crash
    /// with a larger batch or a batch claimed ahead). The next batch may
    /// only be claimed ahead when this is 0, or it would be stored before
    /// them.
    pub behind: u64,
}

/// One worker's handle on the queue, for short commands: claims, acks,
/// heartbeats, taking over lapsed workers' batches. Cheap to clone (the heartbeat task holds one).
#[derive(Clone)]
pub struct Consumer {
    id: String,
    processing: String,
    heartbeat: String,
    /// Fails fast (1 s) and reconnects after errors.
    redis: Primary,
    scripts: Arc<Scripts>,
}

struct Scripts {
    claim: redis::Script,
    claim_more: redis::Script,
    ack: redis::Script,
    recover: redis::Script,
    deregister: redis::Script,
    raise_seq: redis::Script,
}

impl Consumer {
    /// Handles for worker `id`; connects lazily.
    pub fn new(redis: &Redis, id: &str) -> anyhow::Result<Self> {
        Ok(Consumer {
            id: id.to_owned(),
            processing: processing_key(id),
            heartbeat: heartbeat_key(id),
            redis: redis.manager()?,
            scripts: Arc::new(Scripts {
                claim: redis::Script::new(CLAIM_LUA),
                claim_more: redis::Script::new(CLAIM_MORE_LUA),
                ack: redis::Script::new(ACK_LUA),
                recover: redis::Script::new(RECOVER_LUA),
                deregister: redis::Script::new(DEREGISTER_LUA),
                raise_seq: redis::Script::new(RAISE_SEQ_LUA),
            }),
        })
    }

    /// The connection for short commands (health checks share it).
    pub fn manager(&self) -> &Primary {
        &self.redis
    }

    /// Tops the processing list up to `max` ballots and returns its head.
    pub async fn claim(&self, max: usize) -> redis::RedisResult<Claimed> {
        self.run_claim(&self.scripts.claim, max).await
    }

    /// Moves up to `max` more ballots from the queue to the end of the
    /// processing list, behind the batch in flight, and returns just them.
    pub async fn claim_more(&self, max: usize) -> redis::RedisResult<Claimed> {
        self.run_claim(&self.scripts.claim_more, max).await
    }

    async fn run_claim(&self, script: &redis::Script, max: usize) -> redis::RedisResult<Claimed> {
        let (queue_depth, payloads, listed): (u64, Vec<Vec<u8>>, u64) = script
            .key(QUEUE_KEY)
            .key(&self.processing)
            .arg(max)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(Claimed {
            behind: listed.saturating_sub(payloads.len() as u64),
            payloads,
            queue_depth,
        })
    }

    /// Removes a committed batch of `batch` from the processing list and
    /// files its dead letters, atomically. False if the list no longer
    /// starts with the batch: another worker took it over (our heartbeat
    /// lapsed) and will store it again, harmlessly.
    pub async fn acknowledge(
        &self,
        batch: &[Vec<u8>],
        dead: &[DeadLetter],
    ) -> redis::RedisResult<bool> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(true);
        };
        let mut call = self.scripts.ack.key(&self.processing);
        call.key(DEAD_LETTER_KEY)
            .arg(batch.len())
            .arg(first.as_slice())
            .arg(last.as_slice());
        for letter in dead {
            call.arg(letter.to_json());
        }
        let removed: i64 = call.invoke_async(&mut self.redis.clone()).await?;
        Ok(removed == 1)
    }

    /// Renews this worker's heartbeat for `ttl` and registers its id.
    pub async fn beat(&self, ttl: Duration) -> redis::RedisResult<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&self.heartbeat)
            .arg(&self.id)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(WORKERS_KEY)
            .arg(&self.id)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Moves the batches of workers whose heartbeat lapsed back to the head
    /// of the queue, in order. Returns how many ballots moved.
    pub async fn recover_dead_workers(&self) -> redis::RedisResult<u64> {
        self.scripts
            .recover
            .key(WORKERS_KEY)
            .key(QUEUE_KEY)
            .arg(HEARTBEAT_PREFIX)
            .arg(PROCESSING_PREFIX)
            .arg(&self.id)
            .invoke_async(&mut self.redis.clone())
            .await
    }

    /// Unregisters this worker if its processing list is empty. True if it
    /// did.
    pub async fn deregister(&self) -> redis::RedisResult<bool> {
        let done: i64 = self
            .scripts
            .deregister
            .key(&self.processing)
            .key(&self.heartbeat)
            .key(WORKERS_KEY)
            .arg(&self.id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(done == 1)
    }

    /// Makes sure the vote service's next `seq` is above `floor` (the
    /// highest stored, inside `window`), in case Redis lost the counter and
    /// the clock went back. A floor outside `window` is ignored: a `seq`
    /// outside the window never moves the counter.
    pub async fn raise_seq(&self, floor: i64, window: SeqWindow) -> redis::RedisResult<SeqCounter> {
        let floor = if window.contains(floor) { floor } else { 0 };
        let found: i64 = self
            .scripts
            .raise_seq
            .key(SEQ_KEY)
            .arg(floor)
            .arg(window.newest())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match found {
            1 => SeqCounter::Raised,
            -1 => SeqCounter::Corrupt,
            _ => SeqCounter::Unchanged,
        })
    }

    /// Ballots waiting in the queue.
    pub async fn depth(&self) -> redis::RedisResult<u64> {
        redis::cmd("LLEN")
            .arg(QUEUE_KEY)
            .query_async(&mut self.redis.clone())
            .await
    }
}

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
