-- Record that a session ended (the first end time is kept); counts as activity.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = the user's session index (zset)  rs:{u:<u>}:idx
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = session id
-- ARGV[3] = now, epoch milliseconds (index score)
-- ARGV[4] = now, ISO-8601 text
-- Returns the recorded ended_at text, or false when the record is missing or another user's.
local record_key, index_key = KEYS[1], KEYS[2]
local user_id, session_id, now_ms, now_iso = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if redis.call('HGET', record_key, 'user_id') ~= user_id then
  return false
end
redis.call('HSETNX', record_key, 'ended_at', now_iso)
redis.call('HSET', record_key, 'updated_at', now_iso)
redis.call('ZADD', index_key, now_ms, session_id)
return redis.call('HGET', record_key, 'ended_at')
