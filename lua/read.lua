-- Read a session record together with its latest messages and their whiteboard snapshots.
-- KEYS[1] = session record hash        rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash              rs:{u:<u>}:s:<sid>:msgs   (turn_no -> message JSON)
-- KEYS[3] = whiteboard snapshots hash  rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions JSON)
-- ARGV[1] = how many of the latest messages to return (>= 1)
-- ARGV[2] = "1": return the whole record; "0": return only its user_id field
-- ARGV[3] = "1": return the snapshots of those messages; "0": do not
-- ARGV[4] = user id (must match the record's; checked here when ARGV[2] is "0", by the store else)
-- ARGV[5] = only messages with a turn number below this ("" : all)
-- Returns {} when the record is missing, else
--   {record (flat field/value list), first_turn, messages (nil = trimmed), snapshots (nil = none)};
-- a CORRUPT error naming the key when one of the three holds another type, or turns is not an
-- integer. Reads only: nothing is ever written.
local record_key, messages_key, snapshots_key = KEYS[1], KEYS[2], KEYS[3]
local wanted, whole_record, with_snapshots = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3] == '1'
local user_id, before = ARGV[4], tonumber(ARGV[5])
local not_a_hash = 'holds another type than a hash'

local record
if whole_record then
  record = redis.pcall('HGETALL', record_key)
  if failed(record) then return corrupt(record_key, not_a_hash) end
  if #record == 0 then return {} end
else
  local meta, why = record_meta(record_key, user_id)
  if not meta then
    if why == '' then return {} end
    return corrupt(record_key, why)
  end
  record = {'user_id', user_id}
end

local turns = redis.call('HGET', record_key, 'turns')
if turns and not is_int(turns) then return corrupt(record_key, 'turns is not an integer') end
turns = tonumber(turns or '0')
local last = turns
if before and before - 1 < last then
  last = before - 1
end
local first = math.max(1, last - wanted + 1)
local messages, snapshots = {}, {}
if last >= 1 then
  local fields = {}
  for turn = first, last do
    fields[#fields + 1] = turn
  end
  messages = redis.pcall('HMGET', messages_key, unpack(fields))
  if failed(messages) then return corrupt(messages_key, not_a_hash) end
  if with_snapshots then
    snapshots = redis.pcall('HMGET', snapshots_key, unpack(fields))
    if failed(snapshots) then return corrupt(snapshots_key, not_a_hash) end
  end
end
return {record, first, messages, snapshots}
