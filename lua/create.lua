-- Create a session record and index it; optionally copy a folder's data into it.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- KEYS[7] = this request's replay key        rs:{u:<u>}:req:<request id>  (see remember in _lib)
-- KEYS[8] = (optional) folder hash            rs:{u:<u>}:f:<fid>
-- ARGV[1] = user id
-- ARGV[2] = session id
-- ARGV[3] = expiry index entry, <u>:<sid>
-- ARGV[4] = now, epoch microseconds (the activity score; expiry indexes take its milliseconds)
-- ARGV[5] = TTL backstop in milliseconds (0: none)
-- ARGV[6] = "<invalidation channel>|<origin>" to announce the change on ("" : none)
-- ARGV[7] = how long the reply is kept for a resent request, milliseconds
-- ARGV[8] = folder id, or "" when no folder is asked for
-- ARGV[9..] = field, value pairs of the new record (metadata and context fields)
-- Returns {1, folder_status, session_id}: folder_status is "none", "ok", "missing" (no folder of
-- this user with that id) or "invalid" (the folder's stored analysis is not well-formed); {0} when
-- the id is taken. A resent request that was applied already gets the same reply again, naming
-- the session it created (a caller that retries itself draws a new id for each attempt). A folder
-- key of another type than a hash is "invalid".
-- The last value of a successful reply names the index keys that hold another type (damage the
-- write went around, see touch in _lib), '' when none.
local record_key, request_key, folder_key = KEYS[1], KEYS[7], KEYS[8]
local user_id, session_id, member, now_us, ttl_ms, channel, window_ms, folder_id =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local this_write = 'create'  -- a retried create draws a new session id: the reply names the first

local seen = replayed(request_key, this_write)
if seen then
  return seen
end
if redis.call('EXISTS', record_key) == 1 then
  return {0}
end

-- the folder's fields, when it is copied in (the record's own are ARGV[9..], passed on by unpack)
local fields = {}

local function string_list(value)
  if value == nil then return true end
  if type(value) ~= 'table' then return false end
  for k, v in pairs(value) do
    if type(k) ~= 'number' or type(v) ~= 'string' then return false end
  end
  return true
end

local function string_map(value)
  if value == nil then return true end
  if type(value) ~= 'table' then return false end
  for k, v in pairs(value) do
    if type(k) ~= 'string' or type(v) ~= 'string' then return false end
  end
  return true
end

local folder_status = 'none'
if folder_id ~= '' then
  local owner = redis.pcall('HGET', folder_key, 'user_id')
  if failed(owner) then
    folder_status = 'invalid'
  elseif owner ~= user_id then
    folder_status = 'missing'
  else
    folder_status = 'ok'
    local vector_store_id, analysis = unpack(redis.call('HMGET', folder_key, 'vector_store_id', 'analysis'))
    if analysis then
      local ok, parsed = pcall(cjson.decode, analysis)
      if not ok or type(parsed) ~= 'table' or type(parsed.analysis_text) ~= 'string'
          or type(parsed.vector_store_id) ~= 'string' or not string_list(parsed.key_concepts)
          or not string_list(parsed.file_names) or not string_map(parsed.key_terms) then
        folder_status = 'invalid'
      end
    end
    if folder_status == 'ok' then
      fields[#fields + 1] = 'folder_id'
      fields[#fields + 1] = folder_id
      if vector_store_id then
        fields[#fields + 1] = 'c:vector_store_id'
        fields[#fields + 1] = cjson.encode(vector_store_id)
      end
      if analysis then
        fields[#fields + 1] = 'c:analysis_result'
        fields[#fields + 1] = analysis
      end
    end
  end
end

-- a new record: its keys' TTL deadline (see keep_alive) is set here, with the record's only key
local now_ms = math.floor(tonumber(now_us) / 1000)
local ttl = tonumber(ttl_ms)
local span = ttl_span(ttl)
if #fields > 0 then
  redis.call('HSET', record_key, unpack(fields))
end
if ttl > 0 then
  redis.call('HSET', record_key, 'ttl_until', string.format('%d', now_ms + span),
    unpack(ARGV, 9, #ARGV))
else
  redis.call('HSET', record_key, unpack(ARGV, 9, #ARGV))
end
local meta = {ended = false, ttl_until = ttl > 0 and now_ms + span or 0}
local damaged = touch(KEYS, session_id, member, now_us, ttl_ms, channel, meta, false)
if ttl > 0 then
  redis.call('PEXPIRE', record_key, span)
end
return remember(request_key, window_ms, this_write, {1, folder_status, session_id, damaged})
