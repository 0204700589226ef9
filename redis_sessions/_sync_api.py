"""The public operations of SessionStore. GENERATED from ``_async_api.py`` by
``scripts/unasync.py`` (``make generate``): edit that file, not this one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._corebase import ModifyFn
from ._shell import StoreBase
from .check import CheckReport
from .maintenance import Progress, SweepReport
from .models import TutorContext
from .records import Folder, Message, Session, SessionInfo
from .requests import Request
from .restore import FolderRestore, SessionRestore


class _SyncAPI(StoreBase):
    """The operations of the synchronous store (see the module docstring)."""

    def _execute(self, request: Request) -> Any:
        """One raw request through the driver (tools, tests)."""
        return self._run(self._core.execute(request))

    def create_session(
        self,
        user_id: str,
        folder_id: str | uuid.UUID | None = None,
        initial_context: TutorContext | Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> uuid.UUID:
        """Create a session and return its new id (a random UUID4). One round trip.

        The context starts at the reference defaults merged with ``initial_context`` (a TutorContext
        or a mapping; its session_id is replaced by the new id). With ``folder_id``, a folder of this
        user copies its vector_store_id and its knowledge base (as an AnalysisResult) into the
        context; a missing, foreign or failing folder logs a warning and the session is created
        without folder data. Raises InvalidInput for a bad user id or context, writing nothing.
        """
        return self._run(
            self._core.create_session(user_id, folder_id, initial_context, request_id=request_id)
        )

    def get_session(self, session_id: str | uuid.UUID, user_id: str) -> Session | None:
        """The session with its metadata and version, or None. One round trip; none on a cache hit.

        A record that cannot be decoded reads as None and is logged with its key.
        """
        return self._run(self._core.get_session(session_id, user_id))

    def get_session_context(
        self, session_id: str | uuid.UUID, user_id: str, *, history: int = 0
    ) -> TutorContext | None:
        """The session's context, or None. One round trip (none on a cache hit when history=0).

        Fields missing in the stored record take their defaults. With ``history=N`` the last N
        messages fill ``history`` (``{"role", "content"}``, oldest first) and their whiteboard
        snapshots fill ``whiteboard_history``, read in the same round trip as the context.
        """
        return self._run(self._core.get_session_context(session_id, user_id, history=history))

    def update_session_context(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        context: TutorContext,
        *,
        expected_version: int | None = None,
        request_id: str | None = None,
    ) -> bool:
        """Store ``context`` as the session's context; bump its version and last activity.

        One round trip; two when another process changed the session since this store cached it.
        With the session cached, only the fields that changed are sent and validated. Only the
        lean form is stored: ``history`` and ``whiteboard_history`` are never written into the
        record (keep them with ``append_message``).
        ``latest_turn_no`` and ``latest_snapshot_index`` are only ever raised, never lowered.
        Returns False for a missing or foreign session, which is never re-created. With
        ``expected_version``, raises VersionConflict when the stored version differs.
        """
        return self._run(
            self._core.update_session_context(
                session_id,
                user_id,
                context,
                expected_version=expected_version,
                request_id=request_id,
            )
        )

    def modify(
        self, session_id: str | uuid.UUID, user_id: str, fn: ModifyFn, *, retries: int = 10
    ) -> TutorContext:
        """Read the session, apply ``fn`` to its context, and write it with ``expected_version``,
        again and again (up to ``retries`` times, after a short random pause) while another writer
        gets there first. Returns the context written. ``fn`` may change the context in place or
        return a new one; it may run more than once, so it must not have other effects. Raises
        SessionNotFound for a missing (or deleted meanwhile) session, VersionConflict when the
        retries run out. Two round trips per attempt (none for the first read on a cache hit).
        """
        return self._run(self._core.modify(session_id, user_id, fn, retries=retries))

    def session_exists(self, session_id: str | uuid.UUID, user_id: str) -> bool:
        """Whether the session exists for this user. One round trip; none on a cache hit."""
        return self._run(self._core.session_exists(session_id, user_id))

    def end_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> bool:
        """Record ``ended_at`` (the first end time is kept). False if missing. One round trip."""
        return self._run(self._core.end_session(session_id, user_id, request_id=request_id))

    def delete_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> bool:
        """Delete the session with its messages, snapshots, index and expiry entries, atomically
        (one Lua script, one round trip). Returns whether the record existed.
        """
        return self._run(self._core.delete_session(session_id, user_id, request_id=request_id))

    def list_user_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionInfo]:
        """The user's sessions, most recent activity first; ``limit`` is capped at 100.

        One round trip. Index entries whose record is gone are pruned, never returned.
        """
        return self._run(self._core.list_user_sessions(user_id, limit, offset))

    def append_message(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        role: str,
        text: str,
        *,
        payload: Any = None,
        whiteboard_actions: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
    ) -> int:
        """Append a message and return its turn number (allocated atomically). One round trip.

        With ``whiteboard_actions`` a snapshot is stored whose index is that turn number. At most
        ``StoreConfig.max_messages`` are kept (the oldest, with their snapshots, are trimmed).
        Raises SessionNotFound for a missing or foreign session.
        """
        return self._run(
            self._core.append_message(
                session_id,
                user_id,
                role,
                text,
                payload=payload,
                whiteboard_actions=whiteboard_actions,
                request_id=request_id,
            )
        )

    def get_messages(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        limit: int = 50,
        before_turn_no: int | None = None,
    ) -> list[Message]:
        """The newest ``limit`` messages (with a turn number below ``before_turn_no`` when given:
        the page before), oldest first; [] for a missing session. One round trip.

        ``limit`` is capped at ``StoreConfig.max_messages``, the messages a session keeps.
        """
        return self._run(self._core.get_messages(session_id, user_id, limit, before_turn_no))

    def get_whiteboard_state(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        target_snapshot_index: int | None = None,
    ) -> list[dict[str, Any]]:
        """The whiteboard as it stood at snapshot ``target_snapshot_index`` (the latest when
        None): the actions of every snapshot up to it, concatenated in index order; [] for a
        missing session. One round trip.

        Only the snapshots of the messages the session keeps (``max_messages``) are there: a board
        whose early snapshots were trimmed starts from the oldest one kept.
        """
        return self._run(
            self._core.get_whiteboard_state(session_id, user_id, target_snapshot_index)
        )

    def append_messages(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        messages: Sequence[tuple[str, str, Any]],
        *,
        request_id: str | None = None,
    ) -> int:
        """Append a batch of ``(role, text, payload)`` messages in one atomic write, on consecutive
        turn numbers (another writer's messages never land in between); returns the last turn
        number (the turn counter; unchanged for an empty batch). One round trip.

        Every message is checked before anything is written (InvalidInput). At most
        ``StoreConfig.max_messages`` are kept, as with ``append_message``. Raises SessionNotFound
        for a missing or foreign session.
        """
        return self._run(
            self._core.append_messages(session_id, user_id, messages, request_id=request_id)
        )

    def pop_message(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Message | None:
        """Take the latest message back, atomically, and return it (None when the session has no
        message). One round trip.

        Its whiteboard snapshot goes with it and its turn number is given back: the next message
        takes it again. ``latest_turn_no`` and ``latest_snapshot_index`` are not lowered. Raises
        SessionNotFound for a missing or foreign session.
        """
        return self._run(self._core.pop_message(session_id, user_id, request_id=request_id))

    def clear_messages(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> int:
        """Delete every message and whiteboard snapshot of the session and keep the session (its
        context, state and index entries); returns how many messages went. One round trip.

        Turn numbers go on from where they were (the next message is not turn 1 again). Raises
        SessionNotFound for a missing or foreign session.
        """
        return self._run(self._core.clear_messages(session_id, user_id, request_id=request_id))

    def get_session_state(self, session_id: str | uuid.UUID, user_id: str) -> dict[str, Any] | None:
        """The session's free-form state (a JSON-valued dict kept beside its record, for agent
        frameworks and app data that is not part of the context), or None for a missing or
        foreign session. One round trip.
        """
        return self._run(self._core.get_session_state(session_id, user_id))

    def update_session_state(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        changes: Mapping[str, Any],
        *,
        remove: Iterable[str] = (),
        request_id: str | None = None,
    ) -> bool:
        """Set the keys of ``changes`` and remove the keys of ``remove`` in the session's free-form
        state, atomically; the rest of the state is kept. Counts as activity. One round trip.

        Values must be JSON (no NaN or infinity, nesting at most 64 deep), else InvalidInput and
        nothing is written. The state expires and is deleted with the session. Returns False for a
        missing or foreign session.
        """
        return self._run(
            self._core.update_session_state(
                session_id, user_id, changes, remove=remove, request_id=request_id
            )
        )

    def restore_session(self, restore: SessionRestore) -> int:
        """Write a session whole, with the ids, times, turn numbers, messages and snapshots of
        ``restore``, replacing whatever its keys held; returns its version. One round trip.

        For migrations and backups: the session is left as the store's own writes would have left
        it, as if last written at its ``updated_at`` (listing order, the idle clock of the sweep,
        its keys' TTL), and other stores are told to drop a cached copy. Idempotent: the same
        restore again leaves the same keys and version; the version goes up by one only when the
        record changed. Everything is checked first (InvalidInput, nothing written), also a session
        whose keys' TTL would have run out already. Its free-form state, if any, is kept.
        """
        return self._run(self._core.restore_session(restore))

    def restore_sessions(self, restores: Sequence[SessionRestore]) -> list[int]:
        """``restore_session`` for many sessions in one round trip (pipelined; on a cluster, one
        per node); returns their versions, in order. All are checked before any is sent
        (InvalidInput, nothing written). If Redis fails one, the others may have been written:
        the error is raised, and restoring them all again is safe.
        """
        return self._run(self._core.restore_sessions(restores))

    def restore_folders(self, items: Sequence[FolderRestore]) -> None:
        """Write folders whole, each with its times as given and its ``extra`` fields, replacing
        what was there (migrations, backups; ``put_folder`` is the app's own write). Idempotent.
        One round trip for them all (pipelined; on a cluster, one per node). All are checked
        first (InvalidInput, nothing written).
        """
        return self._run(self._core.restore_folders(items))

    def put_folder(self, user_id: str, folder: Folder) -> Folder:
        """Create or replace a folder of the user; returns it as stored. One round trip."""
        return self._run(self._core.put_folder(user_id, folder))

    def get_folder_data(self, folder_id: str | uuid.UUID, user_id: str) -> Folder | None:
        """The folder if this user owns it, else None. One round trip (none with a folder source,
        which is asked instead).
        """
        return self._run(self._core.get_folder_data(folder_id, user_id))

    def delete_folder(
        self, folder_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> bool:
        """Delete a folder of the user (sessions keep what they copied). One round trip."""
        return self._run(self._core.delete_folder(folder_id, user_id, request_id=request_id))

    def cleanup_expired_sessions(
        self,
        max_age: dt.timedelta | None = None,
        *,
        now: dt.datetime | None = None,
        batch_size: int = 100,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> SweepReport:
        """Delete every session idle longer than ``max_age`` (default ``StoreConfig.max_age``;
        ended sessions: ``StoreConfig.ended_max_age`` when set), with the same cascade as
        ``delete_session``, atomically per session, and evict them from this store's cache.

        ``now`` is the clock's time when omitted. Each candidate's activity is checked again inside
        the deleting script, so a session touched after it was picked is kept. Safe to run from
        several processes at once, idempotent, and a sweep killed at any point leaves nothing
        half-deleted. Round trips: 2 x 16384 / 512 = 64 pipelined reads of the per-slot expiry
        indexes, plus one script per slot that holds expired sessions (per ``batch_size`` of them).
        ``dry_run`` finds and counts without deleting. ``progress(done, total)`` is told of each
        batch of slots.
        """
        return self._run(
            self._core.cleanup_expired_sessions(
                max_age, now=now, batch_size=batch_size, dry_run=dry_run, progress=progress
            )
        )

    def check(
        self,
        *,
        repair: bool = False,
        drop_corrupt: bool = False,
        count: int = 1000,
        progress: Progress | None = None,
    ) -> CheckReport:
        """Scan the whole store (SCAN in batches of about ``count`` keys) for inconsistencies:
        records without index or expiry entries, index or expiry entries without records, messages
        or snapshots without records; and for damage: keys holding another Redis type than the
        layout's, records that cannot be decoded. Each one is confirmed atomically before it is
        reported. ``repair`` fixes the inconsistencies and leaves damage alone; with
        ``drop_corrupt`` too it deletes the damage (a record with its whole session). Round trips
        grow with the number of keys (about 2 per batch).
        """
        return self._run(
            self._core.check(
                repair=repair, drop_corrupt=drop_corrupt, count=count, progress=progress
            )
        )
