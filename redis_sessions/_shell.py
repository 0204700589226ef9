"""What the sync and the async store share: the state and the driver (the invalidation listener is
``_listener``'s, sending a command ``_transport``'s).

The public operations are written once, as coroutine methods (``_async_api.py``); the sync ones are
generated from them (``_sync_api.py``). Each builds a core operation (a generator of Redis requests,
see :mod:`redis_sessions.core`) and hands it to the driver here (:meth:`StoreBase._drive`), one
``async def``: the async store awaits it; the sync store runs the very same coroutine to its end in
one step (``_run``), which works because with a sync client nothing in it ever waits (every redis-py
call returns its reply, not an awaitable). So no I/O code exists twice.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from collections.abc import Callable, Coroutine
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    TypeVar,
)

import redis.exceptions as rex
from redis.backoff import ExponentialWithJitterBackoff

from ._corebase import FolderSource, StoreStats, translate_error
from ._gate import AsyncGate, Gate, any_gate, gate_size
from ._listener import InvalidationListener
from ._observe import StoreObserver, default_observer, needs_start, watch
from ._transport import Sender, closer, settle
from .config import StoreConfig
from .core import StoreCore
from .exceptions import CorruptData, InvalidInput, StoreClosed
from .keys import KeySpace
from .records import ValidationResult
from .requests import (
    Apply,
    Command,
    LoadFolder,
    Op,
    Pipeline,
    Request,
    RunScript,
    ScanBatch,
    ScriptBatch,
    Sleep,
)
from .scripts import script_sha, script_source
from .validation import validate_context

if TYPE_CHECKING:
    from typing_extensions import Self


T = TypeVar("T")

#: Connection settings ``from_url`` uses unless told otherwise: fail in seconds, not minutes, and
#: let a burst of concurrent calls wait, first come first served, for one of ``max_connections``
#: (redis-py's default pools raise "Too many connections" past 100 at once instead of waiting,
#: and its blocking pools can pass a waiter over until it times out: see ``_gate``).
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 30,
    "max_connections": 64,  # Redis requests in flight at once (the store's gate)
    "timeout": 5.0,  # seconds a call waits for a free connection before StoreBusy
}


#: requests that do not go to Redis: they take no place at the gate
_LOCAL: Final = (Sleep, Apply, LoadFolder)


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (the sync store's driver) to its result, in one step."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise TypeError("a sync store was handed an awaitable (an async folder source?)")


class StoreBase(InvalidationListener):
    """The store, less the choice of redis-py flavour (sync or asyncio) made by its subclasses."""

    is_async: ClassVar[bool]
    #: The redis-py client, pool and Retry classes ``from_url`` uses.
    _client_class: ClassVar[Any]
    _pool_class: ClassVar[Any]

    def __init__(
        self,
        client: Any,
        *,
        config: StoreConfig | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        folder_source: FolderSource | None = None,
        owns_client: bool = False,
        observer: StoreObserver | None = None,
    ) -> None:
        """Wrap an existing redis-py client (made with ``decode_responses=False``); a
        ``RedisCluster`` works too: every script touches one hash slot.

        ``clock`` returns the current time (timezone-aware); ``folder_source(folder_id, user_id)``
        replaces the folders kept in Redis for apps whose folders live elsewhere (with the async
        store it may be a coroutine function). ``observer`` is told what the store does (see
        ``redis_sessions.observability``: Prometheus metrics, OpenTelemetry spans, logs); without
        one, the process default (``set_default_observer``), else none: then it costs one
        ``is None`` check per operation.
        """
        kwargs = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
        if kwargs.get("decode_responses"):
            raise InvalidInput("the store needs a client made with decode_responses=False")
        if not self.is_async and inspect.iscoroutinefunction(folder_source):
            raise InvalidInput("an async folder source needs AsyncSessionStore")
        self._core = StoreCore(config, clock=clock, folder_source=folder_source)
        self._client = client
        self._sender = Sender(client, is_async=self.is_async, park=owns_client)
        self._owns_client = owns_client
        # the invalidation listener (see _listen): started before the first round trip
        self._needs_listener = not self._core.cache_serving
        # first come, first served for the client's pool, less the listener's connection
        pool = getattr(client, "connection_pool", None)
        size = gate_size(pool, listening=self._needs_listener)
        self._gate: Gate | AsyncGate | None = (
            None
            if size is None
            else any_gate(
                self.is_async, size, getattr(pool, "timeout", DEFAULT_CLIENT_OPTIONS["timeout"])
            )
        )
        self._listener: Any = None
        self._stopping = False
        self._closed = False
        self._stop_message = b"stop:" + uuid.uuid4().hex.encode()
        self._watch_forks()
        self._observer = observer if observer is not None else default_observer()
        self._observer_starts = self._observer is not None and needs_start(self._observer)
        self._core.set_observer(self._observer)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        config: StoreConfig | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        folder_source: FolderSource | None = None,
        observer: StoreObserver | None = None,
        **client_options: Any,
    ) -> Self:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``client_options`` go to redis-py's ``ConnectionPool.from_url`` over DEFAULT_CLIENT_OPTIONS
        and three retries with jittered backoff (at most ~1 s in all), but for two the store keeps:
        ``max_connections``, how many Redis requests it has in flight at once, and ``timeout``, how
        long a call waits for one of them to come free (first come, first served) before
        StoreBusy. The pool holds two more connections: the invalidation listener's, and one for
        ``close``. Raises InvalidInput for a malformed URL or a ``max_connections`` below 1. The
        store closes this client (and its pool) when it is closed.
        """
        retry = cls._retry_class(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
        options = {**DEFAULT_CLIENT_OPTIONS, "retry": retry, **client_options}
        size, wait = options.pop("max_connections"), options.pop("timeout")
        if type(size) is not int or size < 1:
            raise InvalidInput(f"max_connections must be an integer of at least 1, got {size!r}")
        try:
            pool = cls._pool_class.from_url(url, max_connections=size + 2, **options)
        except ValueError as exc:
            raise InvalidInput(f"invalid Redis URL {url!r}: {exc}") from exc
        client = cls._client_class.from_pool(pool)
        store = cls(
            client,
            config=config,
            clock=clock,
            folder_source=folder_source,
            owns_client=True,
            observer=observer,
        )
        store._gate = any_gate(cls.is_async, size, wait)
        return store

    @property
    def config(self) -> StoreConfig:
        return self._core.config

    @property
    def keyspace(self) -> KeySpace:
        """The key names of this store (for tools that inspect it)."""
        return self._core.keys

    @property
    def client(self) -> Any:
        """The redis-py client the store holds."""
        return self._client

    # ------------------------------------------------------------------ the driver

    def _run(self, op: Op[T]) -> T:
        """The sync store's driver: ``_drive`` run to its end in one step (it never waits there)."""
        return run_to_end(self._drive(op))

    async def _drive(self, op: Op[T]) -> T:
        """Perform each request ``op`` yields, feed it the reply (or the error), return its result.

        However it ends (result, error, cancellation), ``op`` is closed, so that what it holds in
        flight (a write's cache bracket) is released. Before its first operation (each one
        talks to Redis: those that do not are plain methods), the store subscribes to other
        processes' writes. A closed store refuses every operation before it could read its cache
        or open a connection. With an observer, ``op`` runs watched (``_observe.watch``: it runs
        the first step itself, and the whole operation when it ends there, a cache hit).
        """
        if self._closed:
            op.close()
            raise StoreClosed("the store is closed: make a new one to go on")
        if self.is_async:
            self._check_loop(op)
        if self._needs_listener:
            await self._start_listening()
        if self._observer is not None:  # the one cost of observability without an observer
            watched = watch(op, self._observer, self._observer_starts)
            if isinstance(watched, tuple):  # it ended in its first step (a cache hit), reported
                return watched[0]  # type: ignore[no-any-return]
            op = watched
        try:
            request = next(op)
            while True:
                try:
                    reply = await self._perform(request)
                except rex.RedisError as exc:
                    error = translate_error(exc)
                    if isinstance(error, CorruptData):  # a script met damage: count and log it
                        self._core.report_corrupt(error.key, error.problem)
                    request = op.throw(error)
                except Exception as exc:
                    if not isinstance(request, LoadFolder):
                        raise
                    request = op.throw(exc)  # the app's folder source failed
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            op.close()

    def _check_loop(self, op: Op[Any]) -> None:
        """An asyncio store's check that it runs in its own event loop (see aio)."""

    async def _perform(self, request: Request) -> Any:
        """One request, through the gate when it goes to Redis (see ``_gate``)."""
        gate = self._gate
        if gate is None or isinstance(request, _LOCAL):
            return await self._request(request)
        if not gate.try_enter():  # every connection in use: wait in line
            await settle(gate.wait())
        try:
            return await self._request(request)
        finally:
            gate.leave()

    async def _request(self, request: Request) -> Any:
        """One request, one round trip."""
        client = self._client
        # the two requests of every operation, sent the short way (see _transport)
        if type(request) is RunScript:
            keys = request.keys
            args = ("EVALSHA", script_sha(request.name), len(keys), *keys, *request.args)
            try:
                return await self._sender.send(*args)
            except rex.NoScriptError:  # a new or restarted server: load it once, send again
                await settle(client.script_load(script_source(request.name)))
                return await self._sender.send(*args)
        if type(request) is Command:
            return await self._sender.send(*request.args)
        if isinstance(request, (ScriptBatch, Pipeline, ScanBatch)):
            await self._sender.unpark_one()  # it takes a connection from the pool itself
        if isinstance(request, ScriptBatch):
            return await self._script_batch(request)
        if isinstance(request, Pipeline):
            pipe = client.pipeline(transaction=False)
            for command in request.commands:
                pipe.execute_command(*command)
            return await settle(pipe.execute(raise_on_error=request.raise_on_error))
        if isinstance(request, ScanBatch):
            return await self._scan(request)
        if isinstance(request, Sleep):
            return await settle(self._sleep(request.seconds))
        if isinstance(request, Apply):
            result = request.fn(request.context)
            if inspect.isawaitable(result):
                if not self.is_async:
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError(
                        "modify's fn returned an awaitable: a coroutine function needs "
                        "AsyncSessionStore (SessionStore calls fn and uses what it returns)"
                    )
                result = await result
            return result
        source = self._core.folder_source
        assert source is not None and isinstance(request, LoadFolder)
        return await settle(source(request.folder_id, request.user_id))

    async def _script_batch(self, request: ScriptBatch) -> list[Any]:
        """Scripts pipelined as EVALSHA, one round trip (see ScriptBatch); those the server does
        not know (NOSCRIPT: a new or restarted server) are loaded and sent again, in a second."""
        client, calls = self._client, request.calls
        replies: list[Any] = [None] * len(calls)
        todo: list[int] = list(range(len(calls)))
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for i in todo:
                call = calls[i]
                keys = call.keys
                pipe.execute_command("EVALSHA", script_sha(call.name), len(keys), *keys, *call.args)
            got = await settle(pipe.execute(raise_on_error=False))
            missing = []
            for i, reply in zip(todo, got, strict=True):
                replies[i] = reply
                if attempt == 0 and isinstance(reply, rex.NoScriptError):
                    missing.append(i)
            if not missing:
                break
            for name in dict.fromkeys(calls[i].name for i in missing):
                await settle(client.script_load(script_source(name)))
            todo = missing
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _abandon(self) -> None:
        """Close without a round trip (an asyncio store closed from another loop than its own):
        every operation raises StoreClosed, nothing cached is served, the listener stops at its
        next look at the flag."""
        self._closed = self._stopping = True
        self._core.set_listening(False, dropped=False)

    async def _close(self) -> None:
        """close() / aclose(): once; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        await self._stop_listening()
        self._core.set_listening(False, dropped=False)  # nothing cached is served again
        if self._owns_client:
            await self._sender.unpark_all()
            await settle(closer(self._client)())

    async def _scan(self, request: ScanBatch) -> tuple[Any, list[Any]]:
        """One SCAN step; on a cluster the cursor is (primary index, that node's cursor)."""
        client = self._client
        if not hasattr(client, "get_primaries"):
            cursor, keys = await settle(
                client.scan(request.cursor or 0, match=request.match, count=request.count)
            )
            return (cursor or None), list(keys)
        primaries = client.get_primaries()
        index, cursor = request.cursor or (0, 0)
        node_cursor, keys = await settle(
            client.execute_command(
                "SCAN",
                cursor,
                "MATCH",
                request.match,
                "COUNT",
                request.count,
                target_nodes=primaries[index],
            )
        )
        if isinstance(node_cursor, dict):  # redis-py keys the cursor by node name
            (node_cursor,) = node_cursor.values()
        if int(node_cursor):
            return (index, int(node_cursor)), list(keys)
        return ((index + 1, 0) if index + 1 < len(primaries) else None), list(keys)

    # ------------------------------------------------------------------ no I/O: plain methods

    def validate_session_context(self, data: object) -> ValidationResult:
        """Validate a context (JSON bytes or str, a mapping, or a TutorContext); no round trip.

        Reports every problem with its path (``$.user_model_state...``), the same errors a write
        would raise, and returns the normalized context when valid.
        """
        return validate_context(data, max_bytes=self.config.max_context_bytes)

    def stats(self) -> StoreStats:
        """Counters of this store since it was made: cache hits, misses, hit rate, size, corrupt
        data met, invalidations received, cache flushes, link drops, and whether the cache is in
        use. No round trip."""
        return self._core.current_stats()
