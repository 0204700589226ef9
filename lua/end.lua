-- Record that a session ended (the first end time is kept); counts as activity, and moves the
-- session to the ended expiry index (ended sessions may have their own retention).
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
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
-- ARGV[8] = now, ISO-8601 text
-- Returns {the recorded ended_at text, damaged}, or {} when the record is missing or another user's.
-- A resent request that was applied already gets the same reply again.
-- The last value of a successful reply names the index keys that hold another type (damage the
-- write went around, see touch in _lib), '' when none. a CORRUPT error when the record is damaged
-- (see record_meta): nothing was written.
local record_key, request_key = KEYS[1], KEYS[7]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms, now_iso =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local this_write = 'end ' .. session_id

local meta, reply = begin_write(request_key, this_write, record_key, user_id, {})
if not meta then
  return reply
end
-- ended_at is set once: ending an ended session keeps the first time
local ended = meta.ended or now_iso
if meta.ended then
  redis.call('HSET', record_key, 'updated_at', now_iso)
else
  redis.call('HSET', record_key, 'ended_at', now_iso, 'updated_at', now_iso)
end
local damaged = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta, true)
return remember(request_key, window_ms, this_write, {ended, damaged})
