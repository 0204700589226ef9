-- Delete a folder of a user (sessions keep what they copied from it).
-- KEYS[1] = folder hash                      rs:{u:<u>}:f:<fid>
-- KEYS[2] = this request's replay key        rs:{u:<u>}:req:<request id>  (see remember in _lib)
-- ARGV[1] = folder id
-- ARGV[2] = how long the reply is kept for a resent request, milliseconds
-- Returns {1} when the folder existed, else {0}. A resent request that deleted it already gets {1}.
local folder_key, request_key = KEYS[1], KEYS[2]
local folder_id, window_ms = ARGV[1], ARGV[2]
local this_write = 'delete_folder ' .. folder_id

local seen = replayed(request_key, this_write)
if seen then
  return seen
end
if redis.call('DEL', folder_key) == 1 then
  return remember(request_key, window_ms, this_write, {1})
end
return {0}
