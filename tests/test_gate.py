"""The gate to a store's connections (``_gate``): first come, first served, a clear StoreBusy
after the wait allowed, no place lost to a timeout or a cancellation; and how stores set it up."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from redis_sessions import AsyncSessionStore, SessionStore, StoreBusy, StoreConfig
from redis_sessions._gate import AsyncGate, Gate, Places, gate_size
from redis_sessions.exceptions import InvalidInput, StoreUnavailable

from .backends import all_backends
from .conftest import server_for
from .faultproxy import fault_proxy


def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


# ---------------------------------------------------------------- the bookkeeping


def test_places_are_taken_handed_over_and_withdrawn() -> None:
    places: Places[str] = Places(2, 1.0)
    assert places.take() and places.take()
    assert not places.take()
    places.waiters.extend(["first", "second"])
    assert places.give_back() == "first"  # handed over: never free in between
    assert places.free == 0
    assert places.withdraw("second") and not places.withdraw("second")
    assert places.give_back() is None and places.free == 1
    places.waiters.append("late")
    assert not places.take()  # a free place, but someone waits for it already


def test_a_gate_has_at_least_one_place() -> None:
    with pytest.raises(ValueError, match="at least one place"):
        Places(0, 1.0)


@pytest.mark.parametrize(
    ("pool", "listening", "size"),
    [
        pytest.param(redis.ConnectionPool(max_connections=64), True, 63, id="listening"),
        pytest.param(redis.ConnectionPool(max_connections=64), False, 64, id="not-listening"),
        pytest.param(redis.ConnectionPool(max_connections=1), True, 1, id="one"),
        pytest.param(redis.ConnectionPool(max_connections=2**31), True, None, id="unbounded"),
        pytest.param(None, True, None, id="no-pool"),
    ],
)
def test_the_size_of_a_gate_follows_the_pool(pool: Any, listening: bool, size: int | None) -> None:
    assert gate_size(pool, listening=listening) == size


# ---------------------------------------------------------------- threads


def test_a_place_goes_to_the_oldest_waiter_not_to_a_caller_coming_back() -> None:
    gate = Gate(1, timeout=5.0)
    assert gate.try_enter()
    served: list[str] = []

    def waiter(name: str) -> None:
        gate.wait()
        served.append(name)
        gate.leave()

    first = threading.Thread(target=waiter, args=("first",))
    first.start()
    _until(lambda: len(gate._places.waiters) == 1)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    _until(lambda: len(gate._places.waiters) == 2)
    gate.leave()
    assert not gate.try_enter()  # the place went to "first": coming back, this caller queues
    first.join()
    second.join()
    assert served == ["first", "second"]
    assert gate.try_enter()  # and it is free once nobody waits


def test_a_waiter_that_waits_out_its_time_is_busy_and_leaves_the_line() -> None:
    gate = Gate(2, timeout=0.1)
    assert gate.try_enter() and gate.try_enter()
    started = time.monotonic()
    with pytest.raises(StoreBusy, match=r"within 0\.1 s: all 2 of the store's connections"):
        gate.wait()
    assert 0.09 < time.monotonic() - started < 2
    assert not gate._places.waiters
    gate.leave()
    assert gate._places.free == 1  # not handed to the one that gave up


def test_store_busy_is_store_unavailable() -> None:
    assert issubclass(StoreBusy, StoreUnavailable)


# ---------------------------------------------------------------- asyncio tasks


def test_tasks_are_served_in_the_order_they_came() -> None:
    async def main() -> list[str]:
        gate = AsyncGate(1, timeout=5.0)
        assert gate.try_enter()
        served: list[str] = []

        async def waiter(name: str) -> None:
            await gate.wait()
            served.append(name)
            await asyncio.sleep(0)
            gate.leave()

        tasks = [asyncio.ensure_future(waiter(name)) for name in ("first", "second", "third")]
        await asyncio.sleep(0.01)
        gate.leave()
        assert not gate.try_enter()  # handed to "first", not taken back
        await asyncio.gather(*tasks)
        assert gate.try_enter()
        return served

    assert asyncio.run(main()) == ["first", "second", "third"]


def test_a_task_that_waits_out_its_time_is_busy_and_leaves_the_line() -> None:
    async def main() -> None:
        gate = AsyncGate(1, timeout=0.05)
        assert gate.try_enter()
        with pytest.raises(StoreBusy, match=r"within 0\.05 s: all 1 of"):
            await gate.wait()
        assert not gate._places.waiters
        gate.leave()
        assert gate._places.free == 1

    asyncio.run(main())


def test_a_cancelled_waiter_takes_no_place_with_it() -> None:
    async def main() -> None:
        gate = AsyncGate(1, timeout=5.0)
        assert gate.try_enter()
        task = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not gate._places.waiters
        gate.leave()
        assert gate._places.free == 1

    asyncio.run(main())


def test_a_waiter_cancelled_once_handed_a_place_passes_it_on() -> None:
    async def main() -> None:
        gate = AsyncGate(1, timeout=5.0)
        assert gate.try_enter()
        cancelled = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0.01)
        patient = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0.01)
        gate.leave()  # handed to the first waiter, which is cancelled before it runs
        cancelled.cancel()
        try:
            await cancelled
        except asyncio.CancelledError:
            pass  # it passed the place on
        else:  # Python < 3.12's wait_for lets a result win over a late cancellation
            gate.leave()
        await asyncio.wait_for(patient, 1.0)  # either way the place went on to the next in line
        gate.leave()
        assert gate._places.free == 1

    asyncio.run(main())


# ---------------------------------------------------------------- stores


@pytest.fixture
def url(real_servers: dict[str, Any]) -> str:
    return server_for(next(b for b in all_backends() if b.real), real_servers).url


def _config(**options: Any) -> StoreConfig:
    return StoreConfig(key_prefix=f"gate{uuid.uuid4().hex[:8]}", **options)


@pytest.mark.parametrize("store_class", [SessionStore, AsyncSessionStore], ids=["sync", "async"])
def test_from_url_gates_max_connections_on_a_plain_pool_with_two_more(
    url: str, store_class: Any
) -> None:
    store = store_class.from_url(url, config=_config(), max_connections=7, timeout=1.5)
    pool = store.client.connection_pool
    assert type(pool).__name__ == "ConnectionPool"  # the gate waits; the pool never has to
    assert pool.max_connections == 9  # the listener's connection and close's
    assert store._gate.size == 7
    assert store._gate._places.timeout == 1.5
    if store_class is SessionStore:
        store.close()
    else:
        asyncio.run(store.aclose())


@pytest.mark.parametrize("size", [0, -1, 2.5, None])
def test_from_url_refuses_a_max_connections_below_one(url: str, size: Any) -> None:
    with pytest.raises(InvalidInput, match="max_connections must be an integer of at least 1"):
        SessionStore.from_url(url, config=_config(), max_connections=size)


def test_a_store_on_a_client_of_its_own_pool_leaves_the_listener_a_connection(url: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=10, timeout=0.7)
    client = redis.Redis(connection_pool=pool)
    store = SessionStore(client, config=_config())
    assert store._gate is not None
    assert (store._gate.size, store._gate._places.timeout) == (9, 0.7)
    quiet = SessionStore(client, config=_config(invalidation=False))
    assert quiet._gate is not None and quiet._gate.size == 10
    store.close()
    quiet.close()
    client.close()


def test_after_a_fork_every_place_is_free(url: str) -> None:
    store = SessionStore.from_url(url, config=_config(), max_connections=2)
    assert store._gate is not None
    assert store._gate.try_enter() and store._gate.try_enter()  # held by threads at the fork
    store._forked()  # what os.register_at_fork runs in the child
    assert store._gate.size == 2 and store._gate._places.free == 2
    store.close()


def test_a_call_behind_a_slow_one_is_busy_and_the_slow_one_completes(url: str) -> None:
    """Through a proxy that delays every reply: the one connection stays in use past the wait
    allowed, so the call queued behind it raises StoreBusy, having sent nothing."""
    with fault_proxy(url) as proxy:
        store = SessionStore.from_url(
            proxy.url, config=_config(invalidation=False), max_connections=1, timeout=0.2
        )
        try:
            sid = store.create_session("alice")
            proxy.delay(0.6)
            slow: list[Any] = []
            thread = threading.Thread(
                target=lambda: slow.append(store.append_message(sid, "alice", "user", "slow"))
            )
            thread.start()
            _until(lambda: store._gate is not None and store._gate._places.free == 0)
            with pytest.raises(StoreBusy):
                store.append_message(sid, "alice", "user", "never sent")
            thread.join()
            proxy.delay(0)
            assert slow == [1]
            assert [m.text for m in store.get_messages(sid, "alice")] == ["slow"]
        finally:
            store.close()
