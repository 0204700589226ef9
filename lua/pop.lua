-- Take the latest message of a session back, atomically: it is removed (with its snapshot) and its
-- turn number is given back to the turn counter, so the next message takes it again.
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
-- Returns {2, turn, message JSON, damaged} for the message taken, {1} when the session has no
-- message (nothing written), {0} when the record is missing or belongs to another user; a CORRUPT
-- error when the record or its messages key is damaged (nothing written). A resent request that was
-- applied already gets the same reply again (one message is taken, never two).
-- latest_turn_no and latest_snapshot_index are not lowered: they only ever go up.
local record_key, messages_key, snapshots_key, request_key = KEYS[1], KEYS[2], KEYS[3], KEYS[7]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now_iso = ARGV[8]
local this_write = 'pop ' .. session_id

local meta, reply = begin_write(request_key, this_write, record_key, user_id, {0})
if not meta then
  return reply
end
local turn = meta.turns
if turn < 1 then
  return {1}
end
-- Messages are always the consecutive turns up to the counter (trimmed below, cleared whole), so
-- the latest one is at the counter or there is none.
local message = redis.pcall('HGET', messages_key, turn)
if failed(message) then
  return corrupt(messages_key, 'holds another type than a hash')
end
if not message then
  return {1}
end
redis.call('HDEL', messages_key, turn)
redis.pcall('HDEL', snapshots_key, turn)
redis.call('HSET', record_key, 'turns', turn - 1, 'updated_at', now_iso)
local damaged = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta, meta.ended)
if redis.call('EXISTS', messages_key) == 0 then
  -- the next message makes the key anew: let that write refresh every TTL of the session
  redis.call('HDEL', record_key, 'ttl_until')
end
return remember(request_key, window_ms, this_write, {2, turn, message, damaged})
