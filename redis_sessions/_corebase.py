"""The base of the store's core: what its operations share (see :mod:`redis_sessions.core`).

Settings, key names, the clock, request ids, reading and decoding a record, reporting damage; the
translation of redis-py's errors into the store's; the stats. No I/O here either.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
import redis.exceptions as rex

from . import codec
from .coherence import CacheCoherence, CachedRecord, Record
from .config import StoreConfig
from .exceptions import (
    BackendError,
    CorruptData,
    InvalidInput,
    SessionStoreError,
    StoreUnavailable,
)
from .keys import KeySpace, check_request_id
from .models import MAX_SAFE_INT, TutorContext
from .records import Folder, Session
from .requests import Arg, Command, Op, Request, RunScript
from .scripts import ScriptName

#: The logger of the core operations (this module, ``core``, ``history``, ``folder_ops``); every
#: record carries ``extra={"event": ...}`` (see the README's "Logs" section).
logger: logging.Logger = logging.getLogger("redis_sessions.core")

#: Damage a store remembers having logged, as (key, problem): each is logged once, later meetings
#: are counted only.
LOGGED_DAMAGE: Final = 10_000


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
        # "REQUEST_ID_REUSED <key> was used by <script> <session id>": the key names the user, so
        # the message names only the write that holds the id (the key stays in __cause__)
        _, _, holder = str(exc).partition(" was used by ")
        error = InvalidInput(
            "request_id was already used for another write within the replay window"
            + (f" ({holder})" if holder else "")
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


class CoreBase(CacheCoherence):
    """What every core operation builds on: configuration, keys, the clock, request ids, the
    reading and decoding of records, damage reports. ``StoreCore`` adds the operations."""

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
        # (key, problem) logged already (bounded, oldest first)
        self._logged_damage: dict[tuple[str, str], None] = {}

    def forked(self) -> None:
        """In a child process after a fork: a new origin, so that the request ids it draws (origin
        and counter, see ``request_key``) never repeat its parent's or a sibling's (a repeated id
        would be answered with the other write's kept reply: a write silently not made), and so
        that it hears their announcements; an empty cache that serves once this process listens."""
        self._new_identity()
        self._request_numbers = itertools.count(1)

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
            seen = (key, str(problem))
            first = seen not in self._logged_damage
            if first:
                self._logged_damage[seen] = None
                if len(self._logged_damage) > LOGGED_DAMAGE:
                    del self._logged_damage[next(iter(self._logged_damage))]
        if first:  # once: a hot damaged record must not flood the log
            logger.warning(
                "corrupt data at %s: %s",
                key,
                problem,
                extra={"event": "corrupt_data", "key": key},
            )
        if self.observer is not None:
            self.observer.corrupt(key, str(problem))

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

    def _read_hash(self, command: str, key: str, *args: Arg) -> Op[Any]:
        """One read command on a hash key of the store (HGETALL, HMGET, ...); a key of another
        type raises CorruptData naming it, reported like any damage."""
        try:
            reply = yield Command((command, key, *args))
        except SessionStoreError as exc:
            if _is_wrongtype(exc):
                raise self._damage(key, NOT_A_HASH) from exc
            raise
        return reply

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
        record: Record = yield from self._read_hash("HGETALL", key)
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

    def _lean(self, record: Record, user_id: str) -> bytes:
        """The lean context JSON of a record with sound metadata, kept with a cached one; raises
        CorruptRecord."""
        if isinstance(record, CachedRecord):
            if record.lean is None:  # computed once per cached record (a benign race)
                record.lean = codec.checked_lean_json(record, user_id)
            return record.lean
        return codec.checked_lean_json(record, user_id)

    def _session(self, record: Record, user_id: str, session_id: str) -> Session:
        """The record as a Session; raises CorruptData when it does not decode."""
        try:
            lean = self._lean(record, user_id)
            if isinstance(record, CachedRecord):
                if record.meta is None:
                    record.meta = codec.session_meta(record, user_id, session_id)
                meta = record.meta
            else:
                meta = codec.session_meta(record, user_id, session_id)
            return Session(context=self._decoded(record, lean), **meta)
        except codec.CorruptRecord as exc:
            raise self._undecodable_record(user_id, session_id, exc) from exc

    def _context(self, record: Record, user_id: str, session_id: str) -> TutorContext:
        """The record's context alone (what a Session would hold, without making the Session or
        parsing the metadata's values)."""
        try:
            return self._decoded(record, self._lean(record, user_id))
        except codec.CorruptRecord as exc:
            raise self._undecodable_record(user_id, session_id, exc) from exc

    @staticmethod
    def _decoded(record: Record, lean: bytes) -> TutorContext:
        """The context of ``record`` (its lean JSON given). A cached record keeps it as MessagePack
        after its first decode, for the next hits (raises CorruptRecord)."""
        if isinstance(record, CachedRecord):
            if record.packed:
                return codec.unpack_context(record.packed)
            context = codec.decode_context(lean)
            if record.packed is None:  # packed before it is handed out (a benign race)
                record.packed = codec.pack_context(context)
            return context
        return codec.decode_context(lean)

    def _undecodable_record(
        self, user_id: str, session_id: str, exc: codec.CorruptRecord
    ) -> CorruptData:
        self.cache.evict((user_id, session_id))
        return self._damage(self.keys.session(user_id, session_id), exc)

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
