"""The observer hook's report of cache reads (``OperationResult.cache_hit``) where operations
overlap: asyncio tasks whose operations interleave on one thread, threads, and an operation nested
in another (a ``modify`` function that calls the store). The hook takes each step's cache read
right after the step (``_observe.CACHE_READ``); these tests would catch a read credited to the
wrong operation."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from redis_sessions import AsyncSessionStore, CorruptData, SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.observability import ObserverBase, OperationResult

from .conftest import StoreFactory
from .test_observe import MISSING, Recorder


class Results(ObserverBase):
    """Keeps every result, whatever the order operations end in (under a lock: threads)."""

    def __init__(self) -> None:
        self.results: list[OperationResult] = []
        self._lock = threading.Lock()

    def finish(self, handle: object, result: OperationResult) -> None:
        with self._lock:
            self.results.append(result)


def test_interleaved_async_operations_each_report_their_own_cache_read(
    real_server: EmbeddedRedis,
) -> None:
    seen = Results()

    async def main() -> None:
        store = AsyncSessionStore.from_url(
            real_server.url,
            config=StoreConfig(key_prefix=f"ia{uuid.uuid4().hex[:8]}", invalidation=False),
            observer=seen,
        )
        try:
            cached = await store.create_session("alice")  # the create caches what it wrote
            # misses: each reads the cache (nothing), then waits for Redis while the hits run
            misses = [store.get_session(MISSING, "alice") for _ in range(20)]
            hits = [store.get_session(cached, "alice") for _ in range(20)]
            mixed = [call for pair in zip(misses, hits, strict=True) for call in pair]
            results = await asyncio.gather(*mixed)
        finally:
            await store.aclose()
        assert results[0::2] == [None] * 20 and all(r is not None for r in results[1::2])

    asyncio.run(main())
    reads = [(r.outcome, r.cache_hit, r.round_trips) for r in seen.results[1:]]
    assert sorted(reads) == sorted([("ok", True, 0)] * 20 + [("not_found", False, 1)] * 20)


def test_threads_each_report_their_own_cache_read(real_server: EmbeddedRedis) -> None:
    seen = Results()
    store = SessionStore.from_url(
        real_server.url,
        config=StoreConfig(key_prefix=f"th{uuid.uuid4().hex[:8]}", invalidation=False),
        observer=seen,
    )
    try:
        cached = store.create_session("alice")
        seen.results.clear()

        def work(session_id: Any) -> None:
            for _ in range(50):
                store.get_session(session_id, "alice")

        threads = [threading.Thread(target=work, args=(sid,)) for sid in [cached, MISSING] * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        store.close()
    hits = [r for r in seen.results if r.outcome == "ok"]
    misses = [r for r in seen.results if r.outcome == "not_found"]
    assert len(hits) == len(misses) == 150
    assert all(r.cache_hit is True and r.round_trips == 0 for r in hits)
    assert all(r.cache_hit is False and r.round_trips == 1 for r in misses)


def test_an_operation_nested_in_modify_keeps_each_cache_read_apart(
    store_factory: StoreFactory,
) -> None:
    seen = Results()
    store = store_factory(observer=seen)
    sid, other = store.create_session("alice"), store.create_session("alice")
    if not isinstance(store, SessionStore):
        pytest.skip("a sync store's call from inside an async store's modify is not a nesting")
    inner: list[Any] = []

    def change(ctx: Any) -> None:
        inner.append(store.get_session(MISSING, "alice"))  # a miss, inside modify
        inner.append(store.get_session(other, "alice"))  # a hit, inside modify
        ctx.high_cost_calls += 1

    store.modify(sid, "alice", change)  # its own read: a hit (the create cached it)
    assert inner[0] is None and inner[1] is not None
    by_name = [(r.operation, r.outcome, r.cache_hit) for r in seen.results[2:]]
    assert by_name == [
        ("get_session", "not_found", False),
        ("get_session", "ok", True),
        ("modify", "ok", True),
    ]


def test_a_miss_that_fails_still_reports_its_cache_read(store_factory: StoreFactory) -> None:
    seen = Recorder()
    store = store_factory(observer=seen)
    other = SessionStore(  # another process's store, on the same keys: nothing of it is cached here
        store.client, config=StoreConfig(key_prefix=store.config.key_prefix, cache_size=0)
    )
    try:
        damaged = other.create_session("bob")
        other.client.hset(other.keyspace.session("bob", str(damaged)), "version", b"x")
    finally:
        other.close()
    with pytest.raises(CorruptData):
        store.get_session(damaged, "bob")
    done = seen.last()
    assert (done.operation, done.outcome, done.cache_hit) == ("get_session", "error", False)
    # and the next operation that reads no cache reports no read (nothing left over)
    store.create_session("carol")
    assert (seen.last().operation, seen.last().cache_hit) == ("create_session", None)
