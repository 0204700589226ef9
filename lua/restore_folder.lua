-- Restore a folder of a user whole: its fields as given (its times included), replacing the hash.
-- KEYS[1] = folder hash                      rs:{u:<u>}:f:<fid>
-- ARGV[1..] = field, value pairs of the folder (in chunks: unpack has a limit)
-- Returns 1.
local folder_key = KEYS[1]

redis.call('DEL', folder_key)
local i = 1
while i < #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HSET', folder_key, unpack(ARGV, i, j))
  i = j + 1
end
return 1
