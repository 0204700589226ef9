"""Writing imported sessions and folders into Redis.

Sessions go through the store's public ``restore_sessions`` (``lua/restore.lua``): one script per
session, pipelined per batch, each writing its session whole in its user's hash slot as the store's
own writes would have left it (index and expiry entries, TTL, ``ttl_until``, the invalidation), and
keeping the version when nothing changed. A batch the store refuses (InvalidInput: something the
conversion did not foresee, such as a context past ``max_context_bytes``) is restored session by
session, so that only the sessions refused are left out, each reported with its rows.

Folders go through the store's ``restore_folders`` (their times as PostgreSQL holds them, and
``pg_extra``); a batch it refuses (a folder past ``max_context_bytes / 2``, as ``put_folder``
refuses it) is sent folder by folder, each refused one reported.

The migration uses the store's public API only, here: no key, script or bookkeeping of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from ..exceptions import InvalidInput
from ..restore import FolderRestore
from ..store import SessionStore
from ._pg import Bundle
from ._report import Issue
from ._toredis import Outcome, Planned, skipped_children


class Writer:
    """Writes of a run, through a store on the run's client (``redis.Redis`` or
    ``RedisCluster``): its ``restore_sessions`` and ``restore_folders``, each batch one
    pipeline."""

    def __init__(self, store: SessionStore, convert: Callable[[Bundle, bool], Outcome]) -> None:
        self.store = store
        #: ``session_plan`` of the run: (bundle, strict) -> Outcome
        self.convert = convert

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

    def folders(self, folders: list[FolderRestore]) -> list[Issue]:
        """Restore every folder (one round trip); the issues of those the store refused (found
        one by one when it refuses the batch), which were not written."""
        if not folders:
            return []
        try:
            self.store.restore_folders(folders)
            return []
        except InvalidInput:
            pass
        issues = []
        for folder in folders:
            try:
                self.store.restore_folders([folder])
            except InvalidInput as exc:
                issues.append(
                    Issue(
                        table="folders",
                        id=str(folder.folder.id),
                        reason="the store refuses the folder",
                        action="skipped",
                        detail=str(exc),
                    )
                )
        return issues
