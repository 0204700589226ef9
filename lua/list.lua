-- List a user's sessions, most recent activity first. Reads only: nothing is ever written.
-- KEYS[1] = the user's session index (zset)  rs:{u:<u>}:idx
-- ARGV[1] = the record key prefix of this user, rs:{u:<u>}:s: (records are ARGV[1] .. session id:
--           the same hash tag as KEYS[1], so the same slot)
-- ARGV[2] = offset: sessions to skip (index entries whose record is gone do not count)
-- ARGV[3] = limit (rows to return, >= 1)
-- ARGV[4..] = record fields to return for each row; the first must be one every record has
--             (user_id): absent means the record is gone or damaged
-- Returns {rows, problems}: rows is a flat list, the session id and then the values of the asked
-- fields (nil where absent) per row; problems a flat list of session id, what is wrong, for each
-- entry left out: an index entry whose record is gone (it does not count), or a record that exists
-- but cannot be listed (it counts as a row, so pages stay stable, but is not returned).
-- A CORRUPT error when the index holds another type than a sorted set.
local index_key = KEYS[1]
local record_prefix, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end

local out, problems = {}, {}
local position, skipped, rows = 0, 0, 0
while rows < limit do
  local wanted = skipped < offset and math.min(offset - skipped, 1000) or limit - rows
  local ids = redis.pcall('ZREVRANGE', index_key, position, position + wanted - 1)
  if failed(ids) then return corrupt(index_key, 'holds another type than a sorted set') end
  if #ids == 0 then break end
  for _, session_id in ipairs(ids) do
    local record_key = record_prefix .. session_id
    if skipped < offset then
      if redis.call('EXISTS', record_key) == 1 then
        skipped = skipped + 1
      else
        problems[#problems + 1] = session_id
        problems[#problems + 1] = 'index entry without a record'
      end
    elseif rows < limit then
      local values = redis.pcall('HMGET', record_key, unpack(fields))
      if failed(values) then
        rows = rows + 1
        problems[#problems + 1] = session_id
        problems[#problems + 1] = 'holds another type than a hash'
      elseif values[1] then
        rows = rows + 1
        out[#out + 1] = session_id
        for _, value in ipairs(values) do out[#out + 1] = value end
      elseif redis.call('EXISTS', record_key) == 1 then
        rows = rows + 1
        problems[#problems + 1] = session_id
        problems[#problems + 1] = 'the record has no user_id'
      else
        problems[#problems + 1] = session_id
        problems[#problems + 1] = 'index entry without a record'
      end
    end
  end
  position = position + #ids
end
return {out, problems}
