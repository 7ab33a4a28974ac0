//! The Redis side of the pipeline: the keys producers and consumers share,
//! and the enqueue operation.
//!
//! Producers `RPUSH` ballots onto [`QUEUE_KEY`]; workers take them from the
//! head. The keys only the worker uses (its processing lists, heartbeats,
//! the dead-letter list) are the worker's own and live there.
//!
//! ## Ordering key
//!
//! With several workers, two ballots of one voter may be stored out of
//! order. Our vote service therefore stamps every ballot with `seq`, a
//! number that only grows: the [`ENQUEUE_LUA`] script takes
//! `max(last seq + 1, Redis server time in µs)`, stores it in [`SEQ_KEY`],
//! and pushes the ballot with that `seq` in one atomic step. The time floor
//! keeps `seq` growing even if Redis loses the counter (no persistence, a
//! fresh container), and the counter keeps it strictly growing within one
//! microsecond. The worker keeps the row with the highest `seq`, and raises
//! [`SEQ_KEY`] to the highest stored one when it starts.
//!
//! Any client of Redis can also write [`SEQ_KEY`]. The script refuses to
//! stamp from a counter that is not a decimal integer, or whose next `seq`
//! would fall outside the [`SeqWindow`](crate::SeqWindow) (five minutes
//! past Redis's clock, and never past 2^53 − 1, so the Lua arithmetic on it
//! is exact): it queues nothing and fails with an error whose code is
//! [`BAD_COUNTER_CODE`]. How the counter is judged is one Lua function,
//! [`SEQ_COUNTER_LUA`], which the worker's script that raises the counter
//! uses too; the window's bounds come from [`SeqWindow`](crate::SeqWindow)
//! as the scripts' arguments. The
//! vote service answers 503 then, and the log says why; deleting the key
//! is the fix (the clock takes over).
//!
//! With the `redis` feature, `enqueue` runs the script with its keys and
//! arguments in the order it expects, and `is_bad_counter` recognises its
//! refusal.

#[cfg(feature = "redis")]
use crate::ballot::{Ballot, SeqWindow};

/// The Redis list ballots travel through (contract with the original app).
pub const QUEUE_KEY: &str = "votes";
/// The counter behind each ballot's `seq`.
pub const SEQ_KEY: &str = "votes:seq";

/// The Lua function every script that reads [`SEQ_KEY`] judges it with
/// (prepended to those scripts): `held_seq(key, newest)` is the counter as
/// a number (0 when absent), or `nil` and why no ballot can be stamped from
/// it — not an integer, or beyond `newest`, the top of the
/// [`SeqWindow`](crate::SeqWindow) that the caller passes in. A counter
/// beyond 2^53 becomes a double that is still above the window, so the
/// comparison is exact where it matters.
pub const SEQ_COUNTER_LUA: &str = r#"
local function held_seq(key, newest)
  local held = redis.call('GET', key)
  if not held then return 0 end
  if not string.match(held, '^%-?%d+$') then
    return nil, '"' .. string.sub(held, 1, 32) .. '", not an integer'
  end
  if tonumber(held) > newest then
    return nil, string.sub(held, 1, 32) .. ', beyond the accepted seq window'
  end
  return tonumber(held)
end
"#;

/// KEYS[1] queue, KEYS[2] seq counter; ARGV[1] how far past Redis's
/// clock a `seq` may be, in µs, ARGV[2] the highest `seq` at all,
/// ARGV[3..] the ballots to queue, in order, each as compact JSON without
/// `seq` (so it ends in `}`). Stamps them with consecutive `seq`s and
/// pushes them all with one `RPUSH` (so they sit together in the queue, in
/// order). Returns the queue length after the push, or a `BADSEQ` error
/// before writing anything. Runs after [`SEQ_COUNTER_LUA`].
///
/// Every number it adds or compares is an integer below 2^53, so Lua's
/// doubles do it exactly.
pub const ENQUEUE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local newest = math.min(now + tonumber(ARGV[1]), tonumber(ARGV[2]))
local count = #ARGV - 2
local last, why = held_seq(KEYS[2], newest)
local first = last and math.max(last + 1, now)
if first and first + count - 1 > newest then
  why = string.format('%.0f', last) .. ', beyond the accepted seq window'
