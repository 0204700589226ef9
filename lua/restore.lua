-- Restore a session whole: write it with the given ids, times, turns, messages and snapshots,
-- replacing what its keys hold, as the store's own writes (create, append) would have left it.
-- Idempotent: the same restore again leaves the same keys and the same version.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions)
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- ARGV[1] = session id
-- ARGV[2] = expiry index entry, <u>:<sid>
-- ARGV[3] = now, epoch microseconds (the store's clock: when the TTL is counted from)
-- ARGV[4] = TTL backstop in milliseconds (0: none)
-- ARGV[5] = "<invalidation channel>|<origin>" to announce the change on ("" : none)
-- ARGV[6] = the session's last activity (its updated_at), epoch microseconds: its index score,
--           its expiry entry (in ms) and the start of its keys' TTL, as if last written then
-- ARGV[7] = "1" when the session has ended (its expiry entry goes to the ended index), else "0"
-- ARGV[8] = n, then n strings: field, value pairs of the record, without version and ttl_until
-- then m, then m strings: turn, message JSON pairs
-- then k, then k strings: snapshot index, actions JSON pairs
-- Returns {version, damaged}: the record's version afterwards (1 for a new record; the old one
-- when the record's fields are unchanged, else the old one + 1, so that a holder of
-- expected_version sees a conflict), and the index keys that hold another type (damage the write
-- went around, see touch in _lib), '' when none. The caller ensures that the TTL deadline
-- (updated_at + ttl_span) is still ahead of now.
local record_key, messages_key, snapshots_key, ended_key = KEYS[1], KEYS[2], KEYS[3], KEYS[6]
local session_id, member, now_us, ttl_ms, channel, updated_us, is_ended =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7] == '1'

-- HSET of ARGV[first..last] (field, value pairs), in chunks: unpack has a limit
local function hset(key, first, last)
  local i = first
  while i < last do
    local j = math.min(i + 999, last)
    redis.call('HSET', key, unpack(ARGV, i, j))
    i = j + 1
  end
end

-- the three sections after ARGV[7] (record, messages, snapshots): {first, last} of each
local sections, i = {}, 8
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  sections[#sections + 1] = {i + 1, i + n}
  i = i + n + 1
end
local record_first, record_last = sections[1][1], sections[1][2]

-- The version: compare the record's fields with what is there (only when there is a record)
local version = 1
local old = redis.pcall('HGET', record_key, 'version')
if not failed(old) and is_int(old) then
  local got = redis.call('HGETALL', record_key)
  local same = true
  local fields = {}
  local count = 0
  for i = 1, #got, 2 do
    local name = got[i]
    if name ~= 'version' and name ~= 'ttl_until' then
      fields[name] = got[i + 1]
      count = count + 1
    end
  end
  if count ~= (record_last - record_first + 1) / 2 then
    same = false
  else
    for i = record_first, record_last, 2 do
      if fields[ARGV[i]] ~= ARGV[i + 1] then
        same = false
        break
      end
    end
  end
  version = tonumber(old) + (same and 0 or 1)
end

redis.call('DEL', record_key, messages_key, snapshots_key)
hset(record_key, record_first, record_last)
local now_ms = math.floor(tonumber(now_us) / 1000)
local deadline = 0
if ttl_ms > 0 then  -- the keys' TTL runs from the last activity, as keep_alive would have set it
  deadline = math.floor(tonumber(updated_us) / 1000) + ttl_span(ttl_ms)
  redis.call('HSET', record_key, 'version', string.format('%d', version),
    'ttl_until', string.format('%d', deadline))
else
  redis.call('HSET', record_key, 'version', string.format('%d', version))
end
hset(messages_key, sections[2][1], sections[2][2])
hset(snapshots_key, sections[3][1], sections[3][2])

-- index and expiry entries scored by the last activity (touch: no TTL or announcement there)
local damaged = touch(KEYS, session_id, member, updated_us, '0', '', {ended = false}, is_ended)
if not is_ended and failed(redis.pcall('ZREM', ended_key, member)) then
  damaged = damaged == '' and ended_key or damaged .. '\n' .. ended_key
end
expire_fresh(record_key, deadline, now_ms)
expire_fresh(messages_key, deadline, now_ms)
expire_fresh(snapshots_key, deadline, now_ms)
expire_fresh(state_key(record_key), deadline, now_ms)  -- a no-op when the session has no state
announce(channel, member, string.format('%d', now_ms))
return {version, damaged}
