"""The invalidation link proves it is alive: with its connection blackholed (open, but nothing
arrives: a partition, a NAT that dropped the flow), the cache stops serving within
``max_link_silence`` and reads go to Redis, until the link is back. Through the fault proxy, on a
real Redis, for the sync and the async store."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig, TutorContext
from redis_sessions.embedded import EmbeddedRedis

from .faultproxy import ProxiedConnection, fault_proxy

SLACK = 0.5  # seconds: thread and event-loop scheduling on a loaded 2-core machine


def listening(conn: ProxiedConnection) -> bool:
    return b"SUBSCRIBE" in conn.head


def context(sid: str, goal: str) -> TutorContext:
    return TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal=goal)


def stale_for(read: Any, want: str, within: float) -> float:
    """Seconds until ``read()`` gives ``want`` (fails past ``within``)."""
    start = time.monotonic()
    while read() != want:
        assert time.monotonic() - start < within, f"still {read()!r} after {within} s"
        time.sleep(0.005)
    return time.monotonic() - start


def test_a_blackholed_link_stops_the_cache_within_the_bound(real_server: EmbeddedRedis) -> None:
    bound = StoreConfig().max_link_silence.total_seconds()  # the default: 2 s
    config = StoreConfig(key_prefix=f"link{uuid.uuid4().hex[:6]}")
    with fault_proxy(real_server.url) as proxy:
        reader = SessionStore.from_url(proxy.url, config=config)
        writer = SessionStore.from_url(real_server.url, config=config)

        def goal() -> str | None:
            ctx = reader.get_session_context(sid, "alice")
            return None if ctx is None else ctx.session_goal

        sid = writer.create_session("alice", initial_context={"session_goal": "v1"})
        assert goal() == "v1" and goal() == "v1"
        assert reader.stats().cache_hits >= 1  # served from memory
        proxy.blackhole(listening)  # the data connections still work
        writer.update_session_context(sid, "alice", context(sid, "v2"))  # its announcement is lost
        staleness = stale_for(goal, "v2", within=bound + 5)
        assert staleness <= bound + SLACK
        assert reader.stats().cache_serving is False  # reads go to Redis meanwhile
        hits = reader.stats().cache_hits
        assert goal() == "v2" and reader.stats().cache_hits == hits
        proxy.heal()  # the listener makes a new connection, and the cache serves again
        stale_for(lambda: reader.stats().cache_serving, True, within=15)  # type: ignore[arg-type]
        assert goal() == "v2" and goal() == "v2" and reader.stats().cache_hits > hits
        writer.update_session_context(sid, "alice", context(sid, "v3"))
        stale_for(goal, "v3", within=1)
        print(f"\nstale reads with a blackholed link: {staleness:.3f} s (bound {bound} s)")
        reader.close()
        writer.close()


def test_control_a_link_trusted_for_longer_stays_stale_for_longer(
    real_server: EmbeddedRedis,
) -> None:
    """The same with a 30 s bound: the cache keeps serving the old value (so the test above can
    fail, and the bound is what ends the staleness)."""
    config = StoreConfig(
        key_prefix=f"link{uuid.uuid4().hex[:6]}", max_link_silence=dt.timedelta(seconds=30)
    )
    with fault_proxy(real_server.url) as proxy:
        reader = SessionStore.from_url(proxy.url, config=config)
        writer = SessionStore.from_url(real_server.url, config=config)
        sid = writer.create_session("alice", initial_context={"session_goal": "v1"})
        assert reader.get_session(sid, "alice") is not None
        proxy.blackhole(listening)
        writer.update_session_context(sid, "alice", context(sid, "v2"))
        time.sleep(3)
        ctx = reader.get_session_context(sid, "alice")
        assert ctx is not None and ctx.session_goal == "v1"
        reader.close()
        writer.close()


def test_a_blackholed_link_stops_the_async_cache_within_the_bound(
    real_server: EmbeddedRedis,
) -> None:
    bound = 1.0
    config = StoreConfig(
        key_prefix=f"alink{uuid.uuid4().hex[:6]}", max_link_silence=dt.timedelta(seconds=bound)
    )

    async def main() -> float:
        reader = AsyncSessionStore.from_url(proxy.url, config=config)
        writer = AsyncSessionStore.from_url(real_server.url, config=config)

        async def goal() -> str | None:
            ctx = await reader.get_session_context(sid, "alice")
            return None if ctx is None else ctx.session_goal

        async def until(probe: Any, want: Any, within: float) -> float:
            start = time.monotonic()
            while await probe() != want:
                assert time.monotonic() - start < within, f"still {await probe()!r}"
                await asyncio.sleep(0.005)
            return time.monotonic() - start

        async def serving() -> bool:
            return reader.stats().cache_serving

        sid = await writer.create_session("alice", initial_context={"session_goal": "v1"})
        assert await goal() == "v1" and await goal() == "v1"
        assert reader.stats().cache_hits >= 1
        proxy.blackhole(listening)
        await writer.update_session_context(sid, "alice", context(sid, "v2"))
        staleness = await until(goal, "v2", within=bound + 5)
        proxy.heal()
        await until(serving, True, within=15)
        await writer.update_session_context(sid, "alice", context(sid, "v3"))
        await until(goal, "v3", within=1)
        await reader.aclose()
        await writer.aclose()
        return staleness

    with fault_proxy(real_server.url) as proxy:
        assert asyncio.run(main()) <= bound + SLACK


def test_the_listener_keeps_up_with_a_flood_of_announcements(real_server: EmbeddedRedis) -> None:
    """10,000 announcements published as fast as a pipeline goes: the listener takes them in
    batches (one short wait per wake-up, not one per message), so it neither falls silent past
    its bound nor falls behind."""
    import redis

    prefix = f"flood{uuid.uuid4().hex[:6]}"
    store = SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None  # listening, and one entry cached
    channel = store.keyspace.invalidation_channel()
    with redis.Redis.from_url(real_server.url) as publisher:
        pipe = publisher.pipeline(transaction=False)
        for _ in range(10_000):
            member = store.keyspace.expiry_member("bob", str(uuid.uuid4()))
            pipe.publish(channel, f"{member}|{int(time.time() * 1000)}|elsewhere")
        pipe.execute()
    deadline = time.monotonic() + 10
    while store.stats().invalidations_received < 10_000:
        assert time.monotonic() < deadline, store.stats()
        time.sleep(0.01)
    stats = store.stats()
    assert stats.link_drops == 0 and stats.cache_flushes == 0 and stats.cache_serving
    assert store.get_session(sid, "alice") is not None and store.stats().cache_hits >= 1
    store.close()
