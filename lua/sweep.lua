-- Delete the expired sessions among candidates picked from one hash slot's expiry indexes. Each
-- candidate's activity is checked again here, so a session touched after it was picked is kept.
-- KEYS[1] = live expiry index of the slot    rs:{x<n>}:exp
-- KEYS[2] = ended expiry index of the slot   rs:{x<n>}:ended
-- KEYS[3..] = for each candidate, in order: record, messages, snapshots, user index (4 keys, all in
--             this slot)
-- ARGV[1] = live cutoff, epoch ms: a live session last active before it has expired
-- ARGV[2] = ended cutoff, epoch ms: the same for ended sessions
-- ARGV[3] = "1" to delete, "0" to only find them (dry run)
-- ARGV[4] = "<invalidation channel>|<origin>" to announce each deletion on ("" : none)
-- ARGV[5] = now, epoch milliseconds (sent with the announcements)
-- ARGV[6..] = for each candidate: its expiry entry <u>:<sid>, then its session id
-- Returns {expired entries (deleted unless a dry run), number of candidates kept because touched}.
local live_key, ended_key = KEYS[1], KEYS[2]
local live_cutoff, ended_cutoff, delete = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local channel, now_ms = ARGV[4], ARGV[5]

local expired, kept = {}, 0
for i = 6, #ARGV, 2 do
  local member, session_id = ARGV[i], ARGV[i + 1]
  local live = redis.call('ZSCORE', live_key, member)
  local ended = redis.call('ZSCORE', ended_key, member)
  if live or ended then
    local live_expired = not live or tonumber(live) < live_cutoff
    local ended_expired = not ended or tonumber(ended) < ended_cutoff
    if live_expired and ended_expired then
      expired[#expired + 1] = member
      if delete then
        local base = 3 + (i - 6) * 2
        local keys = {KEYS[base], KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], live_key, ended_key}
        cascade(keys, session_id, member, channel, now_ms)
      end
    else
      kept = kept + 1
    end
  end
end
return {expired, kept}
