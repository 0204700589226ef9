-- Append one message to a session (allocating its turn number), with an optional whiteboard snapshot.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions)
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- KEYS[7] = this request's replay key        rs:{u:<u>}:req:<request id>  (see remember in _lib)
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = session id
-- ARGV[3] = expiry index entry, <u>:<sid>
-- ARGV[4] = now, epoch microseconds (the activity score; expiry indexes take its milliseconds)
-- ARGV[5] = TTL backstop in milliseconds (0: none)
-- ARGV[6] = "<invalidation channel>|<origin>" to announce the change on ("" : none)
-- ARGV[7] = how long the reply is kept for a resent request, milliseconds
-- ARGV[8] = now, ISO-8601 text (updated_at)
-- ARGV[9] = how many messages to keep; older ones and their snapshots are trimmed
-- ARGV[10] = message JSON
-- ARGV[11] = snapshot JSON (stored under the message's turn number), or "" for none
-- Returns {turn, latest_turn_no, latest_snapshot_index, damaged} as stored afterwards, or {0} when
-- the record is missing or belongs to another user; a CORRUPT error when the record, its messages or
-- its snapshots key is damaged (nothing is written). A resent request that was applied already gets
-- the same reply again (the message is stored once).
-- The last value of a successful reply names the index keys that hold another type (damage the
-- write went around, see touch in _lib), '' when none.
local record_key, messages_key, snapshots_key, request_key = KEYS[1], KEYS[2], KEYS[3], KEYS[7]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now_iso, keep, message, snapshot = ARGV[8], tonumber(ARGV[9]), ARGV[10], ARGV[11]
local this_write = 'append ' .. session_id

local meta, reply = begin_write(request_key, this_write, record_key, user_id, {0})
if not meta then
  return reply
end

-- The message first: a messages (or snapshots) key of another type fails before anything else is
-- written (and a message written just before a failing snapshot is taken back).
local turn = meta.turns + 1
if failed(redis.pcall('HSET', messages_key, turn, message)) then
  return corrupt(messages_key, 'holds another type than a hash')
end
local latest_turn, latest_snapshot = math.max(meta.turn, turn), meta.snapshot
if snapshot ~= '' then
  if failed(redis.pcall('HSET', snapshots_key, turn, snapshot)) then
    redis.call('HDEL', messages_key, turn)
    return corrupt(snapshots_key, 'holds another type than a hash')
  end
  latest_snapshot = math.max(latest_snapshot, turn)
end
local fields = {'turns', turn, 'updated_at', now_iso, 'c:latest_turn_no', latest_turn}
if latest_snapshot > 0 then
  fields[#fields + 1] = 'c:latest_snapshot_index'
  fields[#fields + 1] = latest_snapshot
end
redis.call('HSET', record_key, unpack(fields))

-- Trim: everything at or below turn - keep goes. Earlier appends trimmed below that already, so
-- one HDEL of the two turns at the line finds one (or none); two found means keep was lowered
-- since, and the run below goes too, two by two, down to the first gap. Snapshots go with their
-- turns (none can sit above the latest snapshot index).
local old = turn - keep
while old >= 1 do
  local found = redis.call('HDEL', messages_key, old, old - 1)
  if latest_snapshot >= old - 1 then
    redis.call('HDEL', snapshots_key, old, old - 1)
  end
  if found < 2 then
    break
  end
  old = old - 2
end

local now_ms = math.floor(tonumber(now_us) / 1000)
local damaged, deadline = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta, meta.ended)
if deadline == meta.ttl_until then  -- not refreshed: the keys this append made need their TTL
  if meta.turns == 0 then  -- the first message made the messages key (trimming keeps the last)
    expire_fresh(messages_key, deadline, now_ms)
  end
  if snapshot ~= '' then
    expire_fresh(snapshots_key, deadline, now_ms)
  end
end
return remember(request_key, window_ms, this_write, {turn, latest_turn, latest_snapshot, damaged})
