"""An in-process TTL + LRU cache, with no thread of its own.

Entries expire ``ttl`` seconds after they were written; the least recently used entry goes when the
cache is full; expired entries are purged in one pass at most every ``sweep_interval`` seconds, on
the next access after that interval (so an idle process holds no busy thread and no timer).

Operations are O(1) (the purge is O(n) once per interval) and guarded by a lock held only for a few
dict operations, so it is safe from threads and never blocks an event loop for long.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """``get``/``put``/``evict`` with TTL expiry and LRU eviction; ``maxsize=0`` stores nothing."""

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        sweep_interval: float,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self.sweep_interval = sweep_interval
        self._timer = timer
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._next_sweep = timer() + sweep_interval
        self.hits: int = 0
        self.misses: int = 0
        #: called (under the cache's lock) for each entry the LRU pushes out; None: nobody asks
        self.on_evict: Callable[[], None] | None = None

    def reset_lock(self) -> None:
        """A new lock (in a child process after a fork: another thread may have held the old)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        """The live value for ``key`` (marking it recently used), or None; counts a hit or a miss."""
        if self.maxsize == 0:
            return None
        now = self._timer()
        with self._lock:
            self._maybe_sweep(now)
            item = self._data.get(key)
            if item is None or item[0] <= now:
                if item is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[1]

    def peek(self, key: K) -> V | None:
        """The live value for ``key`` without touching LRU order or the counters."""
        item = self._data.get(key)
        if item is None or item[0] <= self._timer():
            return None
        return item[1]

    def put(self, key: K, value: V, *, cold: bool = False) -> None:
        """Store ``value`` for ``key``, fresh for ``ttl`` seconds, evicting the least recently used
        past ``maxsize``. A ``cold`` value (one nobody has read yet) enters at the least recently
        used end: it never pushes out an entry in use, and when the cache is full it is not kept
        at all; its first read brings it in as usual."""
        if self.maxsize == 0:
            return
        now = self._timer()
        with self._lock:
            self._maybe_sweep(now)
            known = key in self._data
            self._data[key] = (now + self.ttl, value)
            self._data.move_to_end(key, last=not cold or known)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
                if self.on_evict is not None:  # only on an eviction, never on the path of a hit
                    self.on_evict()

    def evict(self, key: K) -> None:
        """Forget ``key`` (nothing happens when it is not there)."""
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        expired = [k for k, (deadline, _) in self._data.items() if deadline <= now]
        for k in expired:
            del self._data[k]


class Freshness(Generic[K]):
    """Which cache fills are still safe: per-key invalidation sequence numbers.

    A read takes a ``token()`` before it asks Redis; its reply may fill the cache only if its key was
    not invalidated since (``unchanged_since``). Invalidations come from this process's writes and
    from other processes (pub/sub). The last ``capacity`` invalidated keys are remembered; for an
    older key only the sequence number of the newest forgotten one is known, which is safe (a fill
    is refused when in doubt). ``reset()`` refuses every fill whose read began before it. Not
    thread-safe by itself: the store calls it under its lock.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.seq: int = 0
        self._last: OrderedDict[K, int] = OrderedDict()
        self._floor = 0

    def token(self) -> int:
        """Taken by a read before it asks Redis; pass it to ``unchanged_since`` to fill the cache."""
        return self.seq

    def invalidate(self, key: K) -> int:
        """``key`` changed (a write began or ended, or another process announced one); its new sequence number."""
        self.seq += 1
        self._last[key] = self.seq
        self._last.move_to_end(key)
        if len(self._last) > self.capacity:
            _, forgotten = self._last.popitem(last=False)
            self._floor = max(self._floor, forgotten)
        return self.seq

    def unchanged_since(self, key: K, token: int) -> bool:
        """Whether ``key`` was not invalidated since ``token`` was taken (when in doubt: False)."""
        last = self._last.get(key)
        return (last if last is not None else self._floor) <= token

    def reset(self) -> None:
        """Refuse every fill whose read began before now (the cache was flushed)."""
        self.seq += 1
        self._floor = self.seq
        self._last.clear()
