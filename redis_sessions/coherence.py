"""The in-process cache and how it stays coherent with Redis, across writes and processes.

A store caches session records it read or wrote. What it caches must never outlive what Redis holds:
- this process's writes bracket the cache (``_writing``): a write evicts its entry and refuses fills
  by any read that began before it ended;
- other processes' writes arrive as announcements on the invalidation channel (the listener in
  ``_shell`` hands them to ``invalidate_remote``) and evict what they name;
- the cache serves only while the invalidation link is proven alive: subscribed (``set_listening``)
  and with a PING answered within ``max_link_silence`` (``heard``). A dropped, silent or late link
  empties the cache and stops it until the link is back.
No I/O here: the store's shell runs the listener and reports what it sees.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ._observe import CACHE_READ, StoreObserver
from .cache import Freshness, TTLCache
from .codec import BOOKKEEPING_FIELDS
from .config import StoreConfig
from .keys import KeySpace

logger: logging.Logger = logging.getLogger("redis_sessions.cache")

Record = dict[bytes, bytes]


class CachedRecord(dict[bytes, bytes]):
    """A record as the cache holds it: equal to the fields Redis holds (less its bookkeeping,
    codec.BOOKKEEPING_FIELDS), plus, once a read needed them, the composed lean JSON, the parsed
    metadata and the context as MessagePack (a cached record never changes; a write puts a new
    one), so that further hits only decode the context, from its faster form."""

    lean: bytes | None = None
    meta: dict[str, Any] | None = None
    #: the context as MessagePack once a read decoded it (codec.pack_context; b"": it cannot be)
    packed: bytes | None = None


class _Write:
    """One write in flight: the bracket of ``StoreCore._writing`` (a context manager)."""

    __slots__ = ("after", "before", "cold", "core", "epoch", "key")

    def __init__(self, core: CacheCoherence, key: tuple[str, str]) -> None:
        self.core, self.key = core, key
        self.before: Record | None = None
        #: the exact record Redis holds once the write succeeded, when the operation knows it
        self.after: Record | None = None
        #: the record is new (a create): cached cold, so that a burst of creates never pushes
        #: sessions in use out of the cache (see TTLCache.put)
        self.cold = False
        self.epoch = 0

    def __enter__(self) -> _Write:
        core, key = self.core, self.key
        with core._lock:
            self.epoch = core.freshness.invalidate(key)
            self.before = core.cache.peek(key) if core.cache_serving else None
            core.cache.evict(key)
        return self

    def __exit__(self, *exc_info: object) -> None:
        core, key = self.core, self.key
        with core._lock:
            fresh = core.freshness.unchanged_since(key, self.epoch)
            if self.after is not None and fresh and core.cache_serving:
                core.cache.put(key, CachedRecord(self.after), cold=self.cold)
            else:
                core.cache.evict(key)
            core.freshness.invalidate(key)


class CacheCoherence:
    """The cache of a store core and its coherence with Redis (a base of ``StoreCore``)."""

    config: StoreConfig
    keys: KeySpace

    def _init_coherence(self, config: StoreConfig, keys: KeySpace) -> None:
        """Set up the cache state (called once by StoreCore.__init__)."""
        self.cache: TTLCache[tuple[str, str], Record] = TTLCache(
            config.cache_size,
            config.cache_ttl,
            config.cache_sweep_interval,
        )
        # Per-key invalidations, by this process's writes (when they begin and when they end, see
        # _writing) and by other processes' (pub/sub): a read fills the cache only if its key was
        # not invalidated since the read began, so no read can cache what a write replaced.
        self.freshness: Freshness[tuple[str, str]] = Freshness()
        self._link_silence = config.max_link_silence.total_seconds()
        self._new_identity()
        self.invalidations_received: int = 0
        self.cache_flushes: int = 0
        self.link_drops: int = 0
        self._quiet_until_ms = 0  # late invalidations are logged at most once a second
        self._late_unlogged = 0
        #: told of cache events, invalidations, reconnections and damage (see _observe)
        self.observer: StoreObserver | None = None
        #: the cache read of an operation: ``_cached_observed`` once an observer is set, so that
        #: without one the path of a hit has no observer check at all
        self._cached: Callable[[tuple[str, str]], Record | None] = self._cached_plain

    def _new_identity(self) -> None:
        """This store's origin, its cache empty and not serving until it listens; at start, and
        in a child process after a fork (``forked``)."""
        config, keys = self.config, self.keys
        #: this store's id in its announcements (it ignores its own: its writes keep its cache)
        self.origin: str = uuid.uuid4().hex[:12]
        #: where writes announce what they changed, as "<channel>|<origin>" ("" : announce nothing)
        self.channel: str = (
            f"{keys.invalidation_channel()}|{self.origin}" if config.invalidation else ""
        )
        # The cache serves and fills only while this is True: with invalidation on, only while the
        # store is subscribed to other processes' writes (see set_listening).
        self.cache_serving: bool = not (config.invalidation and config.cache_size > 0)
        # ... and serves only until this moment (time.monotonic()): the listener's last PING that
        # came back was sent less than max_link_silence before (see heard). A link that went
        # silent (a partition, a NAT that dropped the flow) stops the cache by itself.
        self._serve_until = math.inf if self.cache_serving else 0.0
        # a lock another thread held at a fork stays held in the child: each process its own
        self._lock = threading.Lock()
        self.cache.reset_lock()
        self.cache.clear()
        self.freshness.reset()

    def set_observer(self, observer: StoreObserver | None) -> None:
        """Tell ``observer`` what the cache and the invalidation link do (None: nobody)."""
        self.observer = observer
        if observer is None:
            self._cached, self.cache.on_evict = self._cached_plain, None
            return
        self._cached = self._cached_observed
        self.cache.on_evict = lambda: observer.cache_event("eviction", 1)

    def _writing(self, cache_key: tuple[str, str]) -> _Write:
        """Bracket one write to Redis so the cache never holds what Redis no longer does.

        On entry (atomically): the write's entry is evicted and its cached record kept as
        ``write.before``; the key is invalidated. The operation sets ``write.after`` to the exact
        record Redis holds once its script succeeded (when it can know it). On exit, however the
        operation ends (reply, error, cancellation): ``write.after`` is cached only if the key was
        not invalidated in between (by another write, here or elsewhere), else the entry is
        evicted; and the key is invalidated again, so that a read which may have seen Redis before
        this write cannot fill the cache afterwards.
        """
        return _Write(self, cache_key)

    def _fill_cache(self, cache_key: tuple[str, str], record: Record, token: int) -> None:
        with self._lock:
            if self.cache_serving and self.freshness.unchanged_since(cache_key, token):
                cached = CachedRecord(record)
                for name in BOOKKEEPING_FIELDS:
                    cached.pop(name, None)
                self.cache.put(cache_key, cached)

    def _cached_plain(self, cache_key: tuple[str, str]) -> Record | None:
        if self.cache_serving and time.monotonic() < self._serve_until:
            return self.cache.get(cache_key)
        return None

    def _cached_observed(self, cache_key: tuple[str, str]) -> Record | None:
        """``_cached``, noting for the operation's observer whether it was a hit."""
        if self.cache_serving and time.monotonic() < self._serve_until:
            record = self.cache.get(cache_key)
            CACHE_READ.hit = record is not None
            return record
        return None

    # ------------------------------------------------------------------ invalidation

    def set_listening(self, listening: bool, *, dropped: bool = True) -> None:
        """The store's subscription to other processes' writes started (True) or broke (False).

        Either way the cache is emptied: messages may have been lost. While not listening the cache
        is neither read nor filled, so a lost message never means a stale read; on (re)subscribing
        every read that began before is refused a fill.
        """
        with self._lock:
            reconnect = flushed = False
            if not listening and self.cache_serving and dropped:
                self.link_drops += 1
                reconnect = True
                if len(self.cache):
                    self.cache_flushes += 1
                    flushed = True
            self.cache.clear()
            self.freshness.reset()
            self.cache_serving = listening
            self._serve_until = time.monotonic() + self._link_silence if listening else 0.0
        if self.observer is not None and reconnect:
            self.observer.listener_reconnect()
            if flushed:
                self.observer.cache_event("flush", 1)

    def heard(self, sent_at: float) -> None:
        """A PING the listener sent at ``sent_at`` (time.monotonic()) came back: every
        announcement published before then has been handled (Redis answers a subscriber in
        order), so the cache may serve until ``sent_at + max_link_silence``."""
        with self._lock:
            if self.cache_serving:
                self._serve_until = max(self._serve_until, sent_at + self._link_silence)

    def link_silent(self, now: float) -> bool:
        """Whether the invalidation link has been silent past ``max_link_silence``."""
        return now >= self._serve_until

    def flush_cache(self) -> None:
        """Empty the cache (the listener fell behind): nothing cached may be trusted."""
        with self._lock:
            self.cache_flushes += 1
            self.cache.clear()
            self.freshness.reset()
        if self.observer is not None:
            self.observer.cache_event("flush", 1)

    def invalidate_remote(self, message: bytes, now_ms: int | None = None) -> bool:
        """Handle one invalidation announced by a write (``<u>:<sid>|<ms>|<origin>``); this
        store's own are ignored. Returns False when it came later than
        ``StoreConfig.max_invalidation_lag`` (the cache was flushed instead)."""
        member, _, rest = message.partition(b"|")
        sent, _, origin = rest.partition(b"|")
        if origin.decode(errors="replace") == self.origin:
            return True
        try:
            key = self.keys.parse_expiry_member(member)
        except (ValueError, UnicodeDecodeError):
            logger.warning(
                "ignoring a malformed invalidation %r",
                message,
                extra={"event": "malformed_invalidation"},
            )
            return True
        with self._lock:
            self.invalidations_received += 1
            self.freshness.invalidate(key)
            self.cache.evict(key)
        late_ms = self.config.max_invalidation_lag.total_seconds() * 1000
        if self.observer is not None:
            self.observer.cache_event("invalidation", 1)
            if sent.isdigit() and now_ms is not None:
                self.observer.invalidation((now_ms - int(sent)) / 1000)
        if sent.isdigit() and now_ms is not None and now_ms - int(sent) > late_ms:
            self.flush_cache()
            self._warn_late(now_ms - int(sent), now_ms)
            return False
        return True

    def _warn_late(self, lag_ms: int, now_ms: int) -> None:
        """Log a late invalidation, at most once a second: a listener that fell behind finds its
        whole backlog late, and one line per message would flood the log."""
        if now_ms < self._quiet_until_ms:
            self._late_unlogged += 1
            return
        logger.warning(
            "invalidations arrive %d ms late: flushing the cache (%d more late since the last "
            "warning)",
            lag_ms,
            self._late_unlogged,
            extra={"event": "late_invalidation", "lag_ms": lag_ms},
        )
        self._quiet_until_ms, self._late_unlogged = now_ms + 1000, 0
