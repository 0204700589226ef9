-- Verify that a key of the store's layout holds another type than the layout gives it (`check`'s
-- "wrong-type" problem, for every kind of key but a session record: see repair.lua for those), and
-- delete it when asked. Atomic: a key that was deleted or rewritten with its right type meanwhile is
-- reported as gone and left alone.
-- KEYS[1] = the key (messages, snapshots, folder, request reply, a user's index, an expiry index)
-- ARGV[1] = the type the layout gives it: "hash", "zset" or "string"
-- ARGV[2] = "1" to delete it, "0" to only verify
-- Returns 1 when the key holds another type (deleted if asked), 0 when it does not.
local key = KEYS[1]
local expected, delete = ARGV[1], ARGV[2] == '1'
local kind = redis.call('TYPE', key).ok
if kind == 'none' or kind == expected then return 0 end
if delete then redis.call('DEL', key) end
return 1
