//! The Lua scripts behind [`Consumer`](super::Consumer)'s calls: each runs
//! atomically in Redis, so a claim, an acknowledgement or a takeover is
//! never seen half done by another worker. Their keys and arguments are
//! listed above each; the module doc of [`super`] says what they are for.

use contract::queue::SEQ_COUNTER_LUA;

/// The first line of every script that must run while Redis is at
/// `maxmemory` (`noeviction`, as the manifests run it), where Redis
/// refuses a script whose first write may grow memory. Those below only
/// move ballots, remove them, or keep this worker registered (a few
/// bytes): refusing them would stop the one client that frees memory, and
/// a full queue would stay full for good, the worker unable to register or
/// to take a ballot. The vote service's enqueue script has no such line:
/// it is refused, and vote answers 503.
const ALLOW_OOM: &str = "#!lua flags=allow-oom\n";

/// Shared by both claim scripts (ARGV[2] the entry limit, ARGV[3] the
/// [`OVERSIZED_MARK`](super::OVERSIZED_MARK)): an entry within the limit as it is, a larger one as
/// its stand-in.
const BOUNDED_LUA: &str = r#"
local limit = tonumber(ARGV[2])
local function bounded(item)
  if #item <= limit then return item end
  local mark = ARGV[3] .. string.format('%d', #item) .. ':'
  return mark .. string.sub(item, 1, limit - #mark)
end
local function take(queue, processing, n)
  local taken = redis.call('LPOP', queue, n)
  if not taken then return {} end
  for i = 1, #taken do taken[i] = bounded(taken[i]) end
  for i = 1, #taken, 1000 do
    redis.call('RPUSH', processing, unpack(taken, i, math.min(i + 999, #taken)))
  end
  return taken
end
"#;

/// KEYS[1] queue, KEYS[2] processing; ARGV[1] batch size (and those of
/// [`BOUNDED_LUA`]). Returns {queue length, first `batch size` items of
/// the processing list, processing list length}. Items already in the
/// processing list over the limit (one the blocking wait moved there, or
/// one left by an older worker) are replaced by their stand-in in place.
const CLAIM_LUA: &str = r#"
local max = tonumber(ARGV[1])
local held = redis.call('LRANGE', KEYS[2], 0, max - 1)
for i = 1, #held do
  if #held[i] > limit then
    held[i] = bounded(held[i])
    redis.call('LSET', KEYS[2], i - 1, held[i])
  end
end
if #held < max then
  for _, item in ipairs(take(KEYS[1], KEYS[2], max - #held)) do
    held[#held + 1] = item
  end
end
return {redis.call('LLEN', KEYS[1]), held, redis.call('LLEN', KEYS[2])}
"#;

/// KEYS[1] queue, KEYS[2] processing; ARGV[1] batch size (and those of
/// [`BOUNDED_LUA`]). Returns {queue length, the items moved, 0}.
const CLAIM_MORE_LUA: &str = r#"
local taken = take(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return {redis.call('LLEN', KEYS[1]), taken, 0}
"#;

/// KEYS[1] processing, KEYS[2] dead letters; ARGV[1] batch length,
/// ARGV[2] its first item, ARGV[3] its last item, ARGV[4] how many dead
/// letters to keep, ARGV[5..] dead letters. Returns {1 if the batch was
/// removed, 0 if the processing list no longer starts with it (another
/// worker took it over after our heartbeat lapsed); the number of old dead
/// letters dropped to keep the newest ARGV[4]}.
const ACK_LUA: &str = r#"
local n = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] or redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[3] then
  return {0, 0}
end
redis.call('LTRIM', KEYS[1], n, -1)
if #ARGV < 5 then return {1, 0} end
for i = 5, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local over = redis.call('LLEN', KEYS[2]) - tonumber(ARGV[4])
if over <= 0 then return {1, 0} end
redis.call('LTRIM', KEYS[2], over, -1)
return {1, over}
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

/// KEYS[1] heartbeat, KEYS[2] worker set; ARGV[1] id, ARGV[2] the
/// heartbeat's lifetime in milliseconds. Renews the heartbeat and
/// registers the id.
const BEAT_LUA: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
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
/// not an integer inside the window (left alone). Runs after
/// [`SEQ_COUNTER_LUA`], which judges the counter as the enqueue script
/// does.
const RAISE_SEQ_LUA: &str = r#"
local held = held_seq(KEYS[1], tonumber(ARGV[2]))
if not held then return -1 end
if held < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Every script, built once per consumer.
pub(super) struct Scripts {
    pub claim: redis::Script,
    pub claim_more: redis::Script,
    pub ack: redis::Script,
    pub recover: redis::Script,
    pub deregister: redis::Script,
    pub raise_seq: redis::Script,
    pub beat: redis::Script,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            claim: redis::Script::new(&format!("{ALLOW_OOM}{BOUNDED_LUA}{CLAIM_LUA}")),
            claim_more: redis::Script::new(&format!("{ALLOW_OOM}{BOUNDED_LUA}{CLAIM_MORE_LUA}")),
            ack: redis::Script::new(&format!("{ALLOW_OOM}{ACK_LUA}")),
            recover: redis::Script::new(&format!("{ALLOW_OOM}{RECOVER_LUA}")),
            deregister: redis::Script::new(DEREGISTER_LUA),
            raise_seq: redis::Script::new(&format!("{SEQ_COUNTER_LUA}{RAISE_SEQ_LUA}")),
            beat: redis::Script::new(&format!("{ALLOW_OOM}{BEAT_LUA}")),
        }
    }
}
