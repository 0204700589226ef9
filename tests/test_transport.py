"""The store's short way to Redis (``_transport.Sender``): the replies and the errors of
``execute_command``, its retries, its pool, on real servers; and where it steps aside."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig, StoreUnavailable
from redis_sessions._shell import run_to_end
from redis_sessions._transport import Sender
from redis_sessions.samples import realistic_context

from .faultproxy import fault_proxy

LUA_NESTED = "return {1, 'two', {3, false, 'x'}, redis.call('HGETALL', KEYS[1])}"


def commands(prefix: str, sha: bytes) -> list[tuple[Any, ...]]:
    """The kinds of command the store sends, on keys of ``prefix``."""
    h, z = f"{prefix}:h", f"{prefix}:z"
    return [
        ("HGETALL", h),
        ("HGETALL", f"{prefix}:missing"),
        ("HMGET", h, "a", "nope", "c"),
        ("EXISTS", h),
        ("ZSCAN", z, 0, "COUNT", 100),
        ("ZREM", z, "nobody"),
        ("EVALSHA", sha, 1, h),
    ]


def fill(client: redis.Redis, prefix: str) -> bytes:
    client.hset(f"{prefix}:h", mapping={"a": b"1", "b": "\u00e9\u4e2d".encode(), "c": b""})
    client.zadd(f"{prefix}:z", {"m1": 1.5, "m2": 2})
    sha: bytes = client.script_load(LUA_NESTED).encode()
    return sha


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_are_those_of_execute_command_sync(real_backend_url: str, protocol: int) -> None:
    client = redis.Redis.from_url(real_backend_url, protocol=protocol)
    prefix = f"tr{uuid.uuid4().hex[:8]}"
    try:
        sha = fill(client, prefix)
        sender = Sender(client, is_async=False)
        assert sender.direct
        for args in commands(prefix, sha):
            assert run_to_end(sender.send(*args)) == client.execute_command(*args), args
    finally:
        client.delete(f"{prefix}:h", f"{prefix}:z")
        client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_are_those_of_execute_command_async(real_backend_url: str, protocol: int) -> None:
    sync = redis.Redis.from_url(real_backend_url)
    prefix = f"tr{uuid.uuid4().hex[:8]}"
    sha = fill(sync, prefix)

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(real_backend_url, protocol=protocol)
        sender = Sender(client, is_async=True)
        assert sender.direct
        for args in commands(prefix, sha):
            assert await sender.send(*args) == await client.execute_command(*args), args
        await client.aclose()

    try:
        asyncio.run(main())
    finally:
        sync.delete(f"{prefix}:h", f"{prefix}:z")
        sync.close()


def test_a_reply_error_raises_and_leaves_the_connection_usable(real_backend_url: str) -> None:
    client = redis.Redis.from_url(real_backend_url)
    key = f"tr{uuid.uuid4().hex[:8]}:s"
    client.set(key, b"a string")
    sender = Sender(client, is_async=False)
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            run_to_end(sender.send("HGETALL", key))
        with pytest.raises(redis.exceptions.NoScriptError):
            run_to_end(sender.send("EVALSHA", "0" * 40, 0))
        assert run_to_end(sender.send("EXISTS", key)) == 1  # the same pooled connection, in step
        assert len(client.connection_pool._available_connections) == 1
    finally:
        client.delete(key)
        client.close()


def test_a_cut_connection_is_retried_and_an_outage_is_unavailable(real_backend_url: str) -> None:
    with fault_proxy(real_backend_url) as proxy:
        config = StoreConfig(key_prefix=_prefix(), cache_size=0)
        store = SessionStore.from_url(proxy.url, config=config)
        try:
            assert store._sender.direct
            sid = store.create_session("alice", initial_context=realistic_context("alice"))
            proxy.cut_all()  # the pooled connection is reset
            assert store.get_session(sid, "alice") is not None  # redis-py's retry reconnected
            proxy.refuse()
            proxy.cut_all()
            with pytest.raises(StoreUnavailable):
                store.delete_session(sid, "alice")
            proxy.refuse(False)
            assert store.delete_session(sid, "alice") is True  # nothing was lost meanwhile
        finally:
            store.close()


def test_a_lost_reply_is_resent_once_and_applied_once(real_backend_url: str) -> None:
    with fault_proxy(real_backend_url) as proxy:
        store = SessionStore.from_url(proxy.url, config=StoreConfig(key_prefix=_prefix()))
        try:
            sid = store.create_session("alice")
            proxy.drop_reply(b"EVALSHA")
            assert store.append_message(sid, "alice", "user", "hello") == 1
            assert proxy.dropped == 1
            messages = store.get_messages(sid, "alice")
            assert [m.text for m in messages] == ["hello"]  # resent, applied once
        finally:
            store.close()


def test_an_exhausted_pool_is_unavailable(real_backend_url: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(real_backend_url, max_connections=1, timeout=0.2)
    client = redis.Redis(connection_pool=pool)
    store = SessionStore(client, config=StoreConfig(key_prefix=_prefix(), invalidation=False))
    held = pool.get_connection()
    try:
        assert store._sender.direct
        with pytest.raises(StoreUnavailable):
            store.session_exists(uuid.uuid4(), "alice")
    finally:
        pool.release(held)
    assert store.session_exists(uuid.uuid4(), "alice") is False
    store.close()
    client.close()


def test_a_cancelled_async_call_leaves_no_reply_behind(real_backend_url: str) -> None:
    """Cancelled between sending and reading, the connection is dropped (redis-py's own
    cancellation rule), so the next call on the pool never reads the old reply."""

    async def main(url: str) -> None:
        client = redis.asyncio.Redis.from_url(url, max_connections=1)
        sender = Sender(client, is_async=True)
        key = f"{_prefix()}:k"
        await client.set(key, b"old")
        proxy_delay.delay(0.3)
        task = asyncio.ensure_future(sender.send("GET", key))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proxy_delay.delay(0)
        await client.set(key, b"new")
        assert await sender.send("GET", key) == b"new"
        assert await sender.send("EXISTS", key) == 1
        await client.delete(key)
        await client.aclose()

    with fault_proxy(real_backend_url) as proxy_delay:
        asyncio.run(main(proxy_delay.url))


def _prefix() -> str:
    return f"tr{uuid.uuid4().hex[:8]}"


def _wrapped_on_instance(client: Any, seen: list[Any]) -> Any:
    plain = client.execute_command

    def execute_command(*args: Any, **options: Any) -> Any:
        seen.append(args[0])
        return plain(*args, **options)

    client.execute_command = execute_command
    return client


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda url: fakeredis.FakeRedis(), id="subclass"),
        pytest.param(
            lambda url: redis.Redis.from_url(url, single_connection_client=True), id="single"
        ),
    ],
)
def test_it_steps_aside_for_clients_it_does_not_reproduce(
    real_backend_url: str, make: Callable[[str], Any]
) -> None:
    client = make(real_backend_url)
    assert not Sender(client, is_async=False).direct
    client.close()


def test_a_wrapped_execute_command_sees_every_call(real_backend_url: str) -> None:
    """Tracing wraps ``execute_command`` (for the class or one client, before or after the store
    is made): then every command goes through it."""
    seen: list[Any] = []
    store = SessionStore.from_url(real_backend_url, config=StoreConfig(key_prefix=_prefix()))
    try:
        sid = store.create_session("alice")
        assert store._sender.direct
        _wrapped_on_instance(store.client, seen)
        assert not store._sender.direct
        store.append_message(sid, "alice", "user", "hi")
        assert store.delete_session(sid, "alice")
        assert seen.count("EVALSHA") == 2
    finally:
        store.close()


def test_the_async_store_uses_it(real_backend_url: str) -> None:
    async def main() -> None:
        store = AsyncSessionStore.from_url(
            real_backend_url, config=StoreConfig(key_prefix=_prefix())
        )
        assert store._sender.direct
        sid = await store.create_session("alice", initial_context=realistic_context("alice"))
        assert (await store.get_session_context(sid, "alice")) is not None
        assert await store.delete_session(sid, "alice")
        await store.aclose()

    asyncio.run(main())


def test_retry_none_still_raises_at_once(real_backend_url: str) -> None:
    with fault_proxy(real_backend_url) as proxy:
        store = SessionStore.from_url(
            proxy.url, config=StoreConfig(key_prefix=_prefix()), retry=Retry(NoBackoff(), 0)
        )
        try:
            sid = store.create_session("alice")
            proxy.drop_reply(b"EVALSHA")
            with pytest.raises(StoreUnavailable):
                store.append_message(sid, "alice", "user", "hello")
        finally:
            store.close()


WRITE_ARGS = (
    "EVALSHA",
    "a" * 40,
    2,
    "p:{u:x}:s:1",
    b"p:{u:x}",
    b"\x00\xff" * 600,
    "\u00e9t\u00e9",
    17,
    -3,
)


@pytest.mark.parametrize("client_class", [redis.Redis, redis.asyncio.Redis], ids=["sync", "async"])
def test_hiredis_packs_the_bytes_redis_py_would(client_class: Any) -> None:
    client = client_class()  # never connects: packing needs no server
    sender = Sender(client, is_async=client_class is redis.asyncio.Redis)
    assert sender._pack is not None
    connection = client.connection_pool.make_connection()
    assert sender._pack(WRITE_ARGS) == b"".join(connection.pack_command(*WRITE_ARGS))


def test_another_encoding_packs_the_redis_py_way() -> None:
    client = redis.Redis(encoding="latin-1")
    assert Sender(client, is_async=False)._pack is None
