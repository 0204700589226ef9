"""tests/faultproxy.py against a private redis-server, with real redis-py clients (sync and asyncio).

Every client here talks to the server this module starts (directly or through a proxy in front of
it); no other Redis is touched.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.retry import Retry

from redis_sessions.embedded import EmbeddedRedis

from .faultproxy import FaultProxy, fault_proxy

Connect = Callable[..., redis.Redis]


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def direct(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client straight to the server, bypassing the proxy."""
    client: redis.Redis = redis.Redis.from_url(server.url, socket_timeout=2.0)
    yield client
    client.close()


@pytest.fixture
def proxy(server: EmbeddedRedis) -> Iterator[FaultProxy]:
    with fault_proxy(server.url) as started:
        yield started


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Connect]:
    """Make clients through the proxy (``retries`` retries, none by default); closed at the end."""
    made: list[redis.Redis] = []

    def make(retries: int = 0, socket_timeout: float = 2.0, **kwargs: Any) -> redis.Redis:
        client: redis.Redis = redis.Redis.from_url(
            proxy.url, retry=Retry(NoBackoff(), retries), socket_timeout=socket_timeout, **kwargs
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def fresh_key() -> str:
    return f"faultproxy:{uuid.uuid4().hex}"


def raw_connection(proxy: FaultProxy) -> socket.socket:
    """A bare socket through the proxy, checked with a PING."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0)
    sock.sendall(b"PING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"
    return sock


def next_message(pubsub: PubSub, timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message: dict[str, Any] | None = pubsub.get_message(timeout=0.1)
        if message is not None:
            return message
    raise AssertionError("no pubsub message arrived")


def test_plain_traffic_passes_through(connect: Connect, proxy: FaultProxy) -> None:
    client = connect()
    key = fresh_key()
    assert client.set(key, "value")
    assert client.get(key) == b"value"
    with client.pipeline(transaction=True) as pipe:
        pipe.incr(key + ":n")
        pipe.incr(key + ":n")
        pipe.get(key)
        assert pipe.execute() == [1, 2, b"value"]
    big = os.urandom(1 << 20)
    assert client.set(key, big)
    assert client.get(key) == big
    [conn] = proxy.connections
    assert conn.client_bytes > len(big) and conn.server_bytes > len(big)
    assert not conn.blackholed and b"SET" in conn.head
    client.delete(key, key + ":n")


def test_asyncio_client_passes_through_and_loses_a_reply(
    proxy: FaultProxy, direct: redis.Redis
) -> None:
    key, counter = fresh_key(), fresh_key()

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(proxy.url, retry=AsyncRetry(NoBackoff(), 0))
        try:
            await client.set(key, "async")
            assert await client.get(key) == b"async"
            async with client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.strlen(key)
                assert await pipe.execute() == [b"async", 5]
            proxy.drop_reply(b"INCR")
            with pytest.raises(redis.ConnectionError):
                await client.incr(counter)
            assert await client.get(counter) == b"1"  # applied; a fresh connection reads it
        finally:
            await client.aclose()

    asyncio.run(main())
    assert proxy.dropped == 1
    direct.delete(key, counter)


def test_drop_reply_without_retry_the_command_ran_but_the_client_failed(
    connect: Connect, proxy: FaultProxy, direct: redis.Redis
) -> None:
    client, key = connect(retries=0), fresh_key()
    client.ping()
    proxy.drop_reply(b"INCR")
    with pytest.raises(redis.ConnectionError):
        client.incr(key)
    assert direct.get(key) == b"1"
    assert proxy.dropped == 1
    assert client.incr(key) == 2  # one drop only: the next INCR goes through
    direct.delete(key)


def test_drop_reply_with_a_retry_applies_the_command_twice(
    connect: Connect, proxy: FaultProxy, direct: redis.Redis
) -> None:
    client, key = connect(retries=1), fresh_key()
    proxy.drop_reply(b"INCR")
    assert client.incr(key) == 2
    assert direct.get(key) == b"2"
    assert proxy.dropped == 1
    direct.delete(key)


def test_blackhole_is_silent_until_heal_aborts_it(
    connect: Connect, proxy: FaultProxy, direct: redis.Redis
) -> None:
    client, key = connect(socket_timeout=0.5), fresh_key()
    client.set(key, "v")
    sock = raw_connection(proxy)
    proxy.blackhole()
    assert len(proxy.connections) == 2
    assert all(conn.blackholed for conn in proxy.connections)

    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):  # not a ConnectionError: the peer is just silent
        client.get(key)
    assert time.monotonic() - started >= 0.45
    sock.sendall(b"PING\r\n")
    assert select.select([sock], [], [], 0.2)[0] == []  # no reply, no FIN, no RST

    late = connect(socket_timeout=0.2)  # new connections are accepted, then silent too
    with pytest.raises(redis.TimeoutError):
        late.ping()

    proxy.heal()
    assert proxy.connections == []
    assert select.select([sock], [], [], 2.0)[0] == [sock]
    with pytest.raises(ConnectionResetError):  # heal() aborts what was blackholed
        sock.recv(100)
    sock.close()
    assert connect().get(key) == b"v"
    assert client.get(key) == b"v"  # the old client reconnects
    direct.delete(key)


def test_blackhole_with_a_predicate_silences_only_subscribers(
    connect: Connect, proxy: FaultProxy, direct: redis.Redis
) -> None:
    channel, key = fresh_key(), fresh_key()
    pubsub = connect().pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    assert next_message(pubsub)["type"] == "subscribe"
    assert direct.publish(channel, "before") == 1
    assert next_message(pubsub)["data"] == b"before"
    normal = connect()
    normal.ping()

    proxy.blackhole(lambda conn: b"SUBSCRIBE" in conn.head)
    assert sum(conn.blackholed for conn in proxy.connections) == 1
    assert direct.publish(channel, "during") == 1  # Redis still delivers to the subscriber
    assert pubsub.get_message(timeout=0.3) is None
    assert normal.set(key, "x")
    assert normal.get(key) == b"x"

    # A new connection matches once it has sent SUBSCRIBE.
    late = connect().pubsub()  # type: ignore[no-untyped-call]
    late.subscribe(channel)
    assert late.get_message(timeout=0.3) is None
    assert sum(conn.blackholed for conn in proxy.connections) == 2
    assert normal.get(key) == b"x"
    pubsub.close()
    late.close()
    direct.delete(key)


def test_delay_adds_latency_both_ways_without_holding_up_other_connections(
    connect: Connect, proxy: FaultProxy
) -> None:
    clients = [connect() for _ in range(4)]
    for client in clients:
        client.ping()
    key, big = fresh_key(), os.urandom(300_000)
    clients[0].set(key, big)

    proxy.delay(0.2)
    started = time.monotonic()
    assert clients[0].ping()
    assert time.monotonic() - started >= 0.4  # 0.2 s each way
    started = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        assert all(pool.map(lambda client: client.ping(), clients))
    assert time.monotonic() - started < 0.75  # concurrent, not 4 x 0.4 s
    assert clients[1].get(key) == big  # chunks keep their order

    proxy.delay(0)
    started = time.monotonic()
    assert clients[0].ping()
    assert time.monotonic() - started < 0.1
    clients[0].delete(key)


def test_cut_all_closes_every_connection_and_new_ones_work(
    connect: Connect, proxy: FaultProxy
) -> None:
    plain = connect(retries=0, single_connection_client=True)
    retrying = connect(retries=1, single_connection_client=True)
    pooled = connect()
    for client in (plain, retrying, pooled):
        client.ping()
    assert len(proxy.connections) == 3

    proxy.cut_all()
    assert proxy.connections == []
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    assert retrying.ping()
    assert plain.ping()  # reconnects on its next command
    assert pooled.ping()
    assert len(proxy.connections) == 3


def test_refuse_closes_new_connections_only(connect: Connect, proxy: FaultProxy) -> None:
    before = connect()
    before.ping()
    proxy.refuse()
    client = connect()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert before.ping()  # connections made before refuse() are left alone
    assert len(proxy.connections) == 1
    proxy.refuse(False)
    assert client.ping()


def test_stop_closes_everything_promptly_and_twice(server: EmbeddedRedis) -> None:
    fds_before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()
    proxy = FaultProxy("127.0.0.1", server.port).start()
    client: redis.Redis = redis.Redis.from_url(proxy.url, retry=Retry(NoBackoff(), 0))
    client.ping()
    sock = raw_connection(proxy)
    proxy.blackhole(lambda conn: conn.id == 1)
    proxy.delay(5)
    sock.sendall(b"PING\r\n")  # held by the proxy for 5 s

    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("faultproxy")]
    assert proxy.connections == []
    proxy.stop()
    assert select.select([sock], [], [], 2.0)[0] == [sock]  # aborted, not left hanging
    with pytest.raises(ConnectionResetError):
        sock.recv(100)
    sock.close()
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1.0).close()
    if fds_before:
        assert set(os.listdir("/proc/self/fd")) - fds_before == set()


def test_only_loopback_targets_with_an_explicit_port() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("192.0.2.1", 7000)
    with pytest.raises(ValueError, match="port"), fault_proxy("redis://127.0.0.1/0"):
        pass
    FaultProxy("localhost", 7000).stop()  # never started: stop() just releases the sockets
