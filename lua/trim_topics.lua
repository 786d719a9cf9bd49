-- trim_topics.lua - the reference system's "slinky backlog" topic trim.
--
-- Usage:  EVAL <script> N stream1 ... streamN maxlen
-- Trims every given stream with an exact `XTRIM key MAXLEN maxlen` and replies with the number of
-- entries removed from each stream, in KEYS order (0 for a missing or short stream).
--
-- WARNING - this is the reference behaviour, kept as a baseline: the trim is BLIND. It drops the
-- oldest entries even when a consumer group has not read or acknowledged them yet, so a slow
-- consumer silently loses work, and nothing counts the loss. The agentic module trims safely
-- instead: it never drops entries a consumer group has not processed (unless the operator asks for
-- it) and counts every drop.
--
-- Keys are declared in KEYS, so this script is usable on a cluster when all streams share a slot.

local maxlen = tonumber(ARGV[1])
if maxlen == nil or maxlen < 0 or maxlen ~= math.floor(maxlen) then
  return redis.error_reply('ERR usage: EVAL script N stream1..streamN maxlen (maxlen a non-negative integer)')
end

local removed = {}
for i, key in ipairs(KEYS) do
  removed[i] = redis.call('XTRIM', key, 'MAXLEN', maxlen)
end
return removed
