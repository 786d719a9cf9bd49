-- redis_exporter -script: the module's AGENT.STATS as redis_script_values{key="<name>"}.
-- AGENT.STATS already replies with the flat bulk-string name/value array the exporter wants.
-- agent_stats_up says whether it answered: when it fails (module not loaded, or the exporter's
-- ACL user lacks +agent.stats) the exporter would otherwise report the whole scrape as failed,
-- redis_up 0 included, although Valkey itself is up.
local stats = redis.pcall('AGENT.STATS')
if stats.err then
  return {'agent_stats_up', '0'}
end
stats[#stats + 1] = 'agent_stats_up'
stats[#stats + 1] = '1'
return stats
