"""Many app servers, one truth: cross-process invalidation, staleness, modify, tombstones."""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from redis_sessions import (
    AsyncSessionStore,
    SessionNotFound,
    SessionStore,
    StoreConfig,
    TutorContext,
    VersionConflict,
)
from redis_sessions.embedded import EmbeddedRedis

from .conftest import StoreFactory

STALENESS_BOUND = 0.050  # seconds, on loopback


def eventually(read: Any, want: Any, within: float = 1.0) -> float:
    """Poll ``read()`` until it returns ``want``; the seconds it took (fails past ``within``)."""
    start = time.monotonic()
    while True:
        if read() == want:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"still {read()!r}, not {want!r}, after {within} s")
        time.sleep(0.001)


def goal(store: Any, sid: str, user: str = "alice") -> str | None:
    ctx = store.get_session_context(sid, user)
    return None if ctx is None else ctx.session_goal


def test_another_stores_write_evicts_my_cached_entry(store_factory: StoreFactory) -> None:
    prefix = f"inv{uuid.uuid4().hex[:8]}"
    a, b = store_factory(key_prefix=prefix), store_factory(key_prefix=prefix)
    sid = a.create_session("alice", initial_context={"session_goal": "v1"})
    assert goal(b, sid) == "v1" and goal(b, sid) == "v1"
    assert b.stats().cache_hits >= 1  # b serves it from memory ...
    ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2")
    assert a.update_session_context(sid, "alice", ctx)
    eventually(lambda: goal(b, sid), "v2")  # ... until a's write is announced
    a.delete_session(sid, "alice")
    eventually(lambda: goal(b, sid), None)
    assert b.stats().invalidations_received >= 2
    assert a.stats().invalidations_received == 0  # a ignores its own announcements


def test_a_burst_of_writes_evicts_every_entry(store_factory: StoreFactory) -> None:
    """Announcements that arrive together are each read: the listener takes the first, waits
    LISTEN_BATCH, then drains the rest in the same wake-up (a sync store reads them off the
    connection itself, see InvalidationListener._waiting)."""
    prefix = f"inv{uuid.uuid4().hex[:8]}"
    a, b = store_factory(key_prefix=prefix), store_factory(key_prefix=prefix)
    sids = [a.create_session("alice", initial_context={"session_goal": "v1"}) for _ in range(40)]
    assert all(goal(b, sid) == "v1" for sid in sids)
    assert all(goal(b, sid) == "v1" for sid in sids)  # each one now a hit in b's cache
    for sid in sids:
        ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2")
        assert a.update_session_context(sid, "alice", ctx)
    for sid in sids:
        eventually(lambda sid=sid: goal(b, sid), "v2")


def test_without_invalidation_the_cache_would_serve_stale_data(store_factory: StoreFactory) -> None:
    """The control: with invalidation off, the same sequence reads stale (so the test above can fail)."""
    prefix = f"inv{uuid.uuid4().hex[:8]}"
    a = store_factory(key_prefix=prefix)
    b = store_factory(key_prefix=prefix, invalidation=False)
    sid = a.create_session("alice", initial_context={"session_goal": "v1"})
    assert goal(b, sid) == "v1"
    a.update_session_context(
        sid,
        "alice",
        TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2"),
    )
    time.sleep(0.1)
    assert goal(b, sid) == "v1"


def test_sweeps_announce_what_they_delete(store_factory: StoreFactory, clock: Any) -> None:
    prefix = f"inv{uuid.uuid4().hex[:8]}"
    a, b = store_factory(key_prefix=prefix, clock=clock), store_factory(key_prefix=prefix)
    sid = a.create_session("alice", initial_context={"session_goal": "old"})
    assert goal(b, sid) == "old"
    clock.advance(days=31)
    assert a.cleanup_expired_sessions(now=clock.now).deleted == 1
    eventually(lambda: goal(b, sid), None)


WRITER = textwrap.dedent("""
    import sys, time, uuid
    from redis_sessions import SessionStore, StoreConfig, TutorContext
    url, prefix, sid = sys.argv[1:4]
    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix, cache_size=0))
    for line in sys.stdin:
        value = line.strip()
        ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal=value)
        store.update_session_context(sid, "alice", ctx)
        print("done", value, flush=True)  # only after the write returned
""")


