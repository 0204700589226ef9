"""What only the asyncio store can show: concurrency, cancellation, async folder sources, parity of
the surface. (Every behaviour test also runs on AsyncSessionStore through tests/facade.py.)"""

from __future__ import annotations

import asyncio
import inspect
import random
import uuid

import fakeredis
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from redis_sessions import (
    AsyncSessionStore,
    Folder,
    InvalidInput,
    SessionNotFound,
    SessionStore,
    StoreConfig,
    StoreUnavailable,
    TutorContext,
)
from redis_sessions.embedded import EmbeddedRedis, free_port
from redis_sessions.samples import KNOWLEDGE_BASE, realistic_context

from .backends import Backend, all_backends


def async_params() -> list[object]:
    return [pytest.param(b, id=b.name) for b in all_backends()]


def test_surfaces_match_name_for_name_and_signature_for_signature() -> None:
    def public(cls: type) -> dict[str, object]:
        return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}

    sync, aio = public(SessionStore), public(AsyncSessionStore)
    assert set(sync) - {"close"} == set(aio) - {"aclose"}
    for name, member in sync.items():
        if name in ("close", "from_url") or not callable(member):
            continue  # from_url builds a store (no I/O): a classmethod on both
        if name == "modify":  # the async store's fn may also be a coroutine function
            signature = inspect.signature(aio[name])
            fn = signature.parameters["fn"].replace(annotation="ModifyFn")
            async_signature = signature.replace(
                parameters=[fn if p.name == "fn" else p for p in signature.parameters.values()]
            )
        else:
            async_signature = inspect.signature(aio[name])
        assert inspect.signature(member) == async_signature, name
        bound_async = getattr(AsyncSessionStore(fakeredis.FakeAsyncRedis()), name)
        bound_sync = getattr(SessionStore(fakeredis.FakeRedis()), name)
        no_io = name in ("validate_session_context", "stats")  # plain methods on both stores
        assert inspect.iscoroutinefunction(bound_async) is not no_io, name
        assert inspect.iscoroutinefunction(aio[name]) is not no_io, name  # on the class too
        assert not inspect.iscoroutinefunction(bound_sync), name
        assert bound_async.__doc__ == bound_sync.__doc__ and bound_sync.__doc__, name


def test_hundreds_of_concurrent_coroutines_lose_no_write(real_servers: dict) -> None:
    async def scenario(store: AsyncSessionStore) -> None:
        ids = await asyncio.gather(*(store.create_session("crowd") for _ in range(300)))

        async def work(i: int, sid: str) -> None:
            ctx = await store.get_session_context(sid, "crowd")
            assert ctx is not None
            ctx.session_goal = f"goal {i}"
            ctx.high_cost_calls = i
            assert await store.update_session_context(sid, "crowd", ctx)
            await store.append_message(sid, "crowd", "user", f"message {i}")
            again = await store.get_session_context(sid, "crowd", history=1)
            assert again is not None and again.session_goal == f"goal {i}"

        await asyncio.gather(*(work(i, sid) for i, sid in enumerate(ids)))
        fresh = AsyncSessionStore(
            store.client, config=StoreConfig(key_prefix=store.config.key_prefix, cache_size=0)
        )
        for i, sid in enumerate(ids):  # every write visible, read straight from Redis
            ctx = await fresh.get_session_context(sid, "crowd", history=5)
            assert ctx is not None and (ctx.session_goal, ctx.high_cost_calls) == (f"goal {i}", i)
            assert [h["content"] for h in ctx.history] == [f"message {i}"]
        assert len(await store.list_user_sessions("crowd", limit=100, offset=200)) == 100
        assert (await store.check()).problems == {}

    for backend in all_backends():

        async def main(b: Backend = backend) -> None:
            from .conftest import server_for

            prefix = f"crowd{uuid.uuid4().hex[:6]}"
            config = StoreConfig(key_prefix=prefix)
            if b.real:  # from_url's gate of 64: the 300 coroutines wait their turn
                store = AsyncSessionStore.from_url(server_for(b, real_servers).url, config=config)
            else:  # fakeredis' pool fails past its cap instead of waiting
                fake = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), max_connections=1000)
                store = AsyncSessionStore(fake, config=config, owns_client=True)
            client = store.client
            try:
                await scenario(store)
            finally:
                async for key in client.scan_iter(match=f"{prefix}:*"):
                    await client.delete(key)
                await store.aclose()

        asyncio.run(main())


