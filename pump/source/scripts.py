"""Lua scripts of the claim/acknowledge protocol. Each runs atomically inside Redis.

Keys of one source list ``S`` (all share ``S``'s hash slot, so Redis Cluster can run them):

* ``T:pump:leases``  sorted set, member ``<instance>|<token>``, score = lease deadline (ms)
* ``T:pump:batches`` hash, token → batch id
* ``T:pump:marks``   list of ``<batch id>|<count>|<sha1 of first record>``, one per chunk at the
  head of ``S`` that was returned by ``requeue`` (or parked), in list order
* ``T:pump:p:<token>`` the processing list of one claimed batch
* ``T:pump:d:<batch id>`` hash of the pumps that have finished the batch

where ``T`` is ``S`` itself when it already carries a ``{hash tag}``, else ``{S}`` (or, for a name
Redis hashes whole despite its braces, a substitute tag of the same slot: ``keys.hash_tag``).

Why markers: a claimed batch that goes back to its list comes out again as the *same* batch
(same id, same records), so sinks that keep a ledger of applied batch ids (aggregates) never
count it twice, and pumps that already finished it are skipped. If anything else changes the head
of the list meanwhile, the first record no longer matches the marker and the markers are dropped:
the records are still delivered, only with a fresh batch id.

Why the token: the claim is named by a client-chosen token, so a claim whose reply was lost and
that the Redis client retries returns the same batch instead of claiming a second one.
"""

from __future__ import annotations

# KEYS: source, leases, marks, batches, proc     ARGV: max records, token, lease member, deadline ms
# Returns {batch id, number of records}; the client reads the records with LRANGE on the
# processing list in the same pipeline (cheaper than passing them through Lua).
CLAIM = """
local existing = redis.call('LLEN', KEYS[5])
if existing > 0 then
  return {redis.call('HGET', KEYS[4], ARGV[2]) or ARGV[2], existing}
end
local n = tonumber(ARGV[1])
local batch_id = ARGV[2]
local mark = redis.call('LINDEX', KEYS[3], 0)
if mark then
  local s1 = string.find(mark, '|', 1, true)
  local s2 = s1 and string.find(mark, '|', s1 + 1, true)
  local head = redis.call('LINDEX', KEYS[1], 0)
  if s2 and head and string.sub(mark, s2 + 1) == redis.sha1hex(head) then
    batch_id = string.sub(mark, 1, s1 - 1)
    n = tonumber(string.sub(mark, s1 + 1, s2 - 1))
    redis.call('LPOP', KEYS[3])
  else
    redis.call('DEL', KEYS[3])
  end
end
local len = redis.call('LLEN', KEYS[1])
if len == 0 then
  return {batch_id, 0}
end
local taken
if len <= n then
  -- the whole list: move it in O(1); PERSIST because RENAME carries the gateway's TTL along
  redis.call('RENAME', KEYS[1], KEYS[5])
  redis.call('PERSIST', KEYS[5])
  taken = len
else
  local items = redis.call('LRANGE', KEYS[1], 0, n - 1)
  redis.call('LTRIM', KEYS[1], n, -1)
  for i = 1, #items, 1000 do
    redis.call('RPUSH', KEYS[5], unpack(items, i, math.min(i + 999, #items)))
  end
  taken = #items
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[2], batch_id)
return {batch_id, taken}
"""

# KEYS: proc, done     ARGV: pump
# Records that a pump finished the batch, but only while the batch still exists: a mark that
# arrives after the batch was acknowledged must not recreate its progress hash.
MARK_DONE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('EXPIRE', KEYS[2], 604800)
return 1
"""

# KEYS: leases, batches, proc, done     ARGV: lease member, token
ACK = """
redis.call('UNLINK', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""

# KEYS: source, leases, marks, batches, proc, done     ARGV: lease member, token, now ms, force
# Returns the number of records put back, or -1 if the lease was renewed meanwhile.
REQUEUE = """
if ARGV[4] ~= '1' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if score and tonumber(score) > tonumber(ARGV[3]) then
    return -1
  end
end
local items = redis.call('LRANGE', KEYS[5], 0, -1)
local batch_id = redis.call('HGET', KEYS[4], ARGV[2]) or ARGV[2]
if #items > 0 then
  local i = #items
  while i >= 1 do
    local lo = math.max(1, i - 999)
    local chunk = {}
    for j = i, lo, -1 do
      chunk[#chunk + 1] = items[j]
    end
    redis.call('LPUSH', KEYS[1], unpack(chunk))
    i = lo - 1
  end
  redis.call('LPUSH', KEYS[3], batch_id .. '|' .. #items .. '|' .. redis.sha1hex(items[1]))
  redis.call('EXPIRE', KEYS[6], 604800)
else
  redis.call('DEL', KEYS[6])
end
redis.call('UNLINK', KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[2])
return #items
"""

# KEYS: backlog, backlog marks, guard     ARGV: batch id, records...
# Appends one batch to a pump's own backlog as a marked chunk; idempotent per batch id. The guard
# only has to outlive a retried call or a batch coming back after its lease: an hour is plenty.
PARK = """
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', 3600) == false then
  return 0
end
local n = #ARGV - 1
if n == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1] .. '|' .. n .. '|' .. redis.sha1hex(ARGV[2]))
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return n
"""

# KEYS: list, guard     ARGV: entries...   (idempotent append, for dead-letter entries)
APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', 3600) == false then
  return 0
end
for i = 1, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return #ARGV
"""
