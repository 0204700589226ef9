-- Append a batch of messages to a session (consecutive turn numbers, in one atomic write) and/or
-- change its free-form state, its user's state of one scope and its entry in a scoped index.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions)
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- KEYS[7] = this request's replay key        rs:{u:<u>}:req:<request id>  (see remember in _lib)
-- KEYS[8] = the session's state hash         rs:{u:<u>}:s:<sid>:state  (field -> JSON)
-- KEYS[9] = (with ARGV[13] > 0) the user's state hash of a scope   rs:{u:<u>}:us:<scope>
-- KEYS[10] = (with ARGV[14] ~= "") the user's scoped session index rs:{u:<u>}:ext:<scope>
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = session id
-- ARGV[3] = expiry index entry, <u>:<sid>
-- ARGV[4] = now, epoch microseconds (the activity score; expiry indexes take its milliseconds)
-- ARGV[5] = TTL backstop in milliseconds (0: none)
-- ARGV[6] = "<invalidation channel>|<origin>" to announce the change on ("" : none)
-- ARGV[7] = how long the reply is kept for a resent request, milliseconds
-- ARGV[8] = now, ISO-8601 text (updated_at)
-- ARGV[9] = how many messages to keep; older ones and their snapshots are trimmed
-- ARGV[10] = the turn counter the caller last read ("" : any): another value writes nothing
-- ARGV[11] = m, the number of messages; ARGV[12] = s, session state changes; ARGV[13] = t, user
--            state changes; ARGV[14] = the scoped index entry to add or rescore ("" : none)
-- ARGV[15..] = m message JSONs, then s field/value pairs of the session state, then t pairs of the
--              user state; a value "" removes its field (JSON text is never empty)
-- Returns {1, last turn, latest_turn_no, latest_snapshot_index, damaged} as stored afterwards (last
-- turn: the turn counter, unchanged when m is 0), {0} when the record is missing or belongs to
-- another user, {-1, turns} when the turn counter is not ARGV[10] (nothing written); a CORRUPT error
-- when the record or a key to write holds another type (nothing written). A resent request that
-- was applied already gets the same reply again (the batch is stored once).
local record_key, messages_key, snapshots_key, request_key = KEYS[1], KEYS[2], KEYS[3], KEYS[7]
local state_hash, user_hash, scoped_index = KEYS[8], KEYS[9], KEYS[10]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now_iso, keep, expected = ARGV[8], tonumber(ARGV[9]), ARGV[10]
local m, s, t, entry = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14]
local this_write = 'append_many ' .. session_id

local meta, reply = begin_write(request_key, this_write, record_key, user_id, {0})
if not meta then
  return reply
end
if expected ~= '' and tonumber(expected) ~= meta.turns then
  return {-1, meta.turns}
end

-- Every key this write changes must hold its layout's type, checked before anything is written.
local function kind(key)
  return redis.call('TYPE', key).ok
end
local targets = {}
if m > 0 then targets[#targets + 1] = {messages_key, 'hash'} end
if s > 0 then targets[#targets + 1] = {state_hash, 'hash'} end
if t > 0 then targets[#targets + 1] = {user_hash, 'hash'} end
if entry ~= '' then targets[#targets + 1] = {scoped_index, 'zset'} end
for _, target in ipairs(targets) do
  local found = kind(target[1])
  if found ~= 'none' and found ~= target[2] then
    return corrupt(target[1], 'holds another type than a ' .. target[2])
  end
end
local had_messages = m > 0 and redis.call('EXISTS', messages_key) == 1
local had_state = s > 0 and redis.call('EXISTS', state_hash) == 1

local function apply(key, first, count)
  for i = first, first + 2 * count - 1, 2 do
    if ARGV[i + 1] == '' then
      redis.call('HDEL', key, ARGV[i])
    else
      redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    end
  end
end

local last = meta.turns + m
local latest_turn, latest_snapshot = meta.turn, meta.snapshot
if m > 0 then
  local fields = {}
  for i = 1, m do
    local turn, message = meta.turns + i, ARGV[14 + i]
    if turn > last - keep then  -- what the trim below would take at once is never written
      fields[#fields + 1] = turn
      fields[#fields + 1] = message
    end
  end
  redis.call('HSET', messages_key, unpack(fields))
  latest_turn = math.max(latest_turn, last)
  -- Trim: everything at or below last - keep goes; below meta.turns - keep it went already.
  local old = last - keep
  while old >= 1 do
    local found = redis.call('HDEL', messages_key, old)
    if latest_snapshot >= old then
      redis.pcall('HDEL', snapshots_key, old)  -- a snapshots key of another type is left alone
    end
    if found == 0 and old <= meta.turns - keep then
      break
    end
    old = old - 1
  end
  redis.call('HSET', record_key, 'turns', last, 'c:latest_turn_no', latest_turn)
end
apply(state_hash, 15 + m, s)
apply(user_hash, 15 + m + 2 * s, t)
local now_ms = math.floor(tonumber(now_us) / 1000)
if entry ~= '' then
  redis.call('ZADD', scoped_index, now_ms, entry)
end
redis.call('HSET', record_key, 'updated_at', now_iso)

local damaged, deadline = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta, meta.ended)
if deadline == meta.ttl_until then  -- not refreshed: the keys this write made need their TTL
  if m > 0 and not had_messages then
    expire_fresh(messages_key, deadline, now_ms)
  end
  if s > 0 and not had_state then
    expire_fresh(state_hash, deadline, now_ms)
  end
end
return remember(request_key, window_ms, this_write, {1, last, latest_turn, latest_snapshot, damaged})
