-- List the sessions of a user's scoped index (sessions an integration such as Google ADK keeps
-- under its own ids), each with its last activity and free-form state, and the user's state of that
-- scope. Reads only: nothing is ever written.
-- KEYS[1] = the user's scoped session index (zset)  rs:{u:<u>}:ext:<scope>
--           (entries "<session id> <external id>", scored by last write, epoch ms)
-- KEYS[2] = the user's state hash of the scope       rs:{u:<u>}:us:<scope>
-- ARGV[1] = the record key prefix of this user, rs:{u:<u>}:s: (records are ARGV[1] .. session id:
--           the same hash tag as KEYS[1], so the same slot)
-- ARGV[2] = user id (each record must name it)
-- Returns {user state (flat field/value list), rows, gone}: rows is a flat list of external id,
-- session id, updated_at, state (flat list) per session; gone, the entries whose record is missing
-- or names another user (left out: the caller may remove them). A CORRUPT error when a key holds
-- another type than its layout's. A session's damaged state hash leaves the session out (in gone).
local index_key, user_hash = KEYS[1], KEYS[2]
local record_prefix, user_id = ARGV[1], ARGV[2]

local user_state = redis.pcall('HGETALL', user_hash)
if failed(user_state) then return corrupt(user_hash, 'holds another type than a hash') end
local entries = redis.pcall('ZRANGE', index_key, 0, -1)
if failed(entries) then return corrupt(index_key, 'holds another type than a sorted set') end
local rows, gone = {}, {}
for _, entry in ipairs(entries) do
  local session_id, external = string.sub(entry, 1, 36), string.sub(entry, 38)
  local record_key = record_prefix .. session_id
  local got = redis.pcall('HMGET', record_key, 'user_id', 'updated_at')
  local state = not failed(got) and got[1] == user_id and redis.pcall('HGETALL', record_key .. ':state')
  if state and not failed(state) then
    rows[#rows + 1] = external
    rows[#rows + 1] = session_id
    rows[#rows + 1] = got[2]
    rows[#rows + 1] = state
  else
    gone[#gone + 1] = entry
  end
end
return {user_state, rows, gone}
