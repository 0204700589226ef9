-- Change fields of a state hash that belongs to no session (an app's state, shared by its users).
-- KEYS[1] = the state hash    rs:{a:<scope>}:as   (field -> JSON)
-- ARGV[1..] = field, value pairs; a value "" removes its field (JSON text is never empty)
-- Returns the number of fields the hash holds afterwards; a CORRUPT error when the key holds
-- another type than a hash (nothing written).
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
if kind ~= 'none' and kind ~= 'hash' then
  return corrupt(key, 'holds another type than a hash')
end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', key, ARGV[i])
  else
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
return redis.call('HLEN', key)
