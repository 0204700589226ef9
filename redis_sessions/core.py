"""The store without I/O: every operation as a generator that yields Redis requests.

An operation yields a :class:`Command` or a :class:`RunScript`, receives the reply through ``send``,
and returns its result. A Redis failure is thrown into it (already translated into the store's own
exception, with the Redis error chained), so that it can evict what it cached before the error goes on
to the caller. Cache hits return without yielding anything: zero round trips.

The sync and async stores only run these generators (``drive``); no logic lives in them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import msgspec
import redis.exceptions as rex

from . import codec, maintenance
from .coherence import CacheCoherence, CachedRecord, Record
from .config import StoreConfig
from .exceptions import (
    BackendError,
    CorruptData,
    InvalidInput,
    SessionNotFound,
    SessionStoreError,
    StoreUnavailable,
    VersionConflict,
)
from .folders import analysis_from_folder
from .keys import KeySpace, check_request_id, check_user_id, check_uuid
from .models import MAX_SAFE_INT, TutorContext
from .records import Folder, Message, Session, SessionInfo
from .requests import Apply, Arg, Command, LoadFolder, Op, Request, RunScript, Sleep
from .scripts import ScriptName
from .validation import validate_context

logger: logging.Logger = logging.getLogger("redis_sessions")


#: Reads from a folder source of the app: (folder_id, user_id) -> Folder or None, or an awaitable
#: of one (async sources work with AsyncSessionStore only).
FolderSource = Callable[[str, str], "Folder | Awaitable[Folder | None] | None"]

MAX_LIST_LIMIT: Final = 100

#: ``modify``'s function: changes the context in place and returns None, or returns a new
#: TutorContext. On the async store it may also be a coroutine function (AsyncModifyFn).
ModifyFn = Callable[[TutorContext], TutorContext | None]
#: (an async store awaits what it returns; the sync store refuses an awaitable)
AsyncModifyFn = Callable[[TutorContext], Awaitable[TutorContext | None] | TutorContext | None]


class StoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one store instance since it was made. ``invalidations_received``: writes of
    other processes (and of this one) announced to this store; ``cache_flushes``: times the cache
    was emptied because the invalidation listener lost its connection or fell behind;
    ``link_drops``: times the invalidation link was lost or went silent (the cache stopped serving
    until it was back)."""

    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    cache_size: int
    undecodable_records: int
    invalidations_received: int
    cache_flushes: int
    cache_serving: bool
    #: times the invalidation link was lost (dropped, or silent past max_link_silence) and made anew
    link_drops: int


def translate_error(exc: rex.RedisError) -> SessionStoreError:
    """The store's exception for a redis-py error (the caller chains ``exc`` as its cause)."""
    unavailable = (
        rex.ConnectionError,
        rex.TimeoutError,
        rex.ReadOnlyError,
        rex.BusyLoadingError,
        rex.ClusterDownError,
        rex.TryAgainError,
    )
    if isinstance(exc, unavailable):
        error: SessionStoreError = StoreUnavailable(f"Redis unavailable: {exc}")
    elif str(exc).startswith("CORRUPT "):  # a script met damage: "CORRUPT <key> <what>"
        _, key, problem = [*str(exc).split(" ", 2), ""][:3]
        error = CorruptData(key, problem)
    elif "REQUEST_ID_REUSED" in str(exc):  # a caller's request_id named another write
        error = InvalidInput(
            f"request_id was already used for another write within the replay window: {exc}"
        )
    else:
        error = BackendError(f"Redis error: {exc}")
    error.__cause__ = exc
    return error


def _is_wrongtype(exc: SessionStoreError) -> bool:
    return isinstance(exc, BackendError) and "WRONGTYPE" in str(exc)


#: Sessions a listing may skip: the script walks them (an index entry without record does not
#: count), so a deeper page costs more; pages beyond are refused rather than slow.
MAX_LIST_OFFSET: Final = 10_000
MAX_MODIFY_RETRIES: Final = 10_000
NOT_A_HASH: Final = "holds another type than a hash"


