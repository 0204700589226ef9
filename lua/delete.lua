-- Delete a session with everything that belongs to it: record, messages, snapshots, index entry.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- ARGV[1] = session id
-- Returns 1 when the record existed, else 0 (stray messages, snapshots or index entries are removed
-- either way).
local record_key, messages_key, snapshots_key, index_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local session_id = ARGV[1]

local existed = redis.call('EXISTS', record_key)
redis.call('DEL', record_key, messages_key, snapshots_key)
redis.call('ZREM', index_key, session_id)
return existed
