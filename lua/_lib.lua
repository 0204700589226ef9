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

-- Record a session's activity: its user index entry, its expiry entry (the live or the ended index,
-- by whether the record has ended_at), and the TTL backstop of its three keys (0: no TTL); and
-- announce the change.
local function touch(keys, session_id, member, now_ms, ttl_ms, channel)
  local record_key, messages_key, snapshots_key, index_key, live_key, ended_key = unpack(keys, 1, 6)
  redis.call('ZADD', index_key, now_ms, session_id)
  if redis.call('HEXISTS', record_key, 'ended_at') == 1 then
    redis.call('ZREM', live_key, member)
    redis.call('ZADD', ended_key, now_ms, member)
  else
    redis.call('ZADD', live_key, now_ms, member)
  end
  if tonumber(ttl_ms) > 0 then
    redis.call('PEXPIRE', record_key, ttl_ms)
    redis.call('PEXPIRE', messages_key, ttl_ms)
    redis.call('PEXPIRE', snapshots_key, ttl_ms)
  end
  announce(channel, member, now_ms)
end

-- Remove a session and everything of it, and announce it; returns 1 when the record existed.
local function cascade(keys, session_id, member, channel, now_ms)
  local record_key, messages_key, snapshots_key, index_key, live_key, ended_key = unpack(keys, 1, 6)
  local existed = redis.call('EXISTS', record_key)
  redis.call('DEL', record_key, messages_key, snapshots_key)
  redis.call('ZREM', index_key, session_id)
  redis.call('ZREM', live_key, member)
  redis.call('ZREM', ended_key, member)
  announce(channel, member, now_ms)
  return existed
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
