"""The synchronous store: a thin I/O shell that runs :mod:`redis_sessions.core` operations."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

import redis
import redis.exceptions as rex
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from .config import StoreConfig
from .core import FolderSource, StoreCore, StoreStats, translate_error
from .exceptions import InvalidInput
from .keys import KeySpace
from .maintenance import CheckReport, Progress, SweepReport
from .models import TutorContext
from .records import Folder, Message, Session, SessionInfo, ValidationResult
from .requests import Command, Op, Pipeline, Request, RunScript, ScanBatch
from .scripts import ScriptName, all_sources

T = TypeVar("T")

#: Connection settings ``from_url`` uses unless told otherwise: fail in seconds, not minutes.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 30,
}


def default_retry() -> Retry:
    """Three retries with jittered backoff (at most ~1 s) on connection errors and timeouts."""
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)


def check_client(client: Any) -> None:
    kwargs = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
    if kwargs.get("decode_responses"):
        raise InvalidInput("the store needs a client made with decode_responses=False")


class SessionStore:
    """Sessions of a tutoring backend in Redis. Thread-safe; one instance per process is enough.

    Every call is scoped by (session_id, user_id): another user's session behaves exactly like a
    missing one. Each method says how many round trips to Redis it costs; a cache hit costs none.
    Redis being unreachable raises StoreUnavailable, never reads as "not found".
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        config: StoreConfig | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        folder_source: FolderSource | None = None,
        owns_client: bool = False,
    ) -> None:
        """Wrap an existing redis-py client (made with ``decode_responses=False``).

        A ``redis.cluster.RedisCluster`` works too: every script touches one hash slot.

        ``clock`` returns the current time (timezone-aware); ``folder_source(folder_id, user_id)``
        replaces the folders kept in Redis for apps whose folders live elsewhere.
        """
        check_client(client)
        self._core = StoreCore(config, clock=clock, folder_source=folder_source)
        self._client = client
        self._owns_client = owns_client
        self._scripts: dict[ScriptName, Script] = {
            name: client.register_script(source) for name, source in all_sources().items()
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        config: StoreConfig | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        folder_source: FolderSource | None = None,
        **client_options: Any,
    ) -> SessionStore:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``client_options`` go to ``redis.Redis.from_url`` over DEFAULT_CLIENT_OPTIONS and
        :func:`default_retry`. Raises InvalidInput for a malformed URL. Closed by ``close()``.
        """
        options = {**DEFAULT_CLIENT_OPTIONS, "retry": default_retry(), **client_options}
        try:
            client = redis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise InvalidInput(f"invalid Redis URL {url!r}: {exc}") from exc
        return cls(
            client, config=config, clock=clock, folder_source=folder_source, owns_client=True
        )

    @property
    def config(self) -> StoreConfig:
        return self._core.config

    @property
    def keyspace(self) -> KeySpace:
        """The key names of this store (for tools that inspect it)."""
        return self._core.keys

    @property
    def client(self) -> redis.Redis | RedisCluster:
        return self._client

    # ------------------------------------------------------------------ I/O

    def _send(self, request: Request) -> Any:
        client: Any = self._client  # redis-py leaves execute_command unannotated
        if isinstance(request, Command):
            return client.execute_command(*request.args)
        if isinstance(request, RunScript):
            return self._scripts[request.name](keys=request.keys, args=request.args)
        if isinstance(request, Pipeline):
            with client.pipeline(transaction=False) as pipe:
                for command in request.commands:
                    pipe.execute_command(*command)
                return pipe.execute()
        return self._scan(request)

    def _scan(self, request: ScanBatch) -> tuple[Any, list[Any]]:
        """One SCAN step; on a cluster the cursor is (primary index, that node's cursor)."""
        if not isinstance(self._client, RedisCluster):
            cursor, keys = self._client.scan(
                request.cursor or 0, match=request.match, count=request.count
            )
            return (cursor or None), list(keys)
        client = cast(Any, self._client)  # RedisCluster's node methods are unannotated
        primaries = client.get_primaries()
        index, cursor = request.cursor or (0, 0)
        reply = client.execute_command(
            "SCAN",
            cursor,
            "MATCH",
            request.match,
            "COUNT",
            request.count,
            target_nodes=primaries[index],
        )
        node_cursor, keys = reply
        if isinstance(node_cursor, dict):  # redis-py keys the cursor by node name
            (node_cursor,) = node_cursor.values()
        next_cursor = int(node_cursor)
        if next_cursor:
            return (index, next_cursor), list(keys)
        return ((index + 1, 0) if index + 1 < len(primaries) else None), list(keys)

    def _run(self, op: Op[T]) -> T:
        """Drive one core operation: send each request it yields, feed back replies or errors."""
        try:
            request = next(op)
            while True:
                try:
                    reply = self._send(request)
                except rex.RedisError as exc:
                    request = op.throw(translate_error(exc))
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result

    # ------------------------------------------------------------------ sessions

    def create_session(
        self,
        user_id: str,
        folder_id: str | uuid.UUID | None = None,
        initial_context: TutorContext | Mapping[str, Any] | None = None,
    ) -> str:
        """Create a session and return its new id (a random UUID4). One round trip.

        The context starts at the reference defaults merged with ``initial_context`` (a TutorContext
        or a mapping; its session_id is replaced by the new id). With ``folder_id``, a folder of this
        user copies its vector_store_id and its knowledge base (as an AnalysisResult) into the
        context; a missing, foreign or failing folder logs a warning and the session is created
        without folder data. Raises InvalidInput for a bad user id or context, writing nothing.
        """
        return self._run(self._core.create_session(user_id, folder_id, initial_context))

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
    ) -> bool:
        """Store ``context`` as the session's context; bump its version and last activity.

        One round trip. Only the lean form is stored: ``history`` and ``whiteboard_history`` are
        never written into the record (keep them with ``append_message``).
        ``latest_turn_no`` and ``latest_snapshot_index`` are only ever raised, never lowered.
        Returns False for a missing or foreign session, which is never re-created. With
        ``expected_version``, raises VersionConflict when the stored version differs.
        """
        return self._run(
            self._core.update_session_context(
                session_id, user_id, context, expected_version=expected_version
            )
        )

    def session_exists(self, session_id: str | uuid.UUID, user_id: str) -> bool:
        """Whether the session exists for this user. One round trip; none on a cache hit."""
        return self._run(self._core.session_exists(session_id, user_id))

    def end_session(self, session_id: str | uuid.UUID, user_id: str) -> bool:
        """Record ``ended_at`` (the first end time is kept). False if missing. One round trip."""
        return self._run(self._core.end_session(session_id, user_id))

    def delete_session(self, session_id: str | uuid.UUID, user_id: str) -> bool:
        """Delete the session with its messages, snapshots and index entry, atomically (one Lua
        script, one round trip). Returns whether the record existed."""
        return self._run(self._core.delete_session(session_id, user_id))

    def list_user_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionInfo]:
        """The user's sessions, most recent activity first; ``limit`` is capped at 100.

        One round trip. Index entries whose record is gone are pruned, never returned.
        """
        return self._run(self._core.list_user_sessions(user_id, limit, offset))

    # ------------------------------------------------------------------ messages

    def append_message(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        role: str,
        text: str,
        *,
        payload: Any = None,
        whiteboard_actions: list[dict[str, Any]] | None = None,
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
            )
        )

    def get_messages(
        self, session_id: str | uuid.UUID, user_id: str, limit: int = 50
    ) -> list[Message]:
        """The last ``limit`` messages, oldest first ([] for a missing session). One round trip."""
        return self._run(self._core.get_messages(session_id, user_id, limit))

    # ------------------------------------------------------------------ folders

    def put_folder(self, user_id: str, folder: Folder) -> Folder:
        """Create or replace a folder of the user; returns it as stored. One round trip."""
        return self._run(self._core.put_folder(user_id, folder))

    def get_folder_data(self, folder_id: str | uuid.UUID, user_id: str) -> Folder | None:
        """The folder if this user owns it, else None. One round trip (none with a folder source,
        which is asked instead)."""
        return self._run(self._core.get_folder_data(folder_id, user_id))

    def delete_folder(self, folder_id: str | uuid.UUID, user_id: str) -> bool:
        """Delete a folder of the user (sessions keep what they copied). One round trip."""
        return self._run(self._core.delete_folder(folder_id, user_id))

    # ------------------------------------------------------------------ maintenance

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
        self, *, repair: bool = False, count: int = 1000, progress: Progress | None = None
    ) -> CheckReport:
        """Scan the whole store (SCAN in batches of about ``count`` keys) for inconsistencies:
        records without index or expiry entries, index or expiry entries without records, messages
        or snapshots without records. Each one is confirmed atomically before it is reported, and
        fixed with ``repair``. Round trips grow with the number of keys (about 2 per batch)."""
        return self._run(self._core.check(repair=repair, count=count, progress=progress))

    # ------------------------------------------------------------------ no I/O

    def validate_session_context(self, data: object) -> ValidationResult:
        """Validate a context (JSON bytes or str, a mapping, or a TutorContext); no round trip.

        Reports every problem with its path (``$.user_model_state...``) and returns the
        normalized context when valid.
        """
        return self._core.validate_session_context(data)

    def stats(self) -> StoreStats:
        """Cache hits, misses, hit rate, size, and undecodable records seen. No round trip."""
        return self._core.stats()

    def close(self) -> None:
        """Close the client if the store made it (``from_url``)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
