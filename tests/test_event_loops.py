"""An AsyncSessionStore lives in one event loop: in another it raises WrongEventLoop, sending
nothing, instead of redis.asyncio's "Event loop is closed" from deep inside a read (what a module
level store met in a second ``asyncio.run``, or in the next pytest-asyncio test, before)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from redis_sessions import (
    AsyncSessionStore,
    SessionStore,
    StoreClosed,
    StoreConfig,
    WrongEventLoop,
)

from .test_fork import in_child


@pytest.fixture
def config() -> StoreConfig:
    return StoreConfig(key_prefix=f"loops{uuid.uuid4().hex[:8]}")


def test_a_second_loop_is_refused_with_a_clear_error_and_nothing_sent(
    real_backend_url: str, config: StoreConfig
) -> None:
    store = AsyncSessionStore.from_url(real_backend_url, config=config)

    async def first() -> Any:
        sid = await store.create_session("alice")
        assert await store.append_message(sid, "alice", "user", "in its loop") == 1
        return sid

    sid = asyncio.run(first())
    for call in (
        lambda: store.append_message(sid, "alice", "user", "in another loop"),
        lambda: store.get_session(sid, "alice"),  # a cache hit is refused too
        lambda: store.list_user_sessions("alice"),
    ):
        with pytest.raises(WrongEventLoop, match=r"first used in \(closed\)") as caught:
            asyncio.run(call())
        assert isinstance(caught.value, RuntimeError)  # what code catching redis.asyncio's saw
    with SessionStore.from_url(real_backend_url, config=config) as sync:
        assert [m.text for m in sync.get_messages(sid, "alice")] == ["in its loop"]
    asyncio.run(store.aclose())  # from any loop


def test_closed_from_another_loop_it_is_closed_everywhere(
    real_backend_url: str, config: StoreConfig
) -> None:
    loop = asyncio.new_event_loop()
    try:
        store = AsyncSessionStore.from_url(real_backend_url, config=config)
        sid = loop.run_until_complete(store.create_session("alice"))
        with pytest.raises(WrongEventLoop, match=r"\(still open\)"):
            asyncio.run(store.session_exists(sid, "alice"))
        asyncio.run(store.aclose())  # no round trip on the other loop's connections
        with pytest.raises(StoreClosed):
            loop.run_until_complete(store.session_exists(sid, "alice"))
        assert store.stats().cache_serving is False
        loop.run_until_complete(store.aclose())  # again, in its own loop: nothing more to do
        listener = store._listener
        if listener is not None:  # it stops by itself at its next look at the flag
            loop.run_until_complete(asyncio.wait_for(listener, 5))
    finally:
        loop.run_until_complete(store.client.aclose())
        loop.close()


def test_one_loop_run_again_and_again_is_its_own(
    real_backend_url: str, config: StoreConfig
) -> None:
    loop = asyncio.new_event_loop()
    store = AsyncSessionStore.from_url(real_backend_url, config=config)
    try:
        sid = loop.run_until_complete(store.create_session("alice"))
        for i in range(3):
            got: Any = loop.run_until_complete(store.append_message(sid, "alice", "user", f"{i}"))
            assert got == i + 1
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()


def test_a_store_used_before_a_fork_is_refused_in_the_child(
    real_backend_url: str, config: StoreConfig
) -> None:
    """Its connections belong to the parent's loop (a store made but not used before the fork
    binds to the child's: tests/test_fork.py)."""
    store = AsyncSessionStore.from_url(real_backend_url, config=config)
    sid = asyncio.run(store.create_session("alice"))

    def child() -> str:
        try:
            asyncio.run(store.append_message(sid, "alice", "user", "from the child"))
        except WrongEventLoop as exc:
            return str(exc)
        return "sent"

    assert "first used in (closed)" in in_child(child)
    asyncio.run(store.aclose())
    with SessionStore.from_url(real_backend_url, config=config) as sync:
        assert sync.get_messages(sid, "alice") == []
