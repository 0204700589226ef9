-- Delete a session with everything that belongs to it: record, messages, snapshots, index and
-- expiry entries.
-- KEYS[1] = session record hash              rs:{u:<u>}:s:<sid>
-- KEYS[2] = messages hash                    rs:{u:<u>}:s:<sid>:msgs
-- KEYS[3] = whiteboard snapshots hash        rs:{u:<u>}:s:<sid>:wb
-- KEYS[4] = the user's session index (zset)  rs:{u:<u>}:idx
-- KEYS[5] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[6] = ended expiry index of the slot   rs:{x<n>}:ended
-- KEYS[7] = this request's replay key        rs:{u:<u>}:req:<request id>  (see remember in _lib)
-- ARGV[1] = session id
-- ARGV[2] = expiry index entry, <u>:<sid>
-- ARGV[3] = "<invalidation channel>|<origin>" to announce the deletion on ("" : none)
-- ARGV[4] = now, epoch milliseconds (sent with the announcement)
-- ARGV[5] = how long the reply is kept for a resent request, milliseconds
-- Returns {1, damaged} when the record existed, else {0, damaged} (stray messages, snapshots or
-- entries are removed either way); damaged names the index keys of another type it could not clean
-- ('' when none). A resent request that deleted the record already gets {1, ...} again. A damaged
-- record is deleted like any other: deleting is the way out of damage.
local request_key = KEYS[7]
local session_id, member, channel, now_ms, window_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local this_write = 'delete ' .. session_id

local seen = replayed(request_key, this_write)
if seen then
  return seen
end
local existed, damaged = cascade(KEYS, session_id, member, channel, now_ms)
if existed == 1 then
  return remember(request_key, window_ms, this_write, {1, damaged})
end
return {0, damaged}
