"""A Redis outage raises StoreUnavailable (with the redis-py error chained); it never reads as
"not found", and a failed write leaves no stale cache entry."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import SessionStore, StoreUnavailable
from redis_sessions.embedded import EmbeddedRedis, free_port

from .backends import Backend
from .operations import CALLS, SID


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_closed_port_raises_store_unavailable(call: Callable[[SessionStore], Any]) -> None:
    with (
        SessionStore.from_url(
            f"redis://127.0.0.1:{free_port()}/0", retry=Retry(NoBackoff(), 0)
        ) as store,
        pytest.raises(StoreUnavailable) as info,
    ):
        call(store)
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_default_retry_gives_up_within_seconds() -> None:
    with SessionStore.from_url(f"redis://127.0.0.1:{free_port()}/0") as store:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get_session(SID, "alice")
        assert time.monotonic() - started < 10  # not minutes of redis-py's own default retries


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_timeout_raises_store_unavailable(silent_server: int) -> None:
    url = f"redis://127.0.0.1:{silent_server}/0"
    store = SessionStore.from_url(url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with store, pytest.raises(StoreUnavailable) as info:
        store.get_session(SID, "alice")
    assert isinstance(info.value.__cause__, redis.TimeoutError)


def test_outage_mid_life_raises_and_failed_write_evicts_cache(real_backend: Backend) -> None:
    assert real_backend.binary is not None
    server = EmbeddedRedis(real_backend.binary).start()
    try:
        store = SessionStore.from_url(server.url, retry=Retry(NoBackoff(), 0))
        cached = store.create_session("alice", initial_context={"session_goal": "cached"})
        uncached = store.create_session("alice")
        store._core.cache.evict(("alice", uncached))
        ctx = store.get_session_context(cached, "alice")
        assert ctx is not None
    finally:
        server.stop()
    with pytest.raises(StoreUnavailable):
        store.get_session(uncached, "alice")
    with pytest.raises(StoreUnavailable):
        store.session_exists(uncached, "alice")
    ctx.session_goal = "changed while Redis was down"
    with pytest.raises(StoreUnavailable):
        store.update_session_context(cached, "alice", ctx)
    assert store._core.cache.peek(("alice", cached)) is None
    with pytest.raises(StoreUnavailable):
        store.get_session_context(cached, "alice")
    store.close()
