"""More callers than connections: every call waits its turn, none starves, none fails.

redis-py's blocking pools hand a released connection to whoever asks next, and a caller looping
back asks before the one that waited: under sustained load with more threads or tasks than
``max_connections``, a waiter could wait out the pool's timeout and fail with "No connection
available" while Redis answered everything else in microseconds. The store's own gate
(``_gate``) serves waiters first come, first served. These tests run that load on a real server
with a small pool and a short wait, so that a starved caller shows up within seconds (both
failed before the gate: StoreUnavailable "No connection available").
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from typing import Any

import pytest

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig
from redis_sessions.samples import realistic_context

from .backends import all_backends
from .conftest import server_for

CONNECTIONS = 4
WAIT = 0.5  # seconds a call may wait for a connection (client option ``timeout``)
SECONDS = 3.0  # six times WAIT: a starved caller fails well within it


@pytest.fixture
def url(real_servers: dict[str, Any]) -> str:
    """One real server (the pool is the client's, whichever server answers)."""
    return server_for(next(b for b in all_backends() if b.real), real_servers).url


def _prefix() -> str:
    return f"fair{uuid.uuid4().hex[:8]}"


def _contexts(user: str, sid: Any) -> tuple[Any, Any]:
    a = realistic_context(user, str(sid))
    b = realistic_context(user, str(sid))
    b.session_goal = "another goal"
    return a, b


def test_threads_beyond_the_pool_all_get_their_turn(url: str) -> None:
    store = SessionStore.from_url(
        url, config=StoreConfig(key_prefix=_prefix()), max_connections=CONNECTIONS, timeout=WAIT
    )
    workers = 4 * CONNECTIONS
    counts = [0] * workers
    errors: list[BaseException] = []
    stop = threading.Event()
    ready = threading.Barrier(workers + 1)

    def work(i: int) -> None:
        user = f"t{i}"
        try:
            sid = store.create_session(user, initial_context=realistic_context(user))
            turns = itertools.cycle(_contexts(user, sid))
            ready.wait()
            while not stop.is_set():
                assert store.update_session_context(sid, user, next(turns))
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=30)
        time.sleep(SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        store.close()
    assert errors == []
    assert min(counts) > 0, counts  # every thread got its turn, again and again


def test_tasks_beyond_the_pool_all_get_their_turn(url: str) -> None:
    async def main() -> list[int]:
        store = AsyncSessionStore.from_url(
            url,
            config=StoreConfig(key_prefix=_prefix()),
            max_connections=CONNECTIONS,
            timeout=WAIT,
        )
        workers = 8 * CONNECTIONS
        counts = [0] * workers
        stop = asyncio.Event()

        async def work(i: int) -> None:
            user = f"a{i}"
            sid = await store.create_session(user, initial_context=realistic_context(user))
            turns = itertools.cycle(_contexts(user, sid))
            while not stop.is_set():
                assert await store.update_session_context(sid, user, next(turns))
                counts[i] += 1

        async def timer() -> None:
            await asyncio.sleep(SECONDS)
            stop.set()

        try:
            await asyncio.gather(timer(), *(work(i) for i in range(workers)))
        finally:
            stop.set()
            await store.aclose()
        return counts

    counts = asyncio.run(main())  # a task passed over for WAIT raises StoreBusy: gather fails
    assert min(counts) > 0, counts
