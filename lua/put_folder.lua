-- Store (create or replace) a folder of a user, keeping the creation time of an existing one.
-- KEYS[1] = folder hash                      rs:{u:<u>}:f:<fid>
-- ARGV[1..] = field, value pairs of the folder (including created_at, used only for a new folder)
-- Returns the folder's created_at text.
local folder_key = KEYS[1]

local created = redis.call('HGET', folder_key, 'created_at')
redis.call('DEL', folder_key)
redis.call('HSET', folder_key, unpack(ARGV))
if created then
  redis.call('HSET', folder_key, 'created_at', created)
end
return redis.call('HGET', folder_key, 'created_at')
