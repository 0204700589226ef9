-- Verify one inconsistency that `check` found and repair it when asked. Atomic: a problem that a
-- concurrent write has resolved meanwhile is reported as gone and left alone.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- ARGV[1] = the problem: "unindexed" (record without index entry), "no-expiry" (record without
--           expiry entry), "dangling-index" (index entry without record), "orphan-parts" (messages or
--           snapshots without record), "dangling-expiry" (expiry entry without record)
-- ARGV[2] = "1" to repair, "0" to only verify
-- ARGV[3] = session id
-- ARGV[4] = expiry index entry, <u>:<sid>
-- ARGV[5] = activity score (epoch ms) for an entry that a repair adds
-- ARGV[6] = "<invalidation channel>|<origin>" to announce a removal on ("" : none)
-- ARGV[7] = now, epoch milliseconds (sent with the announcement)
-- Returns 1 when the problem is there (repaired if asked), 0 when it is not.
local record_key, messages_key, snapshots_key, index_key, live_key, ended_key = unpack(KEYS, 1, 6)
local problem, repair, session_id, member, score = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5]
local channel, now_ms = ARGV[6], ARGV[7]

local has_record = redis.call('EXISTS', record_key) == 1
local found = false
if problem == 'unindexed' then
  found = has_record and not redis.call('ZSCORE', index_key, session_id)
  if found and repair then redis.call('ZADD', index_key, score, session_id) end
elseif problem == 'no-expiry' then
  found = has_record and not redis.call('ZSCORE', live_key, member)
    and not redis.call('ZSCORE', ended_key, member)
  if found and repair then
    local target = redis.call('HEXISTS', record_key, 'ended_at') == 1 and ended_key or live_key
    redis.call('ZADD', target, score, member)
  end
else
  if problem == 'dangling-index' then
    found = redis.call('ZSCORE', index_key, session_id)
  elseif problem == 'orphan-parts' then
    found = redis.call('EXISTS', messages_key, snapshots_key) > 0
  elseif problem == 'dangling-expiry' then
    found = redis.call('ZSCORE', live_key, member) or redis.call('ZSCORE', ended_key, member)
  else
    return redis.error_reply('unknown problem ' .. problem)
  end
  found = found and not has_record
  if found and repair then cascade(KEYS, session_id, member, channel, now_ms) end
end
return found and 1 or 0
