-- The whiteboard as it stood at a snapshot: the snapshots up to an index (read only).
-- KEYS[1] = session record hash        rs:{u:<u>}:s:<sid>
-- KEYS[2] = whiteboard snapshots hash  rs:{u:<u>}:s:<sid>:wb     (snapshot_index -> actions JSON)
-- ARGV[1] = user id (must match the record's)
-- ARGV[2] = the last snapshot index wanted ("" : all)
-- Returns {} when the record is missing, else a flat list of snapshot index, actions JSON, for every
-- snapshot kept with an index up to ARGV[2] (unordered: the store orders them); a CORRUPT error
-- when the record is damaged or the snapshots key holds another type.
local record_key, snapshots_key = KEYS[1], KEYS[2]
local user_id, target = ARGV[1], tonumber(ARGV[2])

local meta, why = record_meta(record_key, user_id)
if not meta then
  if why == '' then return {} end
  return corrupt(record_key, why)
end
local all = redis.pcall('HGETALL', snapshots_key)
if failed(all) then return corrupt(snapshots_key, 'holds another type than a hash') end
if not target then return all end
local out = {}
for i = 1, #all, 2 do
  if tonumber(all[i]) <= target then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
