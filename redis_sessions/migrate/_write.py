"""Writing imported sessions and folders into Redis.

Sessions go through the store's public ``restore_sessions`` (``lua/restore.lua``): one script per
session, pipelined per batch, each writing its session whole in its user's hash slot as the store's
own writes would have left it (index and expiry entries, TTL, ``ttl_until``, the invalidation), and
keeping the version when nothing changed. A batch the store refuses (InvalidInput: something the
conversion did not foresee, such as a context past ``max_context_bytes``) is restored session by
session, so that only the sessions refused are left out, each reported with its rows.

Folders have no bookkeeping (no index, no TTL): each folder hash is replaced by a small script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError

from ..exceptions import InvalidInput
from ..keys import KeySpace
from ..store import SessionStore
from ._pg import Bundle
from ._report import Issue
from ._toredis import Outcome, Planned, skipped_children

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
    """Writes of a run to one Redis (``redis.Redis`` or ``RedisCluster``): sessions through a
    store on ``client`` (``store``), folders by their script, loaded first (``SCRIPT LOAD``: on
    every primary of a cluster) and sent by SHA1; a batch that meets ``NOSCRIPT`` (a restarted
    server, ``SCRIPT FLUSH``) loads it again and is sent again whole (harmless: each replaces a
    folder)."""

    def __init__(
        self,
        client: Any,
        store: SessionStore,
        keys: KeySpace,
        convert: Callable[[Bundle, bool], Outcome],
    ) -> None:
        self.client = client
        self.store = store
        #: ``session_plan`` of the run: (bundle, strict) -> Outcome
        self.convert = convert
        self.keys = keys
        self._hash_sha = hashlib.sha1(REPLACE_HASH_LUA.encode()).hexdigest()
        self._loaded = False

    def _send(self, queue: Callable[[Any], None]) -> None:
        for attempt in range(2):
            if not self._loaded:
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

    def sessions(self, plans: list[Planned]) -> dict[int, Outcome]:
        """Restore every session (one round trip per batch, on each node). Returns what became of
        those the store refused at first (by their place in ``plans``): restored again as
        ``strict`` conversion left them (the rows it found the store refuses left out, each an
        issue), or refused whole (plan None, the session and its rows each an issue). Raises the
        store's other errors."""
        if not plans:
            return {}
        try:
            self.store.restore_sessions([p.restore for p in plans])
            return {}
        except InvalidInput:
            pass
        out = {}
        for n, plan in enumerate(plans):  # rare: find which ones, one at a time
            try:
                self.store.restore_session(plan.restore)
                continue
            except InvalidInput:
                pass
            # the rows the first conversion reported already are not reported again
            known = set(self.convert(plan.bundle, False).issues)
            strict = self.convert(plan.bundle, True)
            issues = [i for i in strict.issues if i not in known]
            restore = strict.plan
            if restore is not None:
                try:
                    self.store.restore_session(restore)
                except InvalidInput as exc:
                    sid = str(restore.context.session_id)
                    issues = [
                        Issue(
                            table="sessions",
                            id=sid,
                            reason="the store refuses the session",
                            action="skipped",
                            detail=str(exc),
                        ),
                        *(
                            i
                            for i in skipped_children(plan.bundle, "its session was skipped")
                            if not any(k.table == i.table and k.id == i.id for k in known)
                        ),
                    ]
                    restore = None
            out[n] = Outcome(restore, False, issues)
        return out

    def folders(self, folders: list[tuple[str, str, list[tuple[str, str | bytes]]]]) -> None:
        """Replace each folder hash (user id, folder id, fields): one script each, pipelined."""
        if not folders:
            return

        def queue(pipe: Any) -> None:
            for user_id, folder_id, pairs in folders:
                key = self.keys.folder(user_id, folder_id)
                pipe.execute_command("EVALSHA", self._hash_sha, 1, key, *_flat(pairs))

        self._send(queue)
