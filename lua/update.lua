-- Replace the context of an existing session (whole, or as a change against a version the writer
-- knows); bump its version and record its activity.
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
-- ARGV[8] = now, ISO-8601 text (updated_at)
-- ARGV[9] = expected version, or "" to write whatever the version is
-- ARGV[10] = base version: the fields below are a change against that version of the record; or ""
--            when they are the whole context, "*" when they are and the store wants to cache the
--            record it makes (the reply then also says what else the record holds, see below)
-- ARGV[11] = latest_turn_no, ARGV[12] = latest_snapshot_index ("" : not given); each is only ever
--            raised, never lowered (the store allocates turns)
-- ARGV[13] = k, how many field names follow to remove
-- ARGV[14..13+k] = context fields to remove (those now at their default)
-- ARGV[14+k..] = field, value pairs to set ("c:<name>" JSON fields and "folder_id")
-- Returns {1, new_version, latest_turn_no, latest_snapshot_index, damaged}, followed with a "*" base by
-- created_at, ended_at, turns, schema ("" where absent) and the record's field count (ttl_until left out); {0} when the record is
-- missing or belongs to another user (it is never re-created); {-1, stored_version} on a version
-- conflict; {-2, stored_version} when the record is no longer at the base version (nothing was
-- written).
-- The last value of a successful reply names the index keys that hold another type (damage the
-- write went around, see touch in _lib), '' when none. a CORRUPT error when the record is damaged
-- (see record_meta): nothing was written.
-- A resent request that was applied already gets the same reply again.
local record_key, request_key = KEYS[1], KEYS[7]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now_iso, expected, base = ARGV[8], ARGV[9], ARGV[10]
local turn_arg, snapshot_arg, removals = ARGV[11], ARGV[12], tonumber(ARGV[13])
local first_pair = 14 + removals
local this_write = 'update ' .. session_id

local meta, reply = begin_write(request_key, this_write, record_key, user_id, {0})
if not meta then
  return reply
end
local version, turn, snapshot = meta.version, meta.turn, meta.snapshot
if expected ~= '' and tonumber(expected) ~= version then
  return {-1, version}
end
if base ~= '' and base ~= '*' and tonumber(base) ~= version then
  return {-2, version}
end

if removals > 0 then
  redis.call('HDEL', record_key, unpack(ARGV, 14, first_pair - 1))
end
-- one HSET: the raised turn counters, updated_at, version and the fields sent (copied by unpack,
-- not by a loop)
local new_version = version + 1
local turn_given, snapshot_given = tonumber(turn_arg), tonumber(snapshot_arg)
if turn_given and turn_given > turn then
  turn = turn_given
  if snapshot_given and snapshot_given > snapshot then
    snapshot = snapshot_given
    redis.call('HSET', record_key, 'c:latest_turn_no', turn, 'c:latest_snapshot_index', snapshot,
      'updated_at', now_iso, 'version', new_version, unpack(ARGV, first_pair, #ARGV))
  else
    redis.call('HSET', record_key, 'c:latest_turn_no', turn, 'updated_at', now_iso,
      'version', new_version, unpack(ARGV, first_pair, #ARGV))
  end
elseif snapshot_given and snapshot_given > snapshot then
  snapshot = snapshot_given
  redis.call('HSET', record_key, 'c:latest_snapshot_index', snapshot, 'updated_at', now_iso,
    'version', new_version, unpack(ARGV, first_pair, #ARGV))
else
  redis.call('HSET', record_key, 'updated_at', now_iso, 'version', new_version,
    unpack(ARGV, first_pair, #ARGV))
end
local damaged, deadline = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta,
  meta.ended)
local reply = {1, new_version, turn, snapshot, damaged}
if base == '*' then
  -- what else the record holds, as record_meta read it (an update changes none of it but the
  -- TTL deadline), and how many fields it has
  reply[6], reply[7], reply[8], reply[9] = meta.created, meta.ended or '',
    meta.turns_text or '', meta.schema or ''
  -- ttl_until is Redis's bookkeeping, not the cache's: not counted
  reply[10] = redis.call('HLEN', record_key) - (deadline > 0 and 1 or 0)
end
return remember(request_key, window_ms, this_write, reply)