end
if why then
  return redis.error_reply('BADSEQ ' .. KEYS[2] .. ' holds ' .. why .. ' (' ..
    string.format('%.0f', tonumber(ARGV[1]) / 1000000) .. ' s past the clock); ' ..
    'no ballot can be stamped until it is fixed (DEL ' .. KEYS[2] ..
    ' is safe: seq continues from the clock)')
end
local stamped = {}
for i = 1, count do
  stamped[i] = string.sub(ARGV[i + 2], 1, -2) .. ',"seq":' .. string.format('%.0f', first + i - 1) .. '}'
end
redis.call('SET', KEYS[2], string.format('%.0f', first + count - 1))
local length = 0
for i = 1, count, 1000 do
  length = redis.call('RPUSH', KEYS[1], unpack(stamped, i, math.min(i + 999, count)))
end
return length
"#;

/// The error code of the enqueue script's refusal to stamp from a corrupt
/// [`SEQ_KEY`].
pub const BAD_COUNTER_CODE: &str = "BADSEQ";

/// The enqueue script, built once per process.
#[cfg(feature = "redis")]
pub fn enqueue_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(&format!("{SEQ_COUNTER_LUA}{ENQUEUE_LUA}")))
}

/// Queues one ballot, stamped with the next `seq`. Returns the queue length.
/// Fails without queueing anything if Redis does, or if [`SEQ_KEY`] is
/// corrupt ([`is_bad_counter`]).
#[cfg(feature = "redis")]
pub async fn enqueue<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ballot: &Ballot,
) -> redis::RedisResult<u64> {
    enqueue_group(conn, std::slice::from_ref(ballot)).await
}

/// Queues `ballots` in one step, in order, each stamped with the next
/// `seq`: all of them or, if Redis fails or [`SEQ_KEY`] is corrupt, none.
/// Returns the queue length.
#[cfg(feature = "redis")]
pub async fn enqueue_group<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ballots: &[Ballot],
) -> redis::RedisResult<u64> {
    enqueue_invocation(ballots).invoke_async(conn).await
}

/// The enqueue script called with `ballots`, their `seq`s left to it.
#[cfg(feature = "redis")]
fn enqueue_invocation(ballots: &[Ballot]) -> redis::ScriptInvocation<'static> {
    let mut invocation = enqueue_script().key(QUEUE_KEY);
    invocation
        .key(SEQ_KEY)
        .arg(SeqWindow::ahead_us())
        .arg(SeqWindow::LIMIT);
    for ballot in ballots {
        let unstamped = Ballot {
            seq: None,
            ..ballot.clone()
        };
        invocation.arg(unstamped.to_json());
    }
    invocation
}

/// Queues one ballot like [`enqueue`], then waits until at least
/// `replicas` replicas hold it (`WAIT`), for at most `timeout`. Returns
/// the queue length and how many replicas confirmed; fewer than asked
/// means the ballot is on the primary but may be lost with it.
///
/// The push and the `WAIT` go out as one pipeline on one connection:
/// `WAIT` counts the writes made *on its own connection*, so a `WAIT` sent
/// on a fresh connection (after a reconnect between the two) would confirm
/// nothing and still report every replica.
#[cfg(feature = "redis")]
pub async fn enqueue_replicated<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ballot: &Ballot,
    replicas: u32,
    timeout: std::time::Duration,
) -> redis::RedisResult<(u64, u64)> {
    let script = enqueue_script();
    let invocation = enqueue_invocation(std::slice::from_ref(ballot));
    let wait = || {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(
            u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        wait
    };
    let pushed: redis::RedisResult<(u64, u64)> = redis::pipe()
        .invoke_script(&invocation)
        .add_command(wait())
        .query_async(conn)
        .await;
    match pushed {
        // A server that has not seen the script yet (a new primary after a
        // failover, a restart): nothing was pushed; load it and push.
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            redis::pipe()
                .load_script(script)
                .ignore()
                .invoke_script(&invocation)
                .add_command(wait())
                .query_async(conn)
                .await
        }
        pushed => pushed,
    }
}

/// True when [`enqueue`] failed because [`SEQ_KEY`] holds something no
/// ballot can be stamped from: not an integer, or beyond the window. Only
/// an operator (or a worker) can fix that; retrying cannot.
#[cfg(feature = "redis")]
pub fn is_bad_counter(e: &redis::RedisError) -> bool {
    e.code() == Some(BAD_COUNTER_CODE)
}