def test_cancelled_operations_leave_no_partial_session(real_servers: dict) -> None:
    """Hundreds of writes cancelled at random points: every session is whole or absent, the
    store checks clean, and no cache entry disagrees with Redis."""

    async def main(url: str) -> None:
        prefix = f"cancel{uuid.uuid4().hex[:6]}"
        store = AsyncSessionStore.from_url(url, config=StoreConfig(key_prefix=prefix))
        rng = random.Random(7)
        base = [
            await store.create_session("u", initial_context=realistic_context("u"))
            for _ in range(40)
        ]
        for sid in base:  # warm the cache, so cancelled writes must evict
            assert await store.get_session(sid, "u") is not None

        async def victim(i: int) -> None:
            sid = base[i % len(base)]
            match i % 5:
                case 0:
                    await store.create_session("u", initial_context=realistic_context("u"))
                case 1:
                    ctx = realistic_context("u", sid)
                    ctx.state = f"cancelled-{i}"
                    await store.update_session_context(sid, "u", ctx)
                case 2:
                    await store.append_message(
                        sid, "u", "assistant", "x", whiteboard_actions=[{"type": "CLEAR_BOARD"}]
                    )
                case 3:
                    await store.end_session(sid, "u")
                case _:
                    await store.delete_session(base[(i * 7) % len(base)], "u")

        cancelled = 0
        for round_no in range(20):
            tasks = [asyncio.create_task(victim(round_no * 20 + k)) for k in range(20)]
            for _ in range(rng.randrange(0, 6)):
                await asyncio.sleep(0)  # let some get as far as sending, or further
            for task in tasks:
                cancelled += task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(
                r is None or isinstance(r, (asyncio.CancelledError, SessionNotFound))
                for r in results
            ), results
        assert cancelled > 100  # most were cancelled mid-way
        report = await store.check()
        assert report.problems == {} and report.unknown_keys == 0
        core = store._core
        for sid in base:
            key = core.keys.session("u", sid)
            cached = core.cache.peek(("u", sid))
            assert cached is None or cached == shown(await store.client.hgetall(key))
            session = await store.get_session(sid, "u")
            assert (session is None) == (await store.client.exists(key) == 0)
        for row in await store.list_user_sessions("u", limit=100):  # whole: readable, messages ok
            assert await store.get_session_context(row.session_id, "u", history=5) is not None
        async for key in store.client.scan_iter(match=f"{prefix}:*"):
            await store.client.delete(key)
        await store.aclose()

    from .conftest import server_for, shown

    for backend in all_backends():
        if backend.real:
            asyncio.run(main(server_for(backend, real_servers).url))


def test_async_folder_source_runs() -> None:
    good = str(uuid.uuid4())

    async def source(folder_id: str, user_id: str) -> Folder | None:
        await asyncio.sleep(0)
        if user_id == "boom":
            raise RuntimeError("folder service down")
        return (
            Folder(
                id=folder_id, name="ext", vector_store_id="vs_async", knowledge_base=KNOWLEDGE_BASE
            )
            if folder_id == good
            else None
        )

    async def main() -> None:
        store = AsyncSessionStore(fakeredis.FakeAsyncRedis(), folder_source=source)
        ctx = await store.get_session_context(await store.create_session("a", folder_id=good), "a")
        assert ctx is not None and ctx.vector_store_id == "vs_async" and ctx.analysis_result
        sid = await store.create_session("boom", folder_id=good)
        failed = await store.get_session_context(sid, "boom")
        assert failed is not None and failed.folder_id is None
        assert await store.get_folder_data(good, "a") is not None

    asyncio.run(main())


def test_a_sync_store_refuses_an_async_folder_source() -> None:
    async def source(folder_id: str, user_id: str) -> None:
        return None

    with pytest.raises(InvalidInput, match="AsyncSessionStore"):
        SessionStore(fakeredis.FakeRedis(), folder_source=source)


def test_outage_raises_store_unavailable() -> None:
    async def main() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"
        async with AsyncSessionStore.from_url(url, retry=Retry(NoBackoff(), 0)) as store:
            with pytest.raises(StoreUnavailable):
                await store.get_session(str(uuid.uuid4()), "alice")
            with pytest.raises(StoreUnavailable):
                await store.create_session("alice")

    asyncio.run(main())


def test_async_with_closes_its_own_client(real_server: EmbeddedRedis) -> None:
    name = f"aprobe-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        observer = redis.asyncio.Redis.from_url(real_server.url)
        async with AsyncSessionStore.from_url(real_server.url, client_name=name) as store:
            sid = await store.create_session("alice")
            ctx = TutorContext(user_id="alice", session_id=uuid.UUID(str(sid)), session_goal="g")
            assert await store.update_session_context(sid, "alice", ctx)
            assert await store.delete_session(sid, "alice")
            names = [c.get("name") for c in await observer.client_list()]
            assert name in names
        # the sockets are closed; Redis notices on its next event-loop turn (give it 2 s)
        for _ in range(100):
            names = [c.get("name") for c in await observer.client_list()]
            if name not in names:
                break
            await asyncio.sleep(0.02)
        assert name not in names
        await observer.aclose()

    asyncio.run(main())
