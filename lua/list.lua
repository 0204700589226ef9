-- List a user's sessions, most recent activity first, pruning index entries whose record is gone.
-- KEYS[1] = the user's session index (zset)  rs:{u:<u>}:idx
-- ARGV[1] = the record key prefix of this user, rs:{u:<u>}:s: (records are ARGV[1] .. session id:
--           the same hash tag as KEYS[1], so the same slot)
-- ARGV[2] = offset (entries to skip)
-- ARGV[3] = limit (rows to return, >= 1)
-- ARGV[4..] = record fields to return for each row
-- Returns a flat list: session id, then the values of the asked fields (nil where absent), per row.
local index_key = KEYS[1]
local record_prefix, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end

local out, rows, position = {}, 0, offset
while rows < limit do
  local ids = redis.call('ZREVRANGE', index_key, position, position + (limit - rows) - 1)
  if #ids == 0 then break end
  local gone = {}
  for _, session_id in ipairs(ids) do
    local values = redis.call('HMGET', record_prefix .. session_id, unpack(fields))
    if values[1] then
      out[#out + 1] = session_id
      for _, value in ipairs(values) do out[#out + 1] = value end
      rows = rows + 1
    else
      gone[#gone + 1] = session_id
    end
  end
  -- The first field must be one every record has (user_id): nil means the record is gone.
  if #gone > 0 then
    redis.call('ZREM', index_key, unpack(gone))
  end
  position = position + #ids - #gone
end
return out
