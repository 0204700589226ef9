"""The in-process TTL + LRU cache, alone and in front of the store."""

from __future__ import annotations

import uuid

import pytest

from redis_sessions import SessionStore, TutorContext
from redis_sessions.cache import TTLCache
from redis_sessions.samples import realistic_context

from .conftest import StoreFactory, shown


class Timer:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_entries_expire_after_ttl() -> None:
    timer = Timer()
    cache: TTLCache[str, int] = TTLCache(10, ttl=5, sweep_interval=60, timer=timer)
    cache.put("a", 1)
    timer.t += 4.9
    assert cache.get("a") == 1
    timer.t += 0.2
    assert cache.get("a") is None and len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 1)


def test_least_recently_used_goes_first() -> None:
    cache: TTLCache[str, int] = TTLCache(2, ttl=60, sweep_interval=60, timer=Timer())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_expired_entries_are_purged_periodically_without_reads_of_them() -> None:
    timer = Timer()
    cache: TTLCache[str, int] = TTLCache(100, ttl=5, sweep_interval=600, timer=timer)
    for i in range(50):
        cache.put(f"k{i}", i)
    timer.t += 10
    cache.put("fresh", 1)
    assert len(cache) == 51  # no purge before the interval
    timer.t += 600
    cache.put("fresher", 2)  # first access after the interval purges the expired ones
    assert len(cache) == 1 and cache.peek("fresher") == 2


def test_size_zero_stores_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(0, ttl=5, sweep_interval=5, timer=Timer())
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0


def test_hit_returns_an_independent_object(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context=realistic_context("alice"))
    first = store.get_session_context(sid, "alice")
    assert first is not None
    first.session_goal = "mutated"
    first.user_model_state.concepts["concept-00"].alpha = 999
    first.lesson_plan.sections.clear()  # type: ignore[union-attr]
    again = store.get_session_context(sid, "alice")
    assert again is not None and again.session_goal != "mutated"
    assert again.user_model_state.concepts["concept-00"].alpha != 999
    assert again.lesson_plan is not None and again.lesson_plan.sections
    assert store.stats().cache_hits >= 1


def test_reads_are_served_from_cache_and_writes_go_through(store: SessionStore) -> None:
    sid = store.create_session("alice")
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and store.stats().cache_hits == 1  # create filled the cache
    ctx.session_goal = "new goal"
    assert store.update_session_context(sid, "alice", ctx)
    store.client.delete(store._core.keys.session("alice", sid))  # behind the cache's back
    cached = store.get_session(sid, "alice")
    assert cached is not None and cached.context.session_goal == "new goal" and cached.version == 2
    stats = store.stats()
    assert stats.cache_hits == 2 and stats.cache_size == 1 and stats.cache_hit_rate == 1.0


def test_cache_entries_never_cross_users(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None
    assert store.get_session(sid, "mallory") is None


def test_delete_evicts(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None
    store.delete_session(sid, "alice")
    assert store.get_session(sid, "alice") is None and store.stats().cache_size == 0


def test_cache_can_be_turned_off(store_factory: StoreFactory) -> None:
    store = store_factory(cache_size=0)
    sid = store.create_session("alice")
    for _ in range(3):
        assert store.get_session(sid, "alice") is not None
    stats = store.stats()
    assert (stats.cache_hits, stats.cache_size) == (0, 0)


def test_cached_entry_expires_after_ttl(store_factory: StoreFactory) -> None:
    store = store_factory(cache_ttl=300)
    timer = Timer()
    store._core.cache._timer = timer
    sid = store.create_session("alice", initial_context={"session_goal": "v1"})
    assert store.get_session_context(sid, "alice").session_goal == "v1"  # type: ignore[union-attr]
    store.client.hset(store._core.keys.session("alice", sid), "c:session_goal", b'"v2"')
    timer.t += 299
    assert store.get_session_context(sid, "alice").session_goal == "v1"  # type: ignore[union-attr]
    timer.t += 2
    assert store.get_session_context(sid, "alice").session_goal == "v2"  # type: ignore[union-attr]


@pytest.mark.parametrize("write", ["append", "end", "update"])
def test_writes_patch_the_cached_record_exactly(store: SessionStore, write: str) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "g"})
    assert store.get_session(sid, "alice") is not None
    if write == "append":
        store.append_message(
            sid, "alice", "assistant", "x", whiteboard_actions=[{"type": "CLEAR_BOARD"}]
        )
    elif write == "end":
        store.end_session(sid, "alice")
    else:
        ctx = store.get_session_context(sid, "alice")
        assert ctx is not None
        ctx.state = "s2"
        store.update_session_context(sid, "alice", ctx)
    cached = store._core.cache.peek(("alice", str(sid)))
    assert cached is not None
    assert cached == shown(store.client.hgetall(store._core.keys.session("alice", sid)))


