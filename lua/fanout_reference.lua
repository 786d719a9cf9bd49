-- fanout_reference.lua - the reference system's per-article fan-out, done server-side in one script.
--
-- This is the BASELINE the agentic module is benchmarked against. It reproduces, command for
-- command, what the reference Python fan-out agent does for one article:
--
--   XADD topic:<topic> MAXLEN ~ <topic_maxlen> * data <payload>
--   for every uid in SMEMBERS subs:<topic>   (or the explicit uids given as extra arguments):
--     if SADD seen:{<uid>} <doc_id> == 1 then        -- not seen yet
--       EXPIRE seen:{<uid>} <seen_ttl_s>
--       LPUSH  feed:{<uid>} <payload>
--       LTRIM  feed:{<uid>} 0 <feed_len - 1>
--       XADD   feedstream:{<uid>} MAXLEN ~ <feed_len> * data <payload>
--
-- Usage:
--   EVALSHA <sha> 0 <topic> <doc_id> <payload> <feed_len> <seen_ttl_s> <topic_maxlen> [uid ...]
--
-- Reply: { delivered, duplicates }  (users that got the article / users that had already seen it)
--
-- NOT CLUSTER-SAFE: like the reference, the script computes its key names from ARGV instead of
-- declaring them in KEYS, and touches keys of many users (many hash slots) in one call. It only
-- works on a standalone server (no script flags, so undeclared keys are allowed there).
-- Every subscriber's feed holds a full copy of the payload twice (list and stream), and the whole
-- fan-out runs in one script invocation, blocking the server for its duration.

local topic = ARGV[1]
local doc_id = ARGV[2]
local payload = ARGV[3]
local feed_len = tonumber(ARGV[4])
local seen_ttl = tonumber(ARGV[5])
local topic_maxlen = tonumber(ARGV[6])

if topic == nil or doc_id == nil or payload == nil then
  return redis.error_reply('ERR usage: EVALSHA sha 0 topic doc_id payload feed_len seen_ttl_s topic_maxlen [uid ...]')
end
if feed_len == nil or feed_len < 1 or feed_len ~= math.floor(feed_len) then
  return redis.error_reply('ERR feed_len must be a positive integer')
end
if seen_ttl == nil or seen_ttl < 1 or seen_ttl ~= math.floor(seen_ttl) then
  return redis.error_reply('ERR seen_ttl_s must be a positive integer')
end
if topic_maxlen == nil or topic_maxlen < 0 or topic_maxlen ~= math.floor(topic_maxlen) then
  return redis.error_reply('ERR topic_maxlen must be a non-negative integer')
end

-- The article goes to the topic stream first (the enricher's output in the reference).
redis.call('XADD', 'topic:' .. topic, 'MAXLEN', '~', topic_maxlen, '*', 'data', payload)

local uids
if #ARGV > 6 then
  uids = {}
  for i = 7, #ARGV do
    uids[#uids + 1] = ARGV[i]
  end
else
  uids = redis.call('SMEMBERS', 'subs:' .. topic)
end

local delivered = 0
local duplicates = 0
local last = feed_len - 1
for _, uid in ipairs(uids) do
  local seen_key = 'seen:{' .. uid .. '}'
  if redis.call('SADD', seen_key, doc_id) == 1 then
    redis.call('EXPIRE', seen_key, seen_ttl)
    local feed_key = 'feed:{' .. uid .. '}'
    redis.call('LPUSH', feed_key, payload)
    redis.call('LTRIM', feed_key, 0, last)
    redis.call('XADD', 'feedstream:{' .. uid .. '}', 'MAXLEN', '~', feed_len, '*', 'data', payload)
    delivered = delivered + 1
  else
    duplicates = duplicates + 1
  end
end

return { delivered, duplicates }
