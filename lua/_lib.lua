-- Shared functions, prepended to every script when the registry loads it (not a script itself).

-- Tell every store listening that the session changed: `target` is "<channel>|<origin>" (origin:
-- the writing store, which ignores its own announcements), or "" to tell no one. The message is
-- "<u>:<session_id>|<epoch ms>|<origin>".
local function announce(target, member, now_ms)
  if target ~= '' then
    local channel, origin = string.match(target, '^(.*)|([^|]*)$')
    redis.call('PUBLISH', channel, member .. '|' .. now_ms .. '|' .. origin)
  end
end

-- The error a script returns when a key of the store holds what it cannot use (damage): the store
-- raises CorruptData(key, why) for it. Keys never contain spaces (see keys.py).
local function corrupt(key, why)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. why)
end

-- Whether a reply of redis.pcall is an error (a key of another type than the command's).
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- Whether a hash field's value (a string, or false when absent) is the text of an integer that
-- every layer holds exactly: Lua's doubles, JSON readers, the store's own bound (|n| < 2^53).
local function is_int(value)
  if type(value) ~= 'string' or not string.match(value, '^%-?%d+$') then
    return false
  end
  local number = tonumber(value)
  return number ~= nil and math.abs(number) <= 9007199254740991
end

-- Whether a value is an ISO-8601 time with its offset ("...+00:00") or "Z" (codec._TIME is the
-- same check). The offset is looked for at its one place (an anchored find from #value - 5): an
-- unanchored "...$" pattern is tried at every position of the text, and alone cost more than this
-- whole check does (575 against 360 ns in a warm loop).
local function is_time(value)
  return type(value) == 'string'
    and string.find(value, '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d') ~= nil
    and (string.find(value, '^[%+%-]%d%d:%d%d$', #value - 5) ~= nil
      or string.byte(value, -1) == 90)  -- 'Z'
end

-- The metadata of a session record that every write relies on, checked before anything is written.
-- Returns a table {version, turns, turn, snapshot, ended, ttl_until, created, schema, turns_text}
-- (turns_text: turns as stored, or false; turn and
-- snapshot: c:latest_turn_no and c:latest_snapshot_index, 0 when absent; ended: ended_at or false;
-- ttl_until: see keep_alive, 0 when absent or not an integer), or nil and why: '' when there is no
-- record, else what is damaged (a script returns corrupt(record_key, why) for it;
-- codec.meta_problem is the same check). One HMGET answers everything a write needs to know.
local META_FIELDS = {'user_id', 'version', 'turns', 'created_at', 'updated_at',
  'c:latest_turn_no', 'c:latest_snapshot_index', 'ended_at', 'ttl_until', 'schema'}
local function record_meta(record_key, user_id)
  local got = redis.pcall('HMGET', record_key, unpack(META_FIELDS))
  if failed(got) then
    return nil, 'holds another type than a hash'
  end
  local owner, version, turns, created, updated, turn, snapshot, ended, ttl_until, schema =
    unpack(got, 1, 10)
  if not owner then
    if redis.call('EXISTS', record_key) == 1 then
      return nil, 'the record has no user_id'
    end
    return nil, ''
  end
  if owner ~= user_id then
    return nil, 'the record names another user than its key'
  end
  if not is_int(version) then
    return nil, 'version is not an integer'
  end
  if turns and not is_int(turns) then
    return nil, 'turns is not an integer'
  end
  if turn and not is_int(turn) then
    return nil, 'c:latest_turn_no is not an integer'
  end
  if snapshot and not is_int(snapshot) then
    return nil, 'c:latest_snapshot_index is not an integer'
  end
  if not is_time(created) or not is_time(updated) then
    return nil, 'created_at or updated_at is not an ISO-8601 time'
  end
  return {version = tonumber(version), turns = tonumber(turns or '0'),
    turn = tonumber(turn or '0'), snapshot = tonumber(snapshot or '0'), ended = ended,
    ttl_until = is_int(ttl_until) and tonumber(ttl_until) or 0, created = created,
    schema = schema, turns_text = turns}
end

-- The free-form state hash of a session (rs:{u:<u>}:s:<sid>:state, field -> JSON), beside its
-- record in the same slot: named from the record key, so that every script that keeps a session's
-- TTL or deletes it reaches it without a KEYS entry of its own (it is always in the record's slot).
local function state_key(record_key)
  return record_key .. ':state'
end

-- The TTL backstop of a session's keys (record, messages, snapshots and state), set where it is
-- due rather than on every write.
-- The record's ttl_until field holds when (epoch ms, the store's clock) the keys' TTL runs out; a
-- write refreshes it only when fewer than ttl_ms remain, and then gives all four keys the same
-- ttl_ms + grace (grace: an eighth of ttl_ms, at most a day), so that they expire together, never
-- sooner than ttl_ms after the last write and at most grace later. Relative PEXPIREs, so that a
-- store clock that differs from the server's cannot expire anything early. Returns the deadline
-- (0 when there is no TTL); a key a write creates afterwards (messages, snapshots) takes the rest
-- of it with expire_fresh.
local function ttl_span(ttl)
  return ttl + math.min(math.floor(ttl / 8), 86400000)
end

local function keep_alive(keys, meta, now_ms, ttl_ms)
  local ttl = tonumber(ttl_ms)
  if ttl <= 0 then
    return 0
  end
  if meta.ttl_until >= now_ms + ttl then
    return meta.ttl_until
  end
  local span = ttl_span(ttl)
  local deadline = now_ms + span
  redis.call('HSET', keys[1], 'ttl_until', string.format('%d', deadline))
  for i = 1, 3 do
    redis.call('PEXPIRE', keys[i], span)
  end
  redis.call('PEXPIRE', state_key(keys[1]), span)  -- a no-op when the session has no state
  return deadline
end

-- A key a write just created (the first message, a snapshot) expires with its session's keys.
local function expire_fresh(key, deadline, now_ms)
  if deadline > now_ms then
    redis.call('PEXPIRE', key, deadline - now_ms)
  end
end

-- Run a sorted-set command on `key`; when the key holds another type (damage), note the key in
-- `damaged` instead of failing (see touch). A function of the library, not a closure made per
-- call.
local function zset_or_note(damaged, command, key, ...)
  if failed(redis.pcall(command, key, ...)) then
    damaged[#damaged + 1] = key
  end
end

-- Record a session's activity: its user index entry (scored in epoch microseconds: exactly the
-- record's updated_at, so listing order and updated_at agree), its expiry entry (the live or the
-- ended index, by `ended`: whether the record has ended_at after this write; scored in
-- milliseconds; a record that had ended already left the live index then), and the TTL backstop
-- where it is due (keep_alive, with `meta` as record_meta read it before the write); and announce
-- the change. An index key of another type than a sorted set (damage) does not stop the write: it
-- is left alone, and returned (names joined by newlines, '' when none) for the store to report;
-- `check --repair --drop-corrupt` rebuilds it. Returns that and the TTL deadline.
local function touch(keys, session_id, member, now_us, ttl_ms, channel, meta, ended)
  local index_key, live_key, ended_key = keys[4], keys[5], keys[6]
  local damaged = {}
  local now_ms = math.floor(tonumber(now_us) / 1000)
  local now_text = string.format('%d', now_ms)
  zset_or_note(damaged, 'ZADD', index_key, now_us, session_id)
  if ended then
    if not meta.ended then
      zset_or_note(damaged, 'ZREM', live_key, member)
    end
    zset_or_note(damaged, 'ZADD', ended_key, now_text, member)
  else
    zset_or_note(damaged, 'ZADD', live_key, now_text, member)
  end
  local deadline = keep_alive(keys, meta, now_ms, ttl_ms)
  announce(channel, member, now_text)
  return table.concat(damaged, '\n'), deadline
end

-- Remove a session and everything of it (record, messages, snapshots, state), and announce it.
-- Returns 1 when the record existed (0 otherwise), and the index keys it could not clean (another type: damage), as touch does. The
-- record says which expiry index holds it (ended_at); without a record (or with a damaged one)
-- both are cleaned. UNLINK: a large messages hash is freed off Redis's main thread.
local function cascade(keys, session_id, member, channel, now_ms)
  local record_key, messages_key, snapshots_key, index_key, live_key, ended_key = unpack(keys, 1, 6)
  local got = redis.pcall('HMGET', record_key, 'user_id', 'ended_at')
  local existed, expiry = 1, {live_key, ended_key}
  if failed(got) then
    existed = redis.call('EXISTS', record_key)
  elseif not got[1] then
    existed = redis.call('EXISTS', record_key)
  elseif got[2] then
    expiry = {ended_key}
  else
    expiry = {live_key}
  end
  redis.call('UNLINK', record_key, messages_key, snapshots_key, state_key(record_key))
  local damaged = {}
  if failed(redis.pcall('ZREM', index_key, session_id)) then
    damaged[#damaged + 1] = index_key
  end
  for _, key in ipairs(expiry) do
    if failed(redis.pcall('ZREM', key, member)) then
      damaged[#damaged + 1] = key
    end
  end
  announce(channel, member, now_ms)
  return existed, table.concat(damaged, '\n')
end

-- Exactly-once writes. Every write carries a request id, and a client that lost the reply (redis-py
-- resends a command whose connection broke) sends the very same request again. The attempt that
-- applied the write keeps its reply at the request key (rs:{u:<u>}:req:<id>, in the user's slot)
-- for a window of milliseconds; a request that finds it there gets that reply back and changes
-- nothing. Kept as lines: "<script> <session id>", then "i<integer>" or "s<text>" per reply value.
local function remember(request_key, window_ms, owner, reply)
  local lines = {owner}
  for i = 1, #reply do
    local value = reply[i]
    if type(value) == 'number' then
      lines[i + 1] = 'i' .. string.format('%d', value)  -- exact: tostring keeps 14 digits only
    else
      lines[i + 1] = 's' .. value
    end
  end
  redis.call('SET', request_key, table.concat(lines, '\n'), 'PX', window_ms)
  return reply
end

-- The reply remembered for this request, or nil when it was not applied yet. A request id that
-- names another script or session is refused: it can only be a caller's mistake.
local function replayed(request_key, owner)
  local kept = redis.call('GET', request_key)
  if not kept then
    return nil
  end
  local reply, start, first = {}, 1, true
  while start <= #kept + 1 do
    local stop = string.find(kept, '\n', start, true) or #kept + 1
    local line = string.sub(kept, start, stop - 1)
    if first then
      if line ~= owner then
        return redis.error_reply('REQUEST_ID_REUSED ' .. request_key .. ' was used by ' .. line)
      end
      first = false
    elseif string.sub(line, 1, 1) == 'i' then
      reply[#reply + 1] = tonumber(string.sub(line, 2))
    else
      reply[#reply + 1] = string.sub(line, 2)
    end
    start = stop + 1
  end
  return reply
end

-- The start of every write to an existing session: the record's metadata (see record_meta) to go
-- on with, or nil and the reply to return at once: the remembered reply of a resent request,
-- `missing` when there is no record, or a CORRUPT error when the record is damaged.
local function begin_write(request_key, this_write, record_key, user_id, missing)
  local seen = replayed(request_key, this_write)
  if seen then
    return nil, seen
  end
  local meta, why = record_meta(record_key, user_id)
  if meta then
    return meta
  end
  if why == '' then
    return nil, missing
  end
  return nil, corrupt(record_key, why)
end
