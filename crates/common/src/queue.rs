//! The Redis side of the pipeline: key names and the enqueue operation.
//!
//! Producers `RPUSH` ballots onto [`QUEUE_KEY`]; workers take them from the
//! head. Everything else the system keeps in Redis is named here too, so no
//! service spells a key on its own.
//!
//! ## Ordering key
//!
//! With several workers, two ballots of one voter may be stored out of
//! order. Our vote service therefore stamps every ballot with `seq`, a
//! number that only grows: [`enqueue`] runs a script that takes
//! `max(last seq + 1, Redis server time in µs)`, stores it in [`SEQ_KEY`],
//! and pushes the ballot with that `seq` in one atomic step. The time floor
//! keeps `seq` growing even if Redis loses the counter (no persistence, a
//! fresh container), and the counter keeps it strictly growing within one
//! microsecond. The worker keeps the row with the highest `seq`.

use redis::aio::ConnectionLike;

use crate::ballot::Ballot;

/// The Redis list ballots travel through (contract with the original app).
pub const QUEUE_KEY: &str = "votes";
/// The counter behind each ballot's `seq`.
pub const SEQ_KEY: &str = "votes:seq";
/// Where unparseable ballots go, with the reason, instead of being dropped.
pub const DEAD_LETTER_KEY: &str = "votes:dead";
/// Prefix of each worker's processing list: `votes:processing:<worker id>`.
pub const PROCESSING_PREFIX: &str = "votes:processing:";
/// Prefix of each worker's heartbeat key: `votes:worker:<worker id>`.
pub const HEARTBEAT_PREFIX: &str = "votes:worker:";
/// The set of worker ids that may own a processing list.
pub const WORKERS_KEY: &str = "votes:workers";

/// KEYS[1] queue, KEYS[2] seq counter; ARGV[1] the ballot's compact JSON
/// without `seq` (it ends in `}`). Returns the queue length after the push.
const ENQUEUE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = math.max(last + 1, now)
local s = string.format('%.0f', seq)
redis.call('SET', KEYS[2], s)
return redis.call('RPUSH', KEYS[1], string.sub(ARGV[1], 1, -2) .. ',"seq":' .. s .. '}')
"#;

/// The enqueue script, built once per process.
pub fn enqueue_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(ENQUEUE_LUA))
}

/// Queues one ballot, stamped with the next `seq`. Returns the queue length.
pub async fn enqueue<C: ConnectionLike + Send>(
    conn: &mut C,
    ballot: &Ballot,
) -> redis::RedisResult<u64> {
    let unstamped = Ballot {
        seq: None,
        ..ballot.clone()
    };
    enqueue_script()
        .key(QUEUE_KEY)
        .key(SEQ_KEY)
        .arg(unstamped.to_json())
        .invoke_async(conn)
        .await
}

/// The processing list owned by one worker.
pub fn processing_key(worker_id: &str) -> String {
    format!("{PROCESSING_PREFIX}{worker_id}")
}

/// The heartbeat key that says a worker is alive.
pub fn heartbeat_key(worker_id: &str) -> String {
    format!("{HEARTBEAT_PREFIX}{worker_id}")
}

/// One entry of the dead-letter list [`DEAD_LETTER_KEY`]: a payload the
/// worker could not store as a ballot, kept with the reason so an operator
/// can inspect or replay it. Stored as compact JSON, e.g.
/// `{"reason":"ballot is not valid JSON of the expected shape: unknown variant `c`, …","payload":"{…}","worker":"host-7","at_ms":1764201600000}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// Why the payload is not a ballot ([`crate::BallotError`]'s text).
    pub reason: String,
    /// The payload as queued. Bytes that are not UTF-8 are replaced by
    /// U+FFFD, so a binary payload is kept only approximately.
    pub payload: String,
    /// The id of the worker that dead-lettered it.
    pub worker: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl DeadLetter {
    pub fn to_json(&self) -> String {
        // Serializing strings and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
