"""A store that owns its client keeps its connections between calls (``_transport.Sender``, parked),
skipping redis-py's pool bookkeeping on each one; a client passed in gets its connections back.

What redis-py's pool checks before handing a connection out is still checked before a parked one is
used once it sat idle for ``CHECK_IDLE`` (a server that hung up: reconnected, without spending a
retry); within that time a sync store sends on it unchecked (the check's system call lets go of the
GIL), and a server that hung up meanwhile costs a retry, the call applied once. The pool is never
drained by parked connections (a request that takes its own hands one back first); closing hands
them all back. The fork case is in test_fork. On real servers, through the fault proxy where a link
breaks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig, _transport
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.samples import realistic_context

from .faultproxy import fault_proxy

USER = "parker"


class CountedTakes:
    """Counts the connections a pool hands out (``get_connection`` wrapped on the instance)."""

    def __init__(self, pool: Any) -> None:
        self.count = 0
        taken = pool.get_connection

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return taken(*args, **kwargs)

        pool.get_connection = counted


def in_use(pool: Any) -> int:
    return len(pool._in_use_connections)


def test_an_owned_store_keeps_its_connection_between_calls(
    real_backend_url: str, real_prefix: str
) -> None:
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=real_prefix))
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    takes = CountedTakes(store.client.connection_pool)
    for _ in range(50):
        assert store.get_session(sid, USER) is not None  # the cache is bypassed below
        assert store.session_exists(sid, USER)
    assert takes.count == 0  # every call ran on the connection the first one parked
    store.close()
    assert in_use(store.client.connection_pool) == 0  # closing handed it back


def test_an_owned_async_store_keeps_its_connection_between_calls(
    real_backend_url: str, real_prefix: str
) -> None:
    async def main() -> None:
        store = AsyncSessionStore.from_url(
            real_backend_url, config=StoreConfig(key_prefix=real_prefix)
        )
        sid = await store.create_session(USER, initial_context=realistic_context(USER))
        takes = CountedTakes(store.client.connection_pool)
        for _ in range(50):
            assert await store.session_exists(sid, USER)
        assert takes.count == 0
        await store.aclose()
        assert in_use(store.client.connection_pool) == 0

    asyncio.run(main())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_client_of_the_apps_gets_each_connection_back(
    real_backend_url: str, real_prefix: str, is_async: bool
) -> None:
    config = StoreConfig(key_prefix=real_prefix, cache_size=0)  # no listener holds a connection

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(real_backend_url)
        store = AsyncSessionStore(client, config=config)
        sid = await store.create_session(USER, initial_context=realistic_context(USER))
        assert await store.session_exists(sid, USER)
        assert in_use(client.connection_pool) == 0
        await client.aclose()

    if is_async:
        asyncio.run(main())
        return
    client = redis.Redis.from_url(real_backend_url)
    store = SessionStore(client, config=config)
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    assert store.session_exists(sid, USER)
    assert in_use(client.connection_pool) == 0  # the app's own commands can have it
    client.close()


def test_an_idle_parked_connection_the_server_cut_is_reconnected_before_use(
    real_server: EmbeddedRedis, real_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "CHECK_IDLE", 0.05)
    # no retries: a command sent on the cut connection would fail the call
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)}
    with fault_proxy(real_server.url) as proxy:
        store = SessionStore.from_url(
            proxy.url, config=StoreConfig(key_prefix=real_prefix, cache_size=0), **options
        )
        sid = store.create_session(USER, initial_context=realistic_context(USER))
        for _ in range(3):
            proxy.cut_all()  # the parked connection is reset under the store
            time.sleep(0.1)  # and sits idle past CHECK_IDLE
            assert store.session_exists(sid, USER)
        store.close()


def test_a_connection_cut_right_after_its_use_costs_a_retry_and_writes_once(
    real_server: EmbeddedRedis, real_prefix: str
) -> None:
    with fault_proxy(real_server.url) as proxy:
        store = SessionStore.from_url(proxy.url, config=StoreConfig(key_prefix=real_prefix))
        start = realistic_context(USER)
        sid = store.create_session(USER, initial_context=start)
        for version in range(1, 4):
            context = store.get_session_context(sid, USER)
            assert context is not None
            context.high_cost_calls += 1
            proxy.cut_all()  # within CHECK_IDLE of its last use: sent on unchecked, resent
            assert store.update_session_context(sid, USER, context, expected_version=version)
        session = store.get_session(sid, USER)
        assert session is not None
        assert session.version == 4
        assert session.context.high_cost_calls == start.high_cost_calls + 3  # each once
        store.close()


def test_a_busy_sync_store_makes_no_check_between_calls(
    real_backend_url: str, real_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = []
    can_read = redis.connection.Connection.can_read

    def counted(self: Any, timeout: float = 0) -> bool:
        checks.append(self)
        return can_read(self, timeout)

    store = SessionStore.from_url(
        real_backend_url, config=StoreConfig(key_prefix=real_prefix, cache_size=0)
    )
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    monkeypatch.setattr(redis.connection.Connection, "can_read", counted)
    for _ in range(50):
        assert store.session_exists(sid, USER)
    assert checks == []  # no system call (and no GIL hand-over) before each send
    store.close()


def test_an_async_parked_connection_the_server_cut_is_resent_on(
    real_server: EmbeddedRedis, real_prefix: str
) -> None:
    # redis.asyncio's connections see a reset only when they use the socket (its pool's check
    # does not either): the connection's retry sends the call again, on a new connection, which
    # is parked in its turn
    async def main() -> None:
        with fault_proxy(real_server.url) as proxy:
            store = AsyncSessionStore.from_url(
                proxy.url, config=StoreConfig(key_prefix=real_prefix, cache_size=0)
            )
            sid = await store.create_session(USER, initial_context=realistic_context(USER))
            for _ in range(3):
                proxy.cut_all()
                assert await store.session_exists(sid, USER)
            takes = CountedTakes(store.client.connection_pool)
            assert await store.session_exists(sid, USER)
            assert takes.count == 0
            await store.aclose()

    asyncio.run(main())


def test_requests_that_take_their_own_connection_do_not_drain_the_pool(
    real_backend_url: str, real_prefix: str
) -> None:
    # one place at the gate: the pool holds 3 (the store's, the listener's, one spare); the app
    # holds the spare, the store's first call parks its own, and a check (SCAN, then a pipeline)
    # takes connections from the pool itself
    store = SessionStore.from_url(
        real_backend_url, config=StoreConfig(key_prefix=real_prefix), max_connections=1, timeout=1
    )
    store.create_session(USER, initial_context=realistic_context(USER))
    pool = store.client.connection_pool
    held = pool.get_connection()
    try:
        report = store.check()
        assert report.scanned_keys > 0 and report.unrepaired == 0, report
        assert store.list_user_sessions(USER)  # and the store's own calls go on
    finally:
        pool.release(held)
        store.close()
