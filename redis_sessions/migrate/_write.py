"""Writing imported sessions and folders into Redis: one script per session, pipelined.

The script writes a session whole and atomically, in its user's hash slot (all its keys carry the
user's hash tag, and its expiry entry lives in the slot's own expiry index), as the store's own
``create.lua`` and ``append.lua`` would have left it: the record, its messages and snapshots, its
entry in the user's index (scored by ``updated_at`` in microseconds), its entry in the live or
ended expiry index (its last activity in milliseconds), the TTL backstop of its three keys, and an
invalidation announcement so that running stores drop a cached copy. The record's ``ttl_until``
(when the TTL runs out, epoch ms: the store's bookkeeping, see ``keep_alive`` in ``lua/_lib.lua``)
is set with the TTL. It replaces what was there
(idempotent: running it twice leaves the same data); the record's ``version`` stays when the record
is unchanged, else it goes up by one, so an app holding an ``expected_version`` sees a conflict.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError

from ..keys import KeySpace
from ._toredis import SessionPlan

_CHUNK = 500  # field/value pairs per HSET (Lua's unpack has a limit)

IMPORT_SESSION_LUA = """
local record, msgs, wb, idx, live, ended = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local sid, member, score_us, score_ms, is_ended, ttl_ms, channel, note =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local function hset(key, first, last)
  local i = first
  while i < last do
    local j = math.min(i + 2 * 500 - 1, last)
    redis.call('HSET', key, unpack(ARGV, i, j))
    i = j + 1
  end
end
local ttl_until = ARGV[9]
local old, version = {}, nil
local got = redis.pcall('HGETALL', record)
if type(got) == 'table' and got.err == nil then
  for i = 1, #got, 2 do old[got[i]] = got[i + 1] end
  version = tonumber(old['version'])
end
local at = 10
local n = tonumber(ARGV[at])
local same = version ~= nil
local count_old = 0
for k, _ in pairs(old) do
  if k ~= 'version' and k ~= 'ttl_until' then count_old = count_old + 1 end
end
if same and count_old ~= n / 2 then same = false end
if same then
  for i = at + 1, at + n, 2 do
    if old[ARGV[i]] ~= ARGV[i + 1] then same = false break end
  end
end
redis.call('DEL', record, msgs, wb)
hset(record, at + 1, at + n)
if version == nil then
  version = 1
elseif not same then
  version = version + 1
end
redis.call('HSET', record, 'version', string.format('%d', version))
if ttl_until ~= '' then redis.call('HSET', record, 'ttl_until', ttl_until) end
at = at + n + 1
n = tonumber(ARGV[at])
hset(msgs, at + 1, at + n)
at = at + n + 1
n = tonumber(ARGV[at])
hset(wb, at + 1, at + n)
redis.pcall('ZADD', idx, score_us, sid)
if is_ended == '1' then
  redis.pcall('ZREM', live, member)
  redis.pcall('ZADD', ended, score_ms, member)
else
  redis.pcall('ZREM', ended, member)
  redis.pcall('ZADD', live, score_ms, member)
end
for _, key in ipairs({record, msgs, wb}) do
  if ttl_ms > 0 then redis.call('PEXPIRE', key, ttl_ms) else redis.call('PERSIST', key) end
end
if channel ~= '' then redis.call('PUBLISH', channel, note) end
return version
"""

REPLACE_HASH_LUA = """
redis.call('DEL', KEYS[1])
local i = 1
while i < #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
return 1
"""


def _flat(pairs: Any) -> list[Any]:
    out: list[Any] = []
    for key, value in pairs:
        out.append(key)
        out.append(value)
    return out


class Writer:
    """Pipelined writes of plans to one Redis (``redis.Redis`` or ``RedisCluster``).

    The scripts are loaded first (``SCRIPT LOAD``: on every primary of a cluster), then sent by
    their SHA1 (``EVALSHA``); a batch that meets ``NOSCRIPT`` (a restarted server, ``SCRIPT
    FLUSH``) loads them again and is sent again whole (harmless: each script replaces a session)."""

    def __init__(self, client: Any, keys: KeySpace, *, announce: bool = True) -> None:
        self.client = client
        self.keys = keys
        self._channel = keys.invalidation_channel() if announce else ""
        self._session_sha = hashlib.sha1(IMPORT_SESSION_LUA.encode()).hexdigest()
        self._hash_sha = hashlib.sha1(REPLACE_HASH_LUA.encode()).hexdigest()
        self._loaded = False

    def _send(self, queue: Callable[[Any], None]) -> None:
        for attempt in range(2):
            if not self._loaded:
                self.client.script_load(IMPORT_SESSION_LUA)
                self.client.script_load(REPLACE_HASH_LUA)
                self._loaded = True
            pipe = self.client.pipeline(transaction=False)
            queue(pipe)
            try:
                pipe.execute()
                return
            except NoScriptError:
                if attempt:
                    raise
                self._loaded = False

    def sessions(self, plans: list[SessionPlan]) -> None:
        """Write every plan: one script each, all in one pipeline (one round trip per batch, on
        each node). Raises redis-py's errors."""
        if not plans:
            return
        now_ms = int(time.time() * 1000)
        calls = []
        for plan in plans:
            record = _flat(sorted(kv for kv in plan.record.items() if kv[0] != b"version"))
            messages = _flat((str(turn).encode(), blob) for turn, blob in plan.messages)
            snapshots = _flat((str(index).encode(), blob) for index, blob in plan.snapshots)
            calls.append(
                (
                    plan.keys,
                    [
                        plan.session_id,
                        plan.member,
                        plan.index_score_us,
                        plan.expiry_score_ms,
                        "1" if plan.ended else "0",
                        plan.ttl_ms,
                        self._channel,
                        f"{plan.member}|{now_ms}|migrate",
                        now_ms + plan.ttl_ms if plan.ttl_ms else "",
                        len(record),
                        *record,
                        len(messages),
                        *messages,
                        len(snapshots),
                        *snapshots,
                    ],
                )
            )

        def queue(pipe: Any) -> None:
            for keys, args in calls:
                pipe.execute_command("EVALSHA", self._session_sha, len(keys), *keys, *args)

        self._send(queue)

    def folders(self, folders: list[tuple[str, str, list[tuple[str, str | bytes]]]]) -> None:
        """Replace each folder hash (user id, folder id, fields): one script each, pipelined."""
        if not folders:
            return

        def queue(pipe: Any) -> None:
            for user_id, folder_id, pairs in folders:
                key = self.keys.folder(user_id, folder_id)
                pipe.execute_command("EVALSHA", self._hash_sha, 1, key, *_flat(pairs))

        self._send(queue)
