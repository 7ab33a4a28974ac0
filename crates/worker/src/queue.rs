//! The worker's side of the Redis reliable queue: [`Consumer`], one
//! worker's handle for claiming, acknowledging and heartbeats (not the
//! queue itself, which is the list `votes` every producer shares); its
//! blocking wait for the next ballot is [`crate::waiter`]'s.
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
//! 2. [`Waiter::wait_for_ballot`](crate::waiter::Waiter::wait_for_ballot) —
//!    when the queue is empty, `BLMOVE votes <processing> LEFT RIGHT
//!    <block>` on a dedicated connection. The moved ballot lands in the
//!    processing list, so even a reply lost to a broken connection is found
//!    by the next claim (the wait asks for no reply at all: see
//!    [`crate::waiter`]).
//! 3. The caller commits the batch to Postgres. Meanwhile it may claim the
//!    next batch with [`Consumer::claim_more`], which appends it to the
//!    processing list behind the batch being committed.
//! 4. [`Consumer::acknowledge`] — one Lua script: drop the batch from the head
//!    of the processing list (`LTRIM`, not `DEL`: anything appended after
//!    the claim stays for the next one), push the batch's dead letters and
//!    trim `votes:dead` to the newest `MAX_DEAD_LETTERS` (see
//!    [`crate::dead_letter`]).
//!
//! No entry leaves Redis whole if it is over the ballot limit
//! ([`MAX_BALLOT_BYTES`]): any client of Redis can push one of hundreds of
//! megabytes, and a worker that fetched it would need several times that
//! in memory — under a container's limit it is killed, the entry stays in
//! its processing list, and the next worker to take it over dies the same
//! way. So both claim scripts replace such an entry, where it lies in the
//! processing list, by an [`Oversized`] stand-in of at most the limit: a
//! mark, the entry's size and its first bytes. The stand-in is acknowledged
//! and recovered like any entry, and [`crate::batch`] turns it into a dead
//! letter. The entry itself is copied only inside Redis (the script's
//! `LPOP`/`LRANGE`), never to the worker.
//!
//! Liveness: each worker keeps a heartbeat key with a TTL and its id in the
//! set `votes:workers` ([`Consumer::beat`]). [`Consumer::recover_dead_workers`]
//! moves the processing list of every registered worker whose heartbeat
//! expired back to the head of `votes`, in its original order, and forgets
//! that worker.

use std::sync::Arc;
use std::time::Duration;

use contract::SeqWindow;
use contract::ballot::MAX_BALLOT_BYTES;
use contract::queue::{QUEUE_KEY, SEQ_KEY};
use servicekit::connect::{Redis, SharedRedis};

use crate::dead_letter::{DEFAULT_KEPT, DeadLetter};
use scripts::Scripts;

mod scripts;

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

/// What the claim scripts put in the processing list in place of an entry
/// over [`MAX_BALLOT_BYTES`]: this mark, the entry's size in decimal, `:`,
/// then as many of its first bytes as fit the limit. No ballot starts with
/// `!` (a ballot is a JSON object), so no ballot is mistaken for one.
pub const OVERSIZED_MARK: &str = "!oversized:";

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

/// The stand-in a claim returns for an entry over [`MAX_BALLOT_BYTES`]
/// (see [`OVERSIZED_MARK`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized<'a> {
    /// The entry's size in bytes, as Redis held it.
    pub size: usize,
    /// Its first bytes.
    pub head: &'a [u8],
}

impl<'a> Oversized<'a> {
    /// The stand-in in `item`, if it is one.
    pub fn parse(item: &'a [u8]) -> Option<Self> {
        let rest = item.strip_prefix(OVERSIZED_MARK.as_bytes())?;
        let colon = rest.iter().position(|&b| b == b':')?;
        let size = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
        Some(Oversized {
            size,
            head: &rest[colon + 1..],
        })
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    /// False if the processing list no longer started with the batch:
    /// another worker took it over (our heartbeat lapsed) and will store
    /// it again, harmlessly.
    pub removed: bool,
    /// Old dead letters dropped to keep the newest `MAX_DEAD_LETTERS`.
    pub dropped: u64,
}

/// One worker's handle on the queue, for short commands: claims, acks,
/// heartbeats, taking over lapsed workers' batches. Cheap to clone (the heartbeat task holds one).
#[derive(Clone)]
pub struct Consumer {
    id: String,
    processing: String,
    heartbeat: String,
    /// Fails fast (1 s) and reconnects after errors.
    redis: SharedRedis,
    scripts: Arc<Scripts>,
    /// How many dead letters `votes:dead` keeps.
    dead_letters_kept: u32,
}

impl Consumer {
    /// Handles for worker `id`; connects lazily.
    pub fn new(redis: &Redis, id: &str) -> anyhow::Result<Self> {
        Ok(Consumer {
            id: id.to_owned(),
            processing: processing_key(id),
            heartbeat: heartbeat_key(id),
            redis: redis.shared()?,
            scripts: Arc::new(Scripts::new()),
            dead_letters_kept: DEFAULT_KEPT,
        })
    }

    /// Keeps the newest `kept` dead letters instead of [`DEFAULT_KEPT`].
    pub fn keeping_dead_letters(mut self, kept: u32) -> Self {
        self.dead_letters_kept = kept.max(1);
        self
    }

    /// The connection for short commands (health checks share it).
    pub fn shared(&self) -> &SharedRedis {
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
            .arg(MAX_BALLOT_BYTES)
            .arg(OVERSIZED_MARK)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(Claimed {
            behind: listed.saturating_sub(payloads.len() as u64),
            payloads,
            queue_depth,
        })
    }

    /// Removes a committed batch of `batch` from the processing list and
    /// files its dead letters, dropping the oldest beyond the newest
    /// `MAX_DEAD_LETTERS`, atomically. Not removed if the list no longer
    /// starts with the batch (see [`Acknowledged`]).
    pub async fn acknowledge(
        &self,
        batch: &[Vec<u8>],
        dead: &[DeadLetter],
    ) -> redis::RedisResult<Acknowledged> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(Acknowledged {
                removed: true,
                dropped: 0,
            });
        };
        let mut call = self.scripts.ack.key(&self.processing);
        call.key(DEAD_LETTER_KEY)
            .arg(batch.len())
            .arg(first.as_slice())
            .arg(last.as_slice())
            .arg(self.dead_letters_kept);
        for letter in dead {
            call.arg(letter.to_json());
        }
        let (removed, dropped): (i64, u64) = call.invoke_async(&mut self.redis.clone()).await?;
        Ok(Acknowledged {
            removed: removed == 1,
            dropped,
        })
    }

    /// Renews this worker's heartbeat for `ttl` and registers its id; also
    /// when Redis is at `maxmemory` (see the scripts' `ALLOW_OOM`).
    pub async fn beat(&self, ttl: Duration) -> redis::RedisResult<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let _: i64 = self
            .scripts
            .beat
            .key(&self.heartbeat)
            .key(WORKERS_KEY)
            .arg(&self.id)
            .arg(ttl_ms)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
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
