-- Verify one inconsistency that `check` found and repair it when asked. Atomic: a problem that a
-- concurrent write has resolved meanwhile is reported as gone and left alone.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- ARGV[1] = the problem: "unindexed" (record without index entry), "no-expiry" (record without
--           expiry entry), "dangling-index" (index entry without record), "orphan-parts" (messages,
--           snapshots or session state without record), "dangling-expiry" (expiry entry without record),
--           "wrong-type" (the record key holds something else than a hash), "undecodable" (a record
--           whose fields are exactly ARGV[8..], which the store cannot decode); the repair of the
--           last two deletes the whole session
-- ARGV[2] = "1" to repair, "0" to only verify
-- ARGV[3] = session id
-- ARGV[4] = expiry index entry, <u>:<sid>
-- ARGV[5] = activity score for an entry that a repair adds (epoch µs for the user index, ms for an
--           expiry index)
-- ARGV[6] = "<invalidation channel>|<origin>" to announce a removal on ("" : none)
-- ARGV[7] = now, epoch milliseconds (sent with the announcement)
-- ARGV[8..] = "undecodable" only: field, value, field, value ... of the record as `check` read it; a
--           record that differs from it in any way (rewritten meanwhile) is not the one found
-- Returns 1 when the problem is there (repaired if asked), 0 when it is not, 2 when it is there but
-- its repair would have to write a key that holds another type than the layout's (a "wrong-type"
-- key, left for `check --drop-corrupt`): nothing is changed then.
local record_key, messages_key, snapshots_key, index_key, live_key, ended_key = unpack(KEYS, 1, 6)
local problem, repair, session_id, member, score = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5]
local channel, now_ms = ARGV[6], ARGV[7]

-- wrong[i]: KEYS[i] exists and holds another type than the layout gives it. Nothing below reads or
-- writes such a key with a command of its type (that would fail with WRONGTYPE).
local keys = {record_key, messages_key, snapshots_key, index_key, live_key, ended_key}
local layout = {'hash', 'hash', 'hash', 'zset', 'zset', 'zset'}
local wrong = {}
for i = 1, 6 do
  local kind = redis.call('TYPE', keys[i]).ok
  wrong[i] = kind ~= 'none' and kind ~= layout[i]
end
local function zscore(i, entry)
  return not wrong[i] and redis.call('ZSCORE', keys[i], entry)
end
local function blocked(first, last)
  for i = first, last do
    if wrong[i] then return true end
  end
  return false
end

local has_key = redis.call('EXISTS', record_key) == 1
local has_record = has_key and not wrong[1]
local found, fix_blocked = false, false
if problem == 'unindexed' then
  found = has_record and not zscore(4, session_id)
  fix_blocked = wrong[4]
  if found and repair and not fix_blocked then redis.call('ZADD', index_key, score, session_id) end
elseif problem == 'no-expiry' then
  found = has_record and not zscore(5, member) and not zscore(6, member)
  local ended = has_record and redis.call('HEXISTS', record_key, 'ended_at') == 1
  fix_blocked = wrong[ended and 6 or 5]
  if found and repair and not fix_blocked then
    redis.call('ZADD', ended and ended_key or live_key, score, member)
  end
elseif problem == 'wrong-type' or problem == 'undecodable' then
  if problem == 'wrong-type' then
    found = wrong[1]
  elseif has_record and redis.call('HLEN', record_key) == (#ARGV - 7) / 2 then
    found = true
    for i = 8, #ARGV, 2 do
      if redis.call('HGET', record_key, ARGV[i]) ~= ARGV[i + 1] then
        found = false
        break
      end
    end
  end
  fix_blocked = blocked(4, 6) -- the cascade deletes the session's own keys whatever they hold
  if found and repair and not fix_blocked then cascade(KEYS, session_id, member, channel, now_ms) end
else
  if problem == 'dangling-index' then
    found = zscore(4, session_id)
  elseif problem == 'orphan-parts' then
    found = (redis.call('EXISTS', messages_key) == 1 and not wrong[2])
      or (redis.call('EXISTS', snapshots_key) == 1 and not wrong[3])
      or redis.call('EXISTS', state_key(record_key)) == 1  -- the cascade UNLINKs whatever it holds
  elseif problem == 'dangling-expiry' then
    found = zscore(5, member) or zscore(6, member)
  else
    return redis.error_reply('unknown problem ' .. problem)
  end
  found = found and not has_key
  fix_blocked = blocked(2, 6)
  if found and repair and not fix_blocked then cascade(KEYS, session_id, member, channel, now_ms) end
end
if not found then return 0 end
return fix_blocked and 2 or 1