def _check_int(value: object, name: str, *, minimum: int, maximum: int = MAX_SAFE_INT) -> int:
    """``value`` if it is an int in [minimum, maximum] (by default at most 2**53 - 1: what every
    layer holds exactly); InvalidInput otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be an int from {minimum} to {maximum}, got {value!r}")
    return value


class StoreCore(CacheCoherence):
    """Everything a store does except talking to Redis. One instance per store. Its cache and
    how it stays coherent with Redis are ``CacheCoherence``'s."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        folder_source: FolderSource | None = None,
    ) -> None:
        self.config: StoreConfig = config if config is not None else StoreConfig()
        if not isinstance(self.config, StoreConfig):
            raise InvalidInput(f"config must be a StoreConfig, got {type(self.config).__name__}")
        self.keys: KeySpace = KeySpace(self.config.key_prefix)
        self._key_ttl_ms = self.config.key_ttl_ms
        self._init_coherence(self.config, self.keys)
        self.folder_source = folder_source
        self._clock = clock or codec.utc_now
        self._undecodable = 0
        self._replay_window_ms = int(self.config.replay_window.total_seconds() * 1000)
        self._request_numbers = itertools.count(1)  # next() is atomic: thread-safe ids

    # ------------------------------------------------------------------ helpers

    def now(self) -> dt.datetime:
        """The injected clock's time, checked to be timezone-aware, in UTC."""
        return codec.check_aware(self._clock())

    def _write_args(self, uid: str, sid: str, now: dt.datetime) -> list[Arg]:
        """ARGV[1..7] of every session write script: user, session, expiry entry, now (µs), TTL,
        the channel the change is announced on, and the replay window (ms)."""
        member = self.keys.expiry_member(uid, sid)
        return [
            uid,
            sid,
            member,
            codec.epoch_us(now),
            self._key_ttl_ms,
            self.channel,
            self._replay_window_ms,
        ]

    def _write_keys(self, uid: str, sid: str, request_id: str | None) -> list[str]:
        """KEYS[1..7] of every session write script: the session's keys, then the request key
        where the script keeps its reply for a resent request (see ``request_key``)."""
        keys = self.keys.session_write_keys(uid, sid)
        keys.append(self.request_key(uid, request_id))
        return keys

    def request_key(self, uid: str, request_id: str | None) -> str:
        """The replay key of one write. Every write carries a request id, drawn here unless the
        caller gave one (``request_id=``: an idempotency key of its own, e.g. an HTTP client's).
        redis-py resends a command whose reply was lost with the same arguments, so the resent
        request finds the first attempt's reply there instead of applying again. Drawing an id
        costs no round trip: this store's origin and a counter."""
        if request_id is None:
            request_id = f"{self.origin}.{next(self._request_numbers):x}"
        else:
            request_id = "a." + check_request_id(request_id)  # never equal to a drawn one
        return self.keys.request(uid, request_id)

    def report_corrupt(self, key: str, problem: object) -> None:
        """Count and log damage a read went around (a message, a listing row), with its key."""
        with self._lock:
            self._undecodable += 1
        logger.warning("corrupt data at %s: %s", key, problem)

    def _damage(self, key: str, problem: object) -> CorruptData:
        """Count and log damage that stops an operation; the error to raise for it."""
        self.report_corrupt(key, problem)
        return CorruptData(key, str(problem))

    def _written_around(self, damaged: bytes) -> None:
        """Report the index keys a write could not update because they hold another type (see
        touch in lua/_lib.lua): the session was written, but is not listed or not expiring."""
        for key in damaged.decode(errors="replace").split("\n") if damaged else ():
            self.report_corrupt(
                key,
                "holds another type than a sorted set: the write went around it "
                "(`redis-sessions check --repair --drop-corrupt` rebuilds it)",
            )

    def _record(
        self, user_id: str, session_id: str, *, use_cache: bool = True
    ) -> Op[Record | None]:
        """The raw record, from the cache or one HGETALL."""
        cache_key = (user_id, session_id)
        cached = self._cached(cache_key) if use_cache else None
        if cached is not None:
            return cached
        key = self.keys.session(user_id, session_id)
        epoch = self.freshness.token()
        try:
            record: Record = yield Command(("HGETALL", key))
        except SessionStoreError as exc:
            if _is_wrongtype(exc):
                raise self._damage(key, NOT_A_HASH) from exc
            raise
        if not record:
            return None
        self._fill_cache(cache_key, record, epoch)
        return record

    def _report_parts(
        self, user_id: str, session_id: str, bad_messages: list[str], bad_snapshots: list[str]
    ) -> None:
        """Log (with its key) and count each message or snapshot a read had to leave out."""
        _, messages_key, snapshots_key = self.keys.session_keys(user_id, session_id)
        for problem in bad_messages:
            self.report_corrupt(messages_key, problem)
        for problem in bad_snapshots:
            self.report_corrupt(snapshots_key, problem)

    def _parts(self, record: Record, user_id: str, session_id: str) -> tuple[dict[str, Any], bytes]:
        """(metadata, lean context JSON) of a record, kept with a cached one; raises CorruptRecord."""
        if isinstance(record, CachedRecord):
            if record.parts is None:  # computed once per cached record (a benign race)
                record.parts = codec.session_parts(record, user_id, session_id)
            return record.parts
        return codec.session_parts(record, user_id, session_id)

    def _session(self, record: Record, user_id: str, session_id: str) -> Session:
        """The record as a Session; raises CorruptData when it does not decode."""
        try:
            return codec.session_from_parts(self._parts(record, user_id, session_id))
        except codec.CorruptRecord as exc:
            raise self._undecodable_record(user_id, session_id, exc) from exc

    def _context(self, record: Record, user_id: str, session_id: str) -> TutorContext:
        """The record's context alone (what a Session would hold, without making the Session)."""
        try:
            return codec.decode_context(self._parts(record, user_id, session_id)[1])
        except codec.CorruptRecord as exc:
            raise self._undecodable_record(user_id, session_id, exc) from exc

    def _undecodable_record(
        self, user_id: str, session_id: str, exc: codec.CorruptRecord
    ) -> CorruptData:
        self.cache.evict((user_id, session_id))
        return self._damage(self.keys.session(user_id, session_id), exc)

    # ------------------------------------------------------------------ sessions

    def create_session(
        self,
        user_id: str,
        folder_id: str | uuid.UUID | None = None,
        initial_context: TutorContext | Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> Op[uuid.UUID]:
        """The core operation behind ``SessionStore.create_session`` (documented there)."""
        uid = check_user_id(user_id)
        request_key = self.request_key(uid, request_id)
        context = self._initial_context(uid, initial_context)
        if folder_id is None and context.folder_id is not None:
            folder_id = context.folder_id
        fid = check_uuid(folder_id, "folder_id") if folder_id is not None else None
        context.folder_id = None
        redis_folder = fid
        if fid is not None and self.folder_source is not None:
            context = yield from self._apply_folder_source(context, fid, uid)
            redis_folder = None
        now = self.now()
        for _ in range(3):  # a UUID4 collision is practically impossible; never overwrite one
            context.session_id = codec.new_session_id()
            sid = str(context.session_id)
            fields = codec.encode_context(
                context, user_id=uid, session_id=sid, max_bytes=self.config.max_context_bytes
            )
            record = codec.record_fields(
                user_id=uid, session_id=sid, now=now, context_fields=fields
            )
            keys = [*self.keys.session_write_keys(uid, sid), request_key]
            if redis_folder is not None:
                keys.append(self.keys.folder(uid, redis_folder))
            args = [
                *self._write_args(uid, sid, now),
                redis_folder or "",
                *codec.flatten(record.items()),
            ]
            with self._writing((uid, sid)) as write:
                reply = yield RunScript(ScriptName.CREATE, keys, args)
                if reply[0] == 1 and reply[1] == b"none" and reply[2] == sid.encode():
                    # no folder was copied in: the record is exactly what was sent
                    write.after = record
            if reply[0] == 1:
                sid = bytes(reply[2]).decode()  # a replayed create names the session it made
                self._written_around(reply[3])
                break
        else:  # pragma: no cover - three UUID4 collisions in a row
            raise BackendError("could not allocate a free session id")
        status = reply[1].decode()
        if status in ("missing", "invalid"):
            logger.warning(
                "session %s of user %r created without folder data: folder %s is %s",
                sid,
                uid,
                redis_folder,
                "missing or not this user's"
                if status == "missing"
                else "not loadable (malformed analysis)",
            )
        return uuid.UUID(sid)

    def _initial_context(
        self, user_id: str, initial: TutorContext | Mapping[str, Any] | None
    ) -> TutorContext:
        placeholder = uuid.UUID(int=0)
        if initial is None:
            return TutorContext(user_id=user_id, session_id=placeholder)
        if isinstance(initial, TutorContext):
            if initial.user_id != user_id:
                raise InvalidInput(
                    f"initial_context.user_id is {initial.user_id!r}, not {user_id!r}"
                )
            return msgspec.structs.replace(initial)
        if isinstance(initial, Mapping):
            data = dict(initial)
            if data.get("user_id", user_id) != user_id:
                raise InvalidInput(
                    f"initial_context user_id is {data['user_id']!r}, not {user_id!r}"
                )
            data["user_id"] = user_id
            data["session_id"] = str(placeholder)
            result = validate_context(data)
            if result.context is None:
                raise InvalidInput("invalid initial_context: " + "; ".join(result.errors))
            return result.context
        raise InvalidInput(
            f"initial_context must be a TutorContext or a mapping, got {type(initial).__name__}"
        )

    def _apply_folder_source(
        self, context: TutorContext, folder_id: str, user_id: str
    ) -> Op[TutorContext]:
        try:
            folder = yield LoadFolder(folder_id, user_id)
            if folder is None:
                logger.warning(
                    "folder %s of user %r not found: session created without it", folder_id, user_id
                )
                return context
            if not isinstance(folder, Folder):
                raise TypeError(f"folder source returned {type(folder).__name__}, not Folder")
            analysis = analysis_from_folder(folder)
        except Exception as exc:  # the contract: a failing folder never fails the create
            logger.warning(
                "folder %s of user %r failed to load (%r): session created without it",
                folder_id,
                user_id,
                exc,
            )
            return context
        return msgspec.structs.replace(
            context,
            folder_id=uuid.UUID(folder_id),
            vector_store_id=folder.vector_store_id
            if folder.vector_store_id is not None
            else context.vector_store_id,
            analysis_result=analysis if analysis is not None else context.analysis_result,
        )

    def get_session(self, session_id: str | uuid.UUID, user_id: str) -> Op[Session | None]:
        """The core operation behind ``SessionStore.get_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        record = yield from self._record(uid, sid)
        return None if record is None else self._session(record, uid, sid)

    def get_session_context(
        self, session_id: str | uuid.UUID, user_id: str, *, history: int = 0
    ) -> Op[TutorContext | None]:
        """The core operation behind ``SessionStore.get_session_context`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        history = min(_check_int(history, "history", minimum=0), self.config.max_messages)
        if history == 0:
            record = self._cached((uid, sid))  # a hit makes no generator of _record
            if record is None:
                record = yield from self._record(uid, sid, use_cache=False)
            return None if record is None else self._context(record, uid, sid)
        epoch = self.freshness.token()
        reply = yield from self._read_script(uid, sid, history, whole=True, snapshots=True)
        if not reply:
            return None
        record = codec.pairs_to_dict(reply[0])
        session = self._session(record, uid, sid)
        self._fill_cache((uid, sid), record, epoch)
        first = int(reply[1])
        messages, bad_messages = codec.decode_messages(first, reply[2])
        snapshots, bad_snapshots = codec.decode_snapshots(first, reply[3])
        self._report_parts(uid, sid, bad_messages, bad_snapshots)
        context = session.context
        context.history = codec.history_entries(messages)
        context.whiteboard_history = snapshots
        return context

    def _read_script(
        self,
        uid: str,
        sid: str,
        count: int,
        *,
        whole: bool,
        snapshots: bool,
        before: int | None = None,
    ) -> Op[list[Any]]:
        keys = self.keys.session_keys(uid, sid)
        args: list[Arg] = [
            count,
            "1" if whole else "0",
            "1" if snapshots else "0",
            uid,
            "" if before is None else before,
        ]
        reply: list[Any] = yield RunScript(ScriptName.READ, keys, args)
        return reply

    def update_session_context(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        context: TutorContext,
        *,
        expected_version: int | None = None,
        request_id: str | None = None,
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.update_session_context`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if expected_version is not None:
            _check_int(expected_version, "expected_version", minimum=1)
        # with the record cached, send only what changed, against the cached version (fields
        # that did not change were read back from Redis: they need no validation)
        peeked = self.cache.peek((uid, sid)) if self.cache_serving else None
        fields = codec.encode_context(
            context,
            user_id=uid,
            session_id=sid,
            max_bytes=self.config.max_context_bytes,
            stored=peeked,
        )
        now = self.now()
        stamp = codec.iso(now)
        head = [
            *self._write_args(uid, sid, now),
            stamp,
            "" if expected_version is None else expected_version,
        ]
        keys = self._write_keys(uid, sid, request_id)
        with self._writing((uid, sid)) as write:
            base = write.before if write.before is peeked else None
            base_version = base.get(b"version") if base is not None else None
            if base_version is None:
                base, base_version = None, b""
            change = codec.context_change(fields, base)
            reply = yield RunScript(ScriptName.UPDATE, keys, [*head, base_version, *change.args()])
            if int(reply[0]) == -2:  # Redis moved on from the cached version: send it whole
                base, change = None, codec.context_change(fields, None)
                reply = yield RunScript(ScriptName.UPDATE, keys, [*head, b"", *change.args()])
            status = int(reply[0])
            if status == 0:
                return False
            if status == -1:
                assert expected_version is not None
                raise VersionConflict(sid, expected_version, int(reply[1]))
            self._written_around(reply[4])
            if base is not None:
                record = change.applied_to(base, int(reply[2]), int(reply[3]))
                record[b"version"] = str(reply[1]).encode()
                record[b"updated_at"] = stamp.encode()
                write.after = record
            return True

    def modify(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        fn: AsyncModifyFn,
        *,
        retries: int = 10,
    ) -> Op[TutorContext]:
        """The core operation behind ``SessionStore.modify`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        _check_int(retries, "retries", minimum=0, maximum=MAX_MODIFY_RETRIES)
        for attempt in range(retries + 1):
            # the first attempt may use the cache; after a conflict, read what Redis holds
            record = yield from self._record(uid, sid, use_cache=attempt == 0)
            if record is None:
                raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
            session = self._session(record, uid, sid)
            returned = yield Apply(fn, session.context)
            if returned is None:
                context = session.context
            elif isinstance(returned, TutorContext):
                context = returned
            else:
                raise TypeError(
                    "modify's fn must change the context in place and return None, or return a "
                    f"TutorContext; it returned {type(returned).__name__} (nothing was written)"
                )
            try:
                written = yield from self.update_session_context(
                    sid, uid, context, expected_version=session.version
                )
            except VersionConflict:
                if attempt == retries:
                    raise
                yield Sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            if not written:
                raise SessionNotFound(f"session {sid} of user {uid!r} was deleted meanwhile")
            return context
        raise AssertionError("unreachable")  # pragma: no cover

    def session_exists(self, session_id: str | uuid.UUID, user_id: str) -> Op[bool]:
        """The core operation behind ``SessionStore.session_exists`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if self._cached((uid, sid)) is not None:
            return True
        key = self.keys.session(uid, sid)
        try:
            values = yield Command(("HMGET", key, *codec.META_FIELDS))
        except SessionStoreError as exc:
            if _is_wrongtype(exc):
                raise self._damage(key, NOT_A_HASH) from exc
            raise
        problem = codec.meta_problem(values, uid)
        if problem is None:
            return True
        if problem:
            raise self._damage(key, problem)
        exists: int = yield Command(("EXISTS", key))  # a record without user_id: damaged too
        if exists:
            raise self._damage(key, "the record has no user_id")
        return False

    def end_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.end_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        now = self.now()
        with self._writing((uid, sid)) as write:
            reply = yield RunScript(
                ScriptName.END,
                self._write_keys(uid, sid, request_id),
                [*self._write_args(uid, sid, now), codec.iso(now)],
            )
            if not reply:
                return False
            ended = reply[0]
            self._written_around(reply[1])
            if write.before is not None:
                patch = {b"ended_at": ended, b"updated_at": codec.iso(now).encode()}
                write.after = {**write.before, **patch}
            return True

    def delete_session(
        self, session_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.delete_session`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        args: list[Arg] = [
            sid,
            self.keys.expiry_member(uid, sid),
            self.channel,
            codec.epoch_ms(self.now()),
            self._replay_window_ms,
        ]
        with self._writing((uid, sid)):
            reply = yield RunScript(ScriptName.DELETE, self._write_keys(uid, sid, request_id), args)
        self._written_around(reply[1])
        return bool(int(reply[0]))

    def list_user_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> Op[list[SessionInfo]]:
        """The core operation behind ``SessionStore.list_user_sessions`` (documented there)."""
        uid = check_user_id(user_id)
        limit = min(_check_int(limit, "limit", minimum=1), MAX_LIST_LIMIT)
        offset = _check_int(offset, "offset", minimum=0, maximum=MAX_LIST_OFFSET)
        fields = codec.LISTING_FIELDS
        index = self.keys.index(uid)
        flat, problems = yield RunScript(
            ScriptName.LIST, [index], [self.keys.session_prefix(uid), offset, limit, *fields]
        )
        for i in range(0, len(problems), 2):  # rows the script left out, each reported
            self.report_corrupt(self._row_key(uid, problems[i]), problems[i + 1].decode())
        width = 1 + len(fields)
        out = []
        for i in range(0, len(flat), width):
            session_id, row = flat[i], flat[i + 1 : i + width]
            try:
                out.append(codec.info_from_row(session_id, row, uid))
            except codec.CorruptRecord as exc:
                self.report_corrupt(self._row_key(uid, session_id), exc)
        return out

    def _row_key(self, uid: str, session_id: bytes) -> str:
        return self.keys.session(uid, session_id.decode(errors="replace"))

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
        request_id: str | None = None,
    ) -> Op[int]:
        """The core operation behind ``SessionStore.append_message`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        now = self.now()
        message, snapshot = codec.encode_message(role, text, payload, whiteboard_actions, now)
        size = len(message) + len(snapshot)
        if size > self.config.max_context_bytes:
            raise InvalidInput(
                f"message is {size} bytes, more than max_context_bytes={self.config.max_context_bytes}"
            )
        args: list[Arg] = [
            *self._write_args(uid, sid, now),
            codec.iso(now),
            self.config.max_messages,
            message,
            snapshot,
        ]
        with self._writing((uid, sid)) as write:
            reply = yield RunScript(ScriptName.APPEND, self._write_keys(uid, sid, request_id), args)
            turn = int(reply[0])
            if turn == 0:
                raise SessionNotFound(f"session {sid} of user {uid!r} does not exist")
            self._written_around(reply[3])
            if write.before is not None:
                patch = {
                    b"turns": str(turn).encode(),
                    b"updated_at": codec.iso(now).encode(),
                    **codec.monotonic_fields(reply[1], reply[2]),
                }
                write.after = {**write.before, **patch}
            return turn

    def get_messages(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        limit: int = 50,
        before_turn_no: int | None = None,
    ) -> Op[list[Message]]:
        """The core operation behind ``SessionStore.get_messages`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        limit = min(_check_int(limit, "limit", minimum=1), self.config.max_messages)
        if before_turn_no is not None:
            _check_int(before_turn_no, "before_turn_no", minimum=1)
        reply = yield from self._read_script(
            uid, sid, limit, whole=False, snapshots=False, before=before_turn_no
        )
        if not reply:
            return []
        messages, problems = codec.decode_messages(int(reply[1]), reply[2])
        self._report_parts(uid, sid, problems, [])
        return messages

    def get_whiteboard_state(
        self,
        session_id: str | uuid.UUID,
        user_id: str,
        target_snapshot_index: int | None = None,
    ) -> Op[list[dict[str, Any]]]:
        """The core operation behind ``SessionStore.get_whiteboard_state`` (documented there)."""
        sid, uid = check_uuid(session_id), check_user_id(user_id)
        if target_snapshot_index is not None:
            _check_int(target_snapshot_index, "target_snapshot_index", minimum=0)
        record_key, _, snapshots_key = self.keys.session_keys(uid, sid)
        flat = yield RunScript(
            ScriptName.BOARD,
            [record_key, snapshots_key],
            [uid, "" if target_snapshot_index is None else target_snapshot_index],
        )
        actions, problems = codec.board_actions(flat)
        self._report_parts(uid, sid, [], problems)
        return actions

    # ------------------------------------------------------------------ folders

    def put_folder(self, user_id: str, folder: Folder) -> Op[Folder]:
        """The core operation behind ``SessionStore.put_folder`` (documented there)."""
        uid = check_user_id(user_id)
        if not isinstance(folder, Folder):
            raise InvalidInput(f"folder must be a Folder, got {type(folder).__name__}")
        fid = check_uuid(folder.id, "folder id")
        if not isinstance(folder.name, str) or not isinstance(folder.knowledge_base, str):
            raise InvalidInput("folder name and knowledge_base must be str")
        now = self.now()
        pairs = codec.folder_fields(msgspec.structs.replace(folder, id=fid), uid, now)
        size = sum(len(v) for _, v in pairs)
        if size > self.config.max_context_bytes // 2:
            raise InvalidInput(
                f"folder is {size} bytes; at most max_context_bytes/2 = "
                f"{self.config.max_context_bytes // 2} (its analysis is copied into contexts)"
            )
        created = yield RunScript(
            ScriptName.PUT_FOLDER, [self.keys.folder(uid, fid)], codec.flatten(pairs)
        )
        return msgspec.structs.replace(
            folder, id=uuid.UUID(fid), created_at=codec.parse_time(created), updated_at=now
        )

    def get_folder_data(self, folder_id: str | uuid.UUID, user_id: str) -> Op[Folder | None]:
        """The core operation behind ``SessionStore.get_folder_data`` (documented there)."""
        fid, uid = check_uuid(folder_id, "folder_id"), check_user_id(user_id)
        if self.folder_source is not None:
            found: Folder | None = yield LoadFolder(fid, uid)
            return found
        key = self.keys.folder(uid, fid)
        try:
            fields = yield Command(("HGETALL", key))
        except SessionStoreError as exc:
            if _is_wrongtype(exc):
                raise self._damage(key, NOT_A_HASH) from exc
            raise
        if not fields:
            return None
        try:
            return codec.folder_from_fields(fields, uid, fid)
        except codec.CorruptRecord as exc:
            self.report_corrupt(key, exc)
            return None

    def delete_folder(
        self, folder_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.delete_folder`` (documented there)."""
        fid, uid = check_uuid(folder_id, "folder_id"), check_user_id(user_id)
        keys = [self.keys.folder(uid, fid), self.request_key(uid, request_id)]
        reply = yield RunScript(ScriptName.DELETE_FOLDER, keys, [fid, self._replay_window_ms])
        return bool(int(reply[0]))

    # ------------------------------------------------------------------ maintenance

    def cleanup_expired_sessions(
        self,
        max_age: dt.timedelta | None = None,
        *,
        now: dt.datetime | None = None,
        batch_size: int = 100,
        dry_run: bool = False,
        progress: maintenance.Progress | None = None,
    ) -> Op[maintenance.SweepReport]:
        """The core operation behind ``SessionStore.cleanup_expired_sessions`` (documented there)."""
        return maintenance.sweep(
            self,
            max_age=max_age,
            now=now,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )

    def check(
        self,
        *,
        repair: bool = False,
        drop_corrupt: bool = False,
        count: int = 1000,
        progress: maintenance.Progress | None = None,
    ) -> Op[maintenance.CheckReport]:
        """The core operation behind ``SessionStore.check`` (documented there)."""
        return maintenance.check(
            self, repair=repair, drop_corrupt=drop_corrupt, count=count, progress=progress
        )

    # ------------------------------------------------------------------ pure

    def execute(self, request: Request) -> Op[Any]:
        """One raw request, its reply returned as it is (for tools and tests)."""
        reply = yield request
        return reply

    def current_stats(self) -> StoreStats:
        """The counters behind ``stats()``."""
        hits, misses = self.cache.hits, self.cache.misses
        total = hits + misses
        return StoreStats(
            cache_hits=hits,
            cache_misses=misses,
            cache_hit_rate=hits / total if total else 0.0,
            cache_size=len(self.cache),
            undecodable_records=self._undecodable,
            invalidations_received=self.invalidations_received,
            cache_flushes=self.cache_flushes,
            cache_serving=self.cache_serving and time.monotonic() < self._serve_until,
            link_drops=self.link_drops,
        )
