"""The store's one hook for observability: an observer it tells what it does, and nothing else.

The store never imports a metrics or tracing library. A store made with ``observer=`` (or after
:func:`set_default_observer`) calls its observer: when an operation begins and ends (with its outcome,
duration, round trips, cache hit and ``modify`` retries), for each Lua script's latency, for cache
evictions, invalidations and flushes, for corrupt data met, for each invalidation's lag, for each
reconnection of the invalidation listener, and for each sweep. :mod:`redis_sessions.observability`
turns these calls into Prometheus metrics, OpenTelemetry spans and log records.

Without an observer (the default) an operation costs one ``is None`` check more, in the driver;
nothing else on the path of a call looks at observers (see ``bench/observability-results.md``).

An observer's methods run inline, in the thread or task of the operation (the cache and listener
events: in the listener's). They must be quick and must not raise: an exception from an observer
reaches the caller of the operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import msgspec

from .exceptions import (
    InvalidInput,
    SessionNotFound,
    StoreUnavailable,
    VersionConflict,
)
from .requests import Apply, LoadFolder, Op, RunScript, Sleep

if TYPE_CHECKING:
    from .maintenance import SweepReport

__all__ = [
    "OUTCOMES",
    "CacheEvent",
    "OperationResult",
    "Outcome",
    "StoreObserver",
    "default_observer",
    "set_default_observer",
]

#: How an operation ended. ``not_found``: it returned None or False (a missing or foreign session,
#: folder) or raised SessionNotFound; ``invalid``: InvalidInput (nothing was written);
#: ``conflict``: VersionConflict; ``unavailable``: StoreUnavailable; ``cancelled``: the caller's
#: task was cancelled (asyncio) or the operation was closed; ``error``: anything else (CorruptData,
#: BackendError, an exception from ``modify``'s function or a folder source, StoreClosed).
Outcome = Literal["ok", "not_found", "conflict", "invalid", "unavailable", "error", "cancelled"]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "ok",
    "not_found",
    "conflict",
    "invalid",
    "unavailable",
    "error",
    "cancelled",
)
#: What happened to the cache: ``eviction`` (the LRU pushed an entry out), ``invalidation``
#: (another process announced a write; its entry, if cached, was evicted), ``flush`` (the cache was
#: emptied: the invalidation link dropped, went silent or fell behind).
CacheEvent = Literal["eviction", "invalidation", "flush"]

#: Core operations whose generator has another name than the store method.
_ALIASES: Final = {"sweep": "cleanup_expired_sessions"}


class OperationResult(msgspec.Struct, frozen=True, gc=False):
    """One store operation, as its observer hears of it at the end.

    ``operation`` is the store method's name (``get_session``); ``round_trips`` counts the requests
    sent to Redis (a script, a command, a pipeline, a SCAN step); ``cache_hit`` is True when the
    record came from the in-process cache, False when the cache was consulted and did not hold it,
    None when the operation does not read the cache (or the cache was not serving); ``retries`` is
    how many times ``modify`` started again after a version conflict (0 for other operations);
    ``error`` is the exception's class name (never its message: it may hold a key, and so a user
    id). No session or user id is ever part of it.
    """

    operation: str
    outcome: Outcome
    seconds: float
    round_trips: int
    cache_hit: bool | None
    retries: int
    error: str | None


class StoreObserver(Protocol):
    """What a store tells its observer (``observer=``). All methods must be quick and not raise."""

    def start(self, operation: str) -> object:
        """An operation begins (in the caller's thread or task, before its first round trip).

        Whatever it returns is handed back to :meth:`finish` (a span, a start time, None). A
        ``start`` marked with :func:`start_does_nothing` is not called (the handle is None).
        """
        ...

    def finish(self, handle: object, result: OperationResult) -> None:
        """The operation begun with ``handle`` ended (in the same thread or task)."""
        ...

    def script(self, name: str, seconds: float) -> None:
        """One Lua script ran (``name``: its file's stem, e.g. ``update``), reply or error."""
        ...

    def cache_event(self, kind: CacheEvent, count: int) -> None:
        """``count`` cache entries were evicted, or an invalidation arrived, or the cache was
        emptied (see CacheEvent)."""
        ...

    def corrupt(self, key: str, problem: str) -> None:
        """Damage met at ``key`` (counted and logged by the store already)."""
        ...

    def invalidation(self, lag_seconds: float) -> None:
        """Another process's write was announced ``lag_seconds`` before it reached this store
        (publish to receipt, by the two machines' clocks: may be slightly negative)."""
        ...

    def listener_reconnect(self) -> None:
        """The invalidation link was lost (dropped, or silent past max_link_silence): the listener
        subscribes anew, the cache is off until it has."""
        ...

    def sweep(self, report: SweepReport, batches: int) -> None:
        """A sweep ended (``batches``: the slot scripts it ran, one per slot holding expired
        sessions, per ``batch_size`` of them). Also reported as an operation
        (``cleanup_expired_sessions``)."""
        ...


_default: StoreObserver | None = None


def set_default_observer(observer: StoreObserver | None) -> None:
    """The observer of every store made afterwards without ``observer=`` (None: no observer).
    Stores already made keep theirs."""
    global _default  # noqa: PLW0603 - one process-wide setting, like logging's root logger
    _default = observer


def default_observer() -> StoreObserver | None:
    """The observer stores get when made without ``observer=`` (see set_default_observer)."""
    return _default


class _CacheRead(threading.local):
    """Whether the step of an operation that just ran in this thread read the cache: ``hit`` is
    None (it did not), True (a hit) or False (a miss). Set by ``CacheCoherence._cached_observed``;
    :func:`watch` takes it (and puts None back) after each step of the operation it watches.

    A thread's own attribute, taken step by step: the steps of operations of different asyncio
    tasks interleave only between steps, and a sync operation nested in another (a ``modify``
    function that calls the store) takes its reads before its caller's next step. A plain
    attribute costs a fraction of a context variable's set and reset (see
    ``bench/observability-results.md``)."""

    hit: bool | None = None


CACHE_READ: Final = _CacheRead()

#: Requests that do not go to Redis: they do not count as round trips.
_LOCAL = (Apply, LoadFolder, Sleep)


def _outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, InvalidInput):
        return "invalid"
    if isinstance(exc, VersionConflict):
        return "conflict"
    if isinstance(exc, SessionNotFound):
        return "not_found"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    if isinstance(exc, GeneratorExit) or type(exc).__name__ == "CancelledError":
        return "cancelled"
    return "error"


def start_does_nothing(start: Callable[[Any, str], object]) -> Callable[[Any, str], object]:
    """Mark an observer's ``start`` that does nothing but return None: the store then leaves it
    uncalled (its handle is None), a call less on every operation (``ObserverBase.start`` is)."""
    start.__redis_sessions_noop__ = True  # type: ignore[attr-defined]
    return start


def needs_start(observer: StoreObserver) -> bool:
    """Whether ``observer.start`` must be called (it is not marked ``start_does_nothing``)."""
    return not getattr(observer.start, "__redis_sessions_noop__", False)


def watch(op: Op[Any], observer: StoreObserver, starts: bool = True) -> tuple[Any] | Op[Any]:
    """``op`` run with what it does reported to ``observer``. Its first step runs here: if ``op``
    ends there (a cache hit, an argument refused: nothing sent), it has been reported, and its
    result comes back in a 1-tuple, or its exception is raised; else the driver gets a generator
    to drive instead of ``op``, which hands on every request, reply and error unchanged (see
    :func:`_watching`). ``starts``: ``needs_start(observer)``, worked out once by the store.

    A cache hit costs about 0.55 µs here with a do-nothing observer, where a wrapping generator
    and a context variable cost 0.9 µs: no generator of its own, the cache read taken from a
    thread's attribute (``bench/observability.py`` times each part)."""
    name = op.__name__  # type: ignore[attr-defined]
    if name in _ALIASES:
        name = _ALIASES[name]
    handle = observer.start(name) if starts else None
    read = CACHE_READ
    started = perf_counter()
    try:
        request = next(op)
    except StopIteration as stop:
        seconds = perf_counter() - started
        result = stop.value
        hit = read.hit
        if hit is not None:
            read.hit = None
        outcome: Outcome = "not_found" if result is None or result is False else "ok"
        # (a sweep always sends a request first: its observer.sweep is _watching's)
        observer.finish(handle, OperationResult(name, outcome, seconds, 0, hit, 0, None))
        return (result,)
    except BaseException as exc:
        seconds = perf_counter() - started
        hit = read.hit
        if hit is not None:
            read.hit = None
        result = OperationResult(name, _outcome(exc), seconds, 0, hit, 0, type(exc).__name__)
        observer.finish(handle, result)
        raise
    return _watching(op, observer, name=name, handle=handle, started=started, request=request)


def _watching(
    op: Op[Any],
    observer: StoreObserver,
    *,
    name: str,
    handle: object,
    started: float,
    request: Any,
) -> Op[Any]:
    """The rest of ``op`` after its first step (which yielded ``request``), reported to
    ``observer``: a generator that hands on every request, reply and error unchanged. Scripts are
    timed from the moment the request leaves to the moment its reply (or error) comes back."""
    read = CACHE_READ
    cache_hit: bool | None = None
    round_trips = retries = batches = 0
    outcome: Outcome = "ok"
    error: str | None = None
    result: Any = None
    try:
        while True:
            if read.hit is not None:  # the step that just ran read the cache
                cache_hit, read.hit = read.hit, None
            sent = perf_counter()
            try:
                reply = yield request
            except GeneratorExit:
                raise
            except BaseException as exc:
                if type(request) is RunScript:
                    observer.script(request.name.value, perf_counter() - sent)
                if not isinstance(request, _LOCAL):
                    round_trips += 1
                request = op.throw(exc)
                continue
            if type(request) is RunScript:
                observer.script(request.name.value, perf_counter() - sent)
                batches += request.name.value == "sweep"
            if isinstance(request, Sleep):
                retries += 1  # modify pauses before each new attempt, after a conflict
            elif not isinstance(request, _LOCAL):
                round_trips += 1
            request = op.send(reply)
    except StopIteration as stop:
        result = stop.value
        if result is None or result is False:
            outcome = "not_found"
        return result
    except BaseException as exc:
        outcome, error = _outcome(exc), type(exc).__name__
        raise
    finally:
        seconds = perf_counter() - started
        if read.hit is not None:  # the last step read the cache (a miss that then failed)
            cache_hit, read.hit = read.hit, None
        op.close()
        observer.finish(
            handle,
            OperationResult(name, outcome, seconds, round_trips, cache_hit, retries, error),
        )
        if outcome == "ok" and name == "cleanup_expired_sessions":
            observer.sweep(result, batches)