@pytest.mark.parametrize("second", ["end", "append", "update"])
def test_interleaved_writes_never_leave_a_stale_cache_entry(
    store: SessionStore, second: str
) -> None:
    """Write A is paused between evicting and sending; write B runs whole; then A finishes."""
    sid = store.create_session("alice", initial_context={"session_goal": "g"})
    assert store.get_session(sid, "alice") is not None  # cached
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None
    ctx.state = "from A"
    op = store._core.update_session_context(sid, "alice", ctx)
    request = next(op)  # A has begun: entry evicted, base captured
    if second == "end":
        store.end_session(sid, "alice")
    elif second == "append":
        store.append_message(sid, "alice", "user", "from B")
    else:
        other = store.get_session_context(sid, "alice")
        assert other is not None
        other.state = "from B"
        store.update_session_context(sid, "alice", other)
    with pytest.raises(StopIteration):  # A's change was against version 1: it is sent whole
        while True:
            request = op.send(store._execute(request))
    cached = store._core.cache.peek(("alice", str(sid)))
    assert cached is None or cached == shown(
        store.client.hgetall(store._core.keys.session("alice", sid))
    )
    session = store.get_session(sid, "alice")
    assert session is not None and session.context.state == "from A"
    if second == "end":
        assert session.ended_at is not None


def test_a_read_that_saw_redis_before_a_write_never_fills_the_cache(store: SessionStore) -> None:
    sid = store.create_session("alice", initial_context={"session_goal": "old"})
    store._core.cache.clear()
    ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="new")
    write = store._core.update_session_context(sid, "alice", ctx)
    write_request = next(write)  # the write has begun
    read = store._core.get_session(sid, "alice")
    read_request = next(read)  # a read starts while the write is in flight
    stale_reply = store._execute(read_request)  # Redis answered the read before the write ran
    with pytest.raises(StopIteration):
        write.send(store._execute(write_request))
    with pytest.raises(StopIteration) as done:
        read.send(stale_reply)
    assert done.value.value.context.session_goal == "old"  # what it saw, returned as such
    # the cache holds what the write left (a whole update caches its record), never the stale read
    key = store._core.keys.session("alice", str(sid))
    assert store._core.cache.peek(("alice", str(sid))) == shown(store.client.hgetall(key))
    again = store.get_session_context(sid, "alice")
    assert again is not None and again.session_goal == "new"


def test_a_burst_of_creates_never_pushes_sessions_in_use_out(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(cache_size=4)
    hot = [store.create_session("alice") for _ in range(4)]
    for sid in hot:
        assert store.get_session(sid, "alice") is not None  # in use
    for _ in range(20):
        store.create_session("bob")  # a burst of new sessions
    before = store.stats().cache_hits
    for sid in hot:
        assert store.get_session(sid, "alice") is not None
    assert store.stats().cache_hits == before + 4  # all four still served from memory
    fresh = store.create_session("carol")
    assert store.get_session(fresh, "carol") is not None  # a miss brings it in as usual
    assert store.get_session(fresh, "carol") is not None
    assert store.stats().cache_hits == before + 5


def test_cold_entries_wait_at_the_lru_end() -> None:
    cache: TTLCache[str, int] = TTLCache(3, 60.0, 600.0)
    cache.put("a", 1)
    cache.put("new", 2, cold=True)  # room for it: kept, at the LRU end
    cache.put("b", 3)
    cache.put("c", 4)  # full: the LRU end goes, the cold entry first
    assert cache.peek("new") is None and cache.peek("a") == 1
    cache.put("late", 5, cold=True)  # full: a cold entry is not kept
    assert cache.peek("late") is None and len(cache) == 3
    cache.put("a", 9, cold=True)  # a key already there is updated as one in use
    assert cache.peek("a") == 9
