"""The Lua scripts the Redis backend runs. Each runs atomically in Redis, which is what
makes an event's id, its place in every topic's history and its live delivery one step:
no reader can see one without the others.

Key and value layout: :mod:`rawsse.backends.redis.wire`.
"""

from __future__ import annotations

__all__ = ["MARK", "PUBLISH", "READ", "TOPICS"]

#: The epoch, set to the caller's candidate (``ARGV[1]``) if Redis has none (a new or
#: emptied Redis): every script that gives out or places numbers starts with it.
#: KEYS[2] is the epoch key.
_EPOCH = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
"""


def _behind(process_epoch: str, floor: str) -> str:
    """Lua that starts a new epoch when the counter is behind what the calling process
    has delivered in the same epoch (``ARGV[process_epoch]``, ``ARGV[floor]``).

    Redis came back from a snapshot or an append-only file that missed the last
    writes: the numbers from its counter up were given already, to events other
    processes may have delivered too, and which process has seen the highest is not
    known here. Moving the counter up to this process's number (as once done) let
    another process's higher numbers be given again. A new epoch makes every id new
    whatever any process saw, and every process ends its streams when it sees it, so
    that clients resume and are told (``rawsse-lost``). The counter is moved past the
    floor too, since the topics' streams still hold entries up to it.
    """
    return f"""
local floor = tonumber(ARGV[{floor}])
if epoch == ARGV[{process_epoch}] and floor > 0 then
  local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
  if counter < floor then
    epoch = ARGV[1]
    redis.call('SET', KEYS[2], epoch)
    redis.call('SET', KEYS[1], floor)
  end
end
"""


#: Order, store and publish one event.
#:
#: KEYS: counter, epoch, ids, trimmed, topics, then one stream per topic.
#: ARGV: epoch candidate, history, ids kept, publisher's id ('' for none), body, the
#: process's epoch, the highest number it delivered (see ``_behind``), whether the
#: publisher's id may be one already kept ('1': it then names this event; '': refused),
#: then topic and channel for each topic.
#: Returns ``{epoch, seq}``; ``seq`` is 0 when the publisher's id is already kept and
#: may not be reused.
#:
#: A topic's stream is trimmed exactly to ``history`` entries, and the highest sequence
#: number trimmed is recorded per topic: Redis does not record it (trimming leaves
#: ``max-deleted-entry-id`` at 0-0), and replay must know precisely whether a client
#: missed events that are gone.
PUBLISH = (
    _EPOCH
    + _behind("6", "7")
    + """
local uid = ARGV[4]
if uid ~= '' and ARGV[8] == '' and redis.call('ZSCORE', KEYS[3], uid) then
  return {epoch, 0}
end
local seq = redis.call('INCR', KEYS[1])
if uid ~= '' then
  redis.call('ZADD', KEYS[3], seq, uid)
  local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
  if extra > 0 then
    redis.call('ZPOPMIN', KEYS[3], extra)
  end
end
local history = tonumber(ARGV[2])
local message = epoch .. ' ' .. seq .. ' ' .. ARGV[5]
for i = 6, #KEYS do
  local topic = ARGV[9 + (i - 6) * 2]
  local channel = ARGV[10 + (i - 6) * 2]
  redis.call('ZADD', KEYS[5], seq, topic)
  if history > 0 then
    local length = redis.call('XLEN', KEYS[i])
    if length >= history then
      local old = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', length - history + 1)
      local last = string.match(old[#old][1], '^(%d+)')
      redis.call('HSET', KEYS[4], topic, last)
      redis.call('XTRIM', KEYS[i], 'MINID', tostring(tonumber(last) + 1) .. '-0')
    end
    redis.call('XADD', KEYS[i], seq .. '-0', 'e', ARGV[5])
  else
    redis.call('HSET', KEYS[4], topic, seq)
  end
  redis.call('PUBLISH', channel, message)
end
return {epoch, seq}
"""
)

#: Read what a client (or a process catching up) missed on some topics.
#:
#: KEYS: trimmed, ids, then one stream per topic.
#: ARGV: publisher's id to resolve ('' when ``after`` is given), after, upto, then the
#: topics.
#: Returns ``{after, {trimmed per topic}, {entries per topic}, where}``; ``after`` is -1
#: when the publisher's id is not kept on one of the topics (whether it is kept on
#: another is not told). Entries are those with ``after < seq <= upto``. ``where`` is
#: the last number the topics have seen up to ``upto`` (kept or trimmed): the resume
#: id of a client whose id is unknown, telling nothing of other topics.
READ = """
local after = tonumber(ARGV[2])
local upto = tonumber(ARGV[3])
local trimmed = {}
local where = 0
for i = 3, #KEYS do
  local t = tonumber(redis.call('HGET', KEYS[1], ARGV[i + 1]) or '0')
  trimmed[i - 2] = t
  local newest = redis.call('XREVRANGE', KEYS[i], upto .. '-0', '-', 'COUNT', 1)
  if #newest > 0 then
    t = math.max(t, tonumber(string.match(newest[1][1], '^(%d+)')))
  end
  where = math.max(where, math.min(t, upto))
end
if ARGV[1] ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  local kept = false
  if score then
    after = tonumber(score)
    for i = 3, #KEYS do
      if #redis.call('XRANGE', KEYS[i], after .. '-0', after .. '-0') > 0 then
        kept = true
        break
      end
    end
  end
  if not kept then
    return {-1, trimmed, {}, where}
  end
end
local entries = {}
for i = 3, #KEYS do
  if upto > after then
    entries[i - 2] = redis.call('XRANGE', KEYS[i], '(' .. after .. '-0', upto .. '-0')
  else
    entries[i - 2] = {}
  end
end
return {after, trimmed, entries, where}
"""

#: Place a process in the order: publish, on its own channel, the counter's value now.
#: Everything published before it reached the process's channels before the mark does;
#: everything after has a higher number.
#:
#: KEYS: counter, epoch.
#: ARGV: epoch candidate, the process's channel, a token, the process's epoch, the
#: highest number it delivered.
#: Returns ``{epoch, counter}``, in a new epoch if the counter was behind what the
#: process delivered (see ``_behind``).
MARK = (
    _EPOCH
    + _behind("4", "5")
    + """
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('PUBLISH', ARGV[2], epoch .. ' ' .. counter .. ' ' .. ARGV[3])
return {epoch, counter}
"""
)

#: The topics whose last event's number is above ``ARGV[1]`` (all of them from -1).
#:
#: KEYS: topics.
TOPICS = """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
"""
