-- Read a session record together with its latest messages and their whiteboard snapshots.
-- KEYS[1] = session record hash        rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash              rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = whiteboard snapshots hash  rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions JSON)
-- ARGV[1] = how many of the latest messages to return (>= 1)
-- ARGV[2] = "1": return the whole record; "0": return only its user_id field
-- ARGV[3] = "1": return the snapshots of those messages; "0": do not
-- Returns {} when the record is missing, else
--   {record (flat field/value list), first_turn, messages (nil = trimmed), snapshots (nil = none)}
local record_key, messages_key, snapshots_key = KEYS[1], KEYS[2], KEYS[3]
local wanted, whole_record, with_snapshots = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3] == '1'

local record
if whole_record then
  record = redis.call('HGETALL', record_key)
  if #record == 0 then return {} end
else
  local owner = redis.call('HGET', record_key, 'user_id')
  if not owner then return {} end
  record = {'user_id', owner}
end

local turns = tonumber(redis.call('HGET', record_key, 'turns') or '0')
local first = math.max(1, turns - wanted + 1)
local messages, snapshots = {}, {}
if turns >= 1 then
  local fields = {}
  for turn = first, turns do
    fields[#fields + 1] = turn
  end
  messages = redis.call('HMGET', messages_key, unpack(fields))
  if with_snapshots then
    snapshots = redis.call('HMGET', snapshots_key, unpack(fields))
  end
end
return {record, first, messages, snapshots}
