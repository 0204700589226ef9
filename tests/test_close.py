"""After close() every operation that would talk to Redis raises StoreClosed: nothing is served from
the cache and no connection is opened. Closing twice is fine."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from redis_sessions import (
    AsyncSessionStore,
    SessionStore,
    StoreClosed,
    StoreConfig,
)
from redis_sessions.embedded import EmbeddedRedis

from .conftest import StoreFactory
from .operations import CALLS, SID


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_every_operation_after_close_raises(
    store_factory: StoreFactory, call: Callable[[Any], Any]
) -> None:
    store = store_factory()
    store.close()
    with pytest.raises(StoreClosed, match="closed"):
        call(store)


def test_a_closed_store_serves_nothing_from_its_cache(store_factory: StoreFactory) -> None:
    store = store_factory()
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None
    assert store.get_session(sid, "alice") is not None and store.stats().cache_hits >= 1
    store.close()
    store.close()  # twice is fine
    for read in (
        lambda: store.get_session(sid, "alice"),
        lambda: store.get_session_context(sid, "alice"),
        lambda: store.session_exists(sid, "alice"),
    ):
        with pytest.raises(StoreClosed):
            read()
    assert store.stats().cache_size == 0 and store.stats().cache_serving is False
    assert store.validate_session_context({"user_id": "a", "session_id": SID}).valid  # no I/O


def _connections(server: EmbeddedRedis, name: str) -> int:
    with redis.Redis.from_url(server.url) as admin:
        return sum(1 for c in admin.client_list() if c.get("name") == name)


def test_a_closed_store_opens_no_connection(real_server: EmbeddedRedis) -> None:
    name = f"closed-{uuid.uuid4().hex[:6]}"
    store = SessionStore.from_url(
        real_server.url, config=StoreConfig(key_prefix=name), client_name=name
    )
    sid = store.create_session("alice")
    assert _connections(real_server, name) >= 1
    store.close()
    for _ in range(3):
        with pytest.raises(StoreClosed):
            store.get_session(sid, "alice")
    assert _connections(real_server, name) == 0


def test_a_closed_async_store_opens_no_connection(real_server: EmbeddedRedis) -> None:
    name = f"aclosed-{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        store = AsyncSessionStore.from_url(
            real_server.url, config=StoreConfig(key_prefix=name), client_name=name
        )
        async with store:
            sid = await store.create_session("alice")
            assert _connections(real_server, name) >= 1
        await store.aclose()  # twice is fine
        with pytest.raises(StoreClosed):
            await store.get_session(sid, "alice")
        with pytest.raises(StoreClosed):
            await store.append_message(sid, "alice", "user", "hi")

    asyncio.run(main())
    assert _connections(real_server, name) == 0