def test_staleness_bound_across_real_processes(real_server: EmbeddedRedis) -> None:
    """Process A writes; process B (this one, cache on) must see each write within the bound."""
    prefix = f"stale{uuid.uuid4().hex[:6]}"
    reader = SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
    sid = str(reader.create_session("alice", initial_context={"session_goal": "v0"}))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, real_server.url, prefix, sid],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    delays = []
    try:
        for i in range(1, 101):
            assert goal(reader, sid) == f"v{i - 1}"  # cached: a stale read would show this value
            writer.stdin.write(f"v{i}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().split() == ["done", f"v{i}"]
            delays.append(eventually(lambda i=i: goal(reader, sid), f"v{i}", within=2.0))
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    stats = reader.stats()
    reader.close()
    assert stats.cache_hits >= 100 and stats.invalidations_received >= 100
    worst = max(delays)
    print(
        f"staleness after a write returned: p50 {statistics.median(delays) * 1e3:.2f} ms, "
        f"p99 {sorted(delays)[98] * 1e3:.2f} ms, max {worst * 1e3:.2f} ms"
    )
    assert worst < STALENESS_BOUND


def test_a_dropped_listener_never_means_a_stale_read(real_server: EmbeddedRedis) -> None:
    prefix = f"drop{uuid.uuid4().hex[:6]}"
    config = StoreConfig(key_prefix=prefix)
    a = SessionStore.from_url(real_server.url, config=config)
    b = SessionStore.from_url(real_server.url, config=config, client_name=f"b-{prefix}")
    sid = a.create_session("alice", initial_context={"session_goal": "v1"})
    assert goal(b, sid) == "v1" and b.stats().cache_size == 1
    admin = redis.Redis.from_url(real_server.url)
    for client in admin.client_list():  # cut b's listening connection
        if client.get("name") == f"b-{prefix}" and int(client.get("sub", 0)) > 0:
            admin.client_kill_filter(_id=client["id"])
    eventually(lambda: b.stats().cache_flushes, 1)  # b notices and empties its cache
    a.update_session_context(
        sid,
        "alice",
        TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2"),
    )
    assert goal(b, sid) == "v2"  # whether b is listening again yet or not
    eventually(lambda: b.stats().cache_serving, True)  # and it resubscribes by itself
    a.update_session_context(
        sid,
        "alice",
        TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v3"),
    )
    eventually(lambda: goal(b, sid), "v3")
    admin.close()
    a.close()
    b.close()


def test_late_invalidations_empty_the_cache(store_factory: StoreFactory) -> None:
    store = store_factory()
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None and store.stats().cache_size == 1
    core = store._core
    other = f"{core.keys.expiry_member('bob', str(uuid.uuid4()))}|1000|someone-else".encode()
    assert core.invalidate_remote(other, now_ms=1000 + 999) is True
    assert store.stats().cache_size == 1  # on time, about another session: nothing to do
    assert core.invalidate_remote(other, now_ms=1000 + 5000) is False
    assert store.stats().cache_size == 0 and store.stats().cache_flushes == 1


def test_a_backlog_of_late_invalidations_logs_once_a_second(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that fell behind finds every message of its backlog late: each one flushes the
    cache, but the log gets one line a second, which counts the others."""
    core = store_factory()._core
    late = [
        f"{core.keys.expiry_member('bob', str(uuid.uuid4()))}|1000|someone-else".encode()
        for _ in range(100)
    ]
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        for i, message in enumerate(late):
            assert core.invalidate_remote(message, now_ms=5000 + i) is False
        assert core.invalidate_remote(late[0], now_ms=6001) is False
    lines = [r.getMessage() for r in caplog.records if "late" in r.getMessage()]
    assert len(lines) == 2
    assert "4000 ms late" in lines[0] and "(0 more late" in lines[0]
    assert "5001 ms late" in lines[1] and "(99 more late" in lines[1]
    assert core.cache_flushes == 101


def test_the_listener_stops_with_the_store(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.create_session("alice")
    assert store.stats().cache_serving
    listener = getattr(store, "wrapped", store)._listener
    store.close()
    if isinstance(listener, threading.Thread):
        assert not listener.is_alive()
    else:
        assert listener.done()
    names = [t.name for t in threading.enumerate()]
    assert names.count("redis-sessions-invalidation") == sum(  # only other tests' live stores
        1
        for t in threading.enumerate()
        if t.name == "redis-sessions-invalidation" and t is not listener
    )


# ---------------------------------------------------------------- modify


def test_modify_retries_on_conflict(store_factory: StoreFactory) -> None:
    store = store_factory()
    sid = store.create_session("alice")
    record = store.keyspace.session("alice", sid)
    calls = 0

    def competing_write() -> None:  # another writer, straight to Redis (fn itself cannot await)
        store.client.hset(record, "c:high_cost_calls", b"10")
        store.client.hincrby(record, "version", 1)

    def bump(ctx: TutorContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else writes between our read and our write
            competing_write()
        ctx.high_cost_calls += 1

    written = store.modify(sid, "alice", bump)
    assert calls == 2 and written.high_cost_calls == 11
    assert store.get_session_context(sid, "alice").high_cost_calls == 11  # type: ignore[union-attr]
    with pytest.raises(SessionNotFound):
        store.modify(str(uuid.uuid4()), "alice", bump)

    def always_conflict(ctx: TutorContext) -> None:
        competing_write()

    with pytest.raises(VersionConflict):
        store.modify(sid, "alice", always_conflict, retries=2)


MODIFIER = textwrap.dedent("""
    import sys, time
    from redis_sessions import SessionStore, StoreConfig
    url, prefix, sid, rounds = sys.argv[1:5]
    store = SessionStore.from_url(url, config=StoreConfig(key_prefix=prefix))
    def bump(ctx):
        ctx.high_cost_calls += 1
    start = time.perf_counter()
    for _ in range(int(rounds)):
        store.modify(sid, "alice", bump, retries=1000)
    print(time.perf_counter() - start, flush=True)
    store.close()
""")


def run_modifiers(url: str, prefix: str, sid: str, processes: int, rounds: int) -> float:
    """Start ``processes`` modifiers at once; the seconds the slowest took."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MODIFIER, url, prefix, str(sid), str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    times = []
    for child in children:
        out, _ = child.communicate(timeout=300)
        assert child.returncode == 0
        times.append(float(out))
    return max(times)


def test_modify_from_8_processes_loses_no_increment(real_server: EmbeddedRedis) -> None:
    prefix = f"mod{uuid.uuid4().hex[:6]}"
    store = SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
    sid = store.create_session("alice")
    elapsed = run_modifiers(real_server.url, prefix, sid, processes=8, rounds=200)
    ctx = store.get_session_context(sid, "alice")
    assert ctx is not None and ctx.high_cost_calls == 8 * 200
    session = store.get_session(sid, "alice")
    assert session is not None and session.version == 1 + 8 * 200
    print(f"modify, 8 processes on one session: {1600 / elapsed:.0f} increments/s")
    store.close()


def test_modify_from_many_coroutines_loses_no_increment(real_server: EmbeddedRedis) -> None:
    async def main() -> None:
        prefix = f"amod{uuid.uuid4().hex[:6]}"
        async with AsyncSessionStore.from_url(
            real_server.url, config=StoreConfig(key_prefix=prefix)
        ) as store:
            sid = await store.create_session("alice")

            def bump(ctx: TutorContext) -> None:
                ctx.high_cost_calls += 1

            async def worker() -> None:
                for _ in range(20):
                    await store.modify(sid, "alice", bump, retries=1000)

            await asyncio.gather(*(worker() for _ in range(25)))
            ctx = await store.get_session_context(sid, "alice")
            assert ctx is not None and ctx.high_cost_calls == 500

    asyncio.run(main())


# ---------------------------------------------------------------- tombstones


def race_delete_with_updates(stores: list[SessionStore], sid: str) -> list[bool]:
    """stores[0] deletes the session while the others update it; the updates' results. The delete
    goes once the updates are under way, and each updater goes on until one of its updates came
    after it (False), so that the race happens however the threads are scheduled."""
    results: list[bool] = []
    start = threading.Barrier(len(stores))
    under_way = threading.Event()
    ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="again")

    def update(store: SessionStore) -> None:
        start.wait()
        for _ in range(10_000):
            updated = store.update_session_context(sid, "alice", ctx)
            results.append(updated)
            if len(results) >= 5:
                under_way.set()
            if not updated:
                return

    def delete() -> None:
        start.wait()
        assert under_way.wait(timeout=30)
        assert stores[0].delete_session(sid, "alice")

    threads = [threading.Thread(target=update, args=(s,)) for s in stores[1:]]
    threads.append(threading.Thread(target=delete))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_an_update_racing_a_delete_never_brings_the_session_back(
    real_server: EmbeddedRedis,
) -> None:
    prefix = f"tomb{uuid.uuid4().hex[:6]}"
    config = StoreConfig(key_prefix=prefix)
    stores = [SessionStore.from_url(real_server.url, config=config) for _ in range(5)]
    for _ in range(20):
        sid = stores[0].create_session("alice", initial_context={"session_goal": "g"})
        for store in stores[1:]:
            assert goal(store, sid) == "g"  # everyone has it cached
        results = race_delete_with_updates(stores, sid)
        assert results.count(False) > 0  # updates did come after the delete ...
        leftovers = [
            k for k in stores[0].client.scan_iter(match=f"{prefix}:*") if str(sid).encode() in k
        ]
        assert leftovers == []  # ... and brought nothing back
        for store in stores:
            eventually(lambda store=store, sid=sid: goal(store, sid), None)
    assert stores[0].check().problems == {}
    for store in stores:
        store.close()


def test_modify_of_a_session_deleted_meanwhile(store_factory: StoreFactory) -> None:
    store = store_factory()
    sid = store.create_session("alice")

    def delete_first(ctx: TutorContext) -> None:  # deleted by someone else, straight in Redis
        store.client.delete(*store.keyspace.session_keys("alice", sid))

    with pytest.raises(SessionNotFound):
        store.modify(sid, "alice", delete_first)
    assert store.client.exists(store.keyspace.session("alice", sid)) == 0


def test_a_dropped_listener_never_means_a_stale_read_async(real_server: EmbeddedRedis) -> None:
    async def main() -> None:
        prefix = f"adrop{uuid.uuid4().hex[:6]}"
        config = StoreConfig(key_prefix=prefix)
        a = AsyncSessionStore.from_url(real_server.url, config=config)
        b = AsyncSessionStore.from_url(real_server.url, config=config, client_name=f"b-{prefix}")

        async def goal_of(store: AsyncSessionStore) -> str | None:
            ctx = await store.get_session_context(sid, "alice")
            return None if ctx is None else ctx.session_goal

        async def until(probe: Any, want: Any, within: float = 2.0) -> None:
            deadline = time.monotonic() + within
            while await probe() != want:
                assert time.monotonic() < deadline, f"still {await probe()!r}"
                await asyncio.sleep(0.005)

        sid = await a.create_session("alice", initial_context={"session_goal": "v1"})
        assert await goal_of(b) == "v1"
        admin = redis.Redis.from_url(real_server.url)
        for client in admin.client_list():
            if client.get("name") == f"b-{prefix}" and int(client.get("sub", 0)) > 0:
                admin.client_kill_filter(_id=client["id"])
        admin.close()

        async def flushes() -> int:
            return b.stats().cache_flushes

        await until(flushes, 1)
        ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2")
        await a.update_session_context(sid, "alice", ctx)
        assert await goal_of(b) == "v2"

        async def serving() -> bool:
            return b.stats().cache_serving

        await until(serving, True)
        ctx.session_goal = "v3"
        await a.update_session_context(sid, "alice", ctx)
        await until(lambda: goal_of(b), "v3")
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_the_listener_takes_announcements_as_they_are(
    real_server: EmbeddedRedis, flavor: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Under RESP3 an announcement is a push, which redis-py hands to the subscription's push
    handler; its default one formats every message for a debug log and looks up the logger, a
    quarter of the listener's time per message. The store's handler takes it as it is: with that
    log at DEBUG, nothing goes through it, and the invalidations still arrive."""
    config = StoreConfig(key_prefix=f"push{uuid.uuid4().hex[:6]}")

    def v2(sid: Any) -> TutorContext:
        return TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="v2")

    async def run_async() -> tuple[str | None, int]:
        a = AsyncSessionStore.from_url(real_server.url, config=config, protocol=3)
        b = AsyncSessionStore.from_url(real_server.url, config=config, protocol=3)

        async def goal_of() -> str | None:
            ctx = await b.get_session_context(sid, "alice")
            return None if ctx is None else ctx.session_goal

        try:
            sid = await a.create_session("alice", initial_context={"session_goal": "v1"})
            assert await goal_of() == "v1"
            await a.update_session_context(sid, "alice", v2(sid))
            deadline = time.monotonic() + 2
            while b.stats().invalidations_received < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            return await goal_of(), b.stats().invalidations_received
        finally:
            await a.aclose()
            await b.aclose()

    with caplog.at_level(logging.DEBUG, logger="push_response"):
        if flavor == "async":
            seen, received = asyncio.run(run_async())
        else:
            a = SessionStore.from_url(real_server.url, config=config, protocol=3)
            b = SessionStore.from_url(real_server.url, config=config, protocol=3)
            try:
                sid = a.create_session("alice", initial_context={"session_goal": "v1"})
                assert goal(b, sid) == "v1"
                a.update_session_context(sid, "alice", v2(sid))
                eventually(lambda: b.stats().invalidations_received >= 1, True, within=2.0)
                seen, received = goal(b, sid), b.stats().invalidations_received
            finally:
                a.close()
                b.close()
    assert (seen, received >= 1) == ("v2", True)
    assert [r.getMessage() for r in caplog.records if r.name == "push_response"] == []
