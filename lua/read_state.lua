-- Read a session's free-form state with its turn counter, last activity and latest messages, and
-- optionally its user's state of one scope. Reads only: nothing is ever written.
-- KEYS[1] = session record hash        rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash              rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = the session's state hash   rs:{u:<u>}:s:<sid>:state  (field -> JSON)
-- KEYS[4] = the user's state hash of a scope (read when ARGV[3] is "1")   rs:{u:<u>}:us:<scope>
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = how many of the latest messages to return (0: none)
-- ARGV[3] = "1": also return KEYS[4]; "0": do not
-- Returns {} when the record is missing or belongs to another user, else
--   {turns, updated_at, first_turn, messages (nil = trimmed), state (flat field/value list),
--    user state (flat list; empty when not asked)};
-- a CORRUPT error naming the key when the record is damaged or a key holds another type.
local record_key, messages_key, state_hash, user_hash = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user_id, wanted, with_user = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local not_a_hash = 'holds another type than a hash'

local meta, why = record_meta(record_key, user_id)
if not meta then
  if why == '' then return {} end
  return corrupt(record_key, why)
end
local updated = redis.call('HGET', record_key, 'updated_at')
local first, messages = meta.turns + 1, {}
if wanted > 0 and meta.turns > 0 then
  first = math.max(1, meta.turns - wanted + 1)
  local fields = {}
  for turn = first, meta.turns do
    fields[#fields + 1] = turn
  end
  messages = redis.pcall('HMGET', messages_key, unpack(fields))
  if failed(messages) then return corrupt(messages_key, not_a_hash) end
end
local state = redis.pcall('HGETALL', state_hash)
if failed(state) then return corrupt(state_hash, not_a_hash) end
local user_state = {}
if with_user then
  user_state = redis.pcall('HGETALL', user_hash)
  if failed(user_state) then return corrupt(user_hash, not_a_hash) end
end
return {meta.turns, updated, first, messages, state, user_state}
