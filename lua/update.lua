-- Replace the context of an existing session; bump its version and record its activity.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = session id
-- ARGV[3] = expiry index entry, <u>:<sid>
-- ARGV[4] = now, epoch milliseconds (activity score)
-- ARGV[5] = TTL backstop in milliseconds (0: none)
-- ARGV[6] = "<invalidation channel>|<origin>" to announce the change on ("" : none)
-- ARGV[7] = now, ISO-8601 text (updated_at)
-- ARGV[8] = expected version, or "" to write whatever the version is
-- ARGV[9..] = field, value pairs: the whole new context ("c:<name>" JSON fields and "folder_id");
--             stored context fields not among them are removed, except that c:latest_turn_no and
--             c:latest_snapshot_index are only ever raised (the store allocates turns).
-- Returns {1, new_version, latest_turn_no, latest_snapshot_index}; {0} when the record is missing or
-- belongs to another user (it is never re-created); {-1, stored_version} on a version conflict.
local record_key = KEYS[1]
local user_id, session_id, member, now_ms, ttl_ms, channel, now_iso, expected =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local owner, version = unpack(redis.call('HMGET', record_key, 'user_id', 'version'))
if owner ~= user_id then
  return {0}
end
if expected ~= '' and tonumber(expected) ~= tonumber(version) then
  return {-1, tonumber(version)}
end

local monotonic = {['c:latest_turn_no'] = 0, ['c:latest_snapshot_index'] = 0}
for name in pairs(monotonic) do
  monotonic[name] = tonumber(redis.call('HGET', record_key, name) or '0')
end

local new_fields, wanted = {}, {}
for i = 9, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if monotonic[name] ~= nil then
    monotonic[name] = math.max(monotonic[name], tonumber(value))
  else
    wanted[name] = true
    new_fields[#new_fields + 1] = name
    new_fields[#new_fields + 1] = value
  end
end

local stale = {}
for _, name in ipairs(redis.call('HKEYS', record_key)) do
  local is_context = string.sub(name, 1, 2) == 'c:' or name == 'folder_id'
  if is_context and not wanted[name] and monotonic[name] == nil then
    stale[#stale + 1] = name
  end
end
if #stale > 0 then
  redis.call('HDEL', record_key, unpack(stale))
end
for name, value in pairs(monotonic) do
  if value > 0 then
    new_fields[#new_fields + 1] = name
    new_fields[#new_fields + 1] = value
  end
end
new_fields[#new_fields + 1] = 'updated_at'
new_fields[#new_fields + 1] = now_iso
redis.call('HSET', record_key, unpack(new_fields))
local new_version = redis.call('HINCRBY', record_key, 'version', 1)
touch(KEYS, session_id, member, now_ms, ttl_ms, channel)
return {1, new_version, monotonic['c:latest_turn_no'], monotonic['c:latest_snapshot_index']}
