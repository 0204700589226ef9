"""The store's observer hook (``observer=``): what each operation reports, on every backend and both
stores. Metrics, traces and logs built on it are tested in test_metrics, test_tracing, test_logs."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from redis_sessions import (
    CorruptData,
    InvalidInput,
    SessionNotFound,
    SessionStore,
    StoreConfig,
    VersionConflict,
)
from redis_sessions._observe import needs_start, start_does_nothing
from redis_sessions.maintenance import SweepReport
from redis_sessions.observability import (
    LoggingObserver,
    ObserverBase,
    Observers,
    OperationResult,
    default_observer,
    set_default_observer,
)

from .conftest import Clock, StoreFactory

MISSING = "00000000-0000-4000-8000-000000000000"


class Recorder(ObserverBase):
    """Keeps everything it is told, in order."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.results: list[OperationResult] = []
        self.scripts: list[str] = []
        self.cache: list[str] = []
        self.corrupt_keys: list[str] = []
        self.lags: list[float] = []
        self.reconnects = 0
        self.sweeps: list[tuple[SweepReport, int]] = []

    def start(self, operation: str) -> object:
        self.started.append(operation)
        return len(self.started)

    def finish(self, handle: object, result: OperationResult) -> None:
        assert handle == len(self.started)  # handed back what start returned
        self.results.append(result)

    def script(self, name: str, seconds: float) -> None:
        assert 0 < seconds < 10
        self.scripts.append(name)

    def cache_event(self, kind: Any, count: int) -> None:
        self.cache.extend([kind] * count)

    def corrupt(self, key: str, problem: str) -> None:
        self.corrupt_keys.append(key)

    def invalidation(self, lag_seconds: float) -> None:
        self.lags.append(lag_seconds)

    def listener_reconnect(self) -> None:
        self.reconnects += 1

    def sweep(self, report: SweepReport, batches: int) -> None:
        self.sweeps.append((report, batches))

    def last(self) -> OperationResult:
        return self.results[-1]


def summary(result: OperationResult) -> tuple[str, str, int, bool | None, int, str | None]:
    return (
        result.operation,
        result.outcome,
        result.round_trips,
        result.cache_hit,
        result.retries,
        result.error,
    )


def test_each_operation_reports_name_outcome_round_trips_and_cache_hit(
    store_factory: StoreFactory,
) -> None:
    seen = Recorder()
    store = store_factory(observer=seen)
    sid = store.create_session("alice")
    assert summary(seen.last()) == ("create_session", "ok", 1, None, 0, None)
    assert seen.scripts == ["create"]
    store.get_session(sid, "alice")  # the create cached the record it made
    assert summary(seen.last()) == ("get_session", "ok", 0, True, 0, None)
    assert store.get_session(MISSING, "alice") is None
    assert summary(seen.last()) == ("get_session", "not_found", 1, False, 0, None)
    store.get_session_context(sid, "alice", history=5)  # one script, no cache read
    assert summary(seen.last()) == ("get_session_context", "ok", 1, None, 0, None)
    assert store.session_exists(sid, "bob") is False  # another user's: not found
    assert seen.last().outcome == "not_found"
    with pytest.raises(InvalidInput):
        store.get_session("not-a-uuid", "alice")
    assert summary(seen.last()) == ("get_session", "invalid", 0, None, 0, "InvalidInput")
    with pytest.raises(SessionNotFound):
        store.append_message(MISSING, "alice", "user", "hi")
    assert summary(seen.last())[:3] == ("append_message", "not_found", 1)
    context = store.get_session_context(sid, "alice")
    assert context is not None
    with pytest.raises(VersionConflict):
        store.update_session_context(sid, "alice", context, expected_version=99)
    assert summary(seen.last())[:2] == ("update_session_context", "conflict")
    assert seen.last().error == "VersionConflict"
    assert store.delete_session(sid, "alice") is True
    assert summary(seen.last()) == ("delete_session", "ok", 1, None, 0, None)
    assert seen.started == [r.operation for r in seen.results]  # every start has its finish
    assert all(r.seconds > 0 for r in seen.results)


def test_modify_reports_its_retries(store_factory: StoreFactory) -> None:
    seen = Recorder()
    store = store_factory(observer=seen)
    other_store = SessionStore(  # another process's store, unobserved, on the same prefix
        store.client, config=StoreConfig(key_prefix=store.config.key_prefix, cache_size=0)
    )
    sid = store.create_session("alice")
    calls = 0

    def change(ctx: Any) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:  # another process writes first, twice
            fresh = other_store.get_session_context(sid, "alice")
            assert fresh is not None
            fresh.high_cost_calls += 10
            other_store.update_session_context(sid, "alice", fresh)
        ctx.high_cost_calls += 1

    try:
        result = store.modify(sid, "alice", change)
    finally:
        other_store.close()
    assert result.high_cost_calls == 21 and calls == 3
    done = seen.last()
    assert (done.operation, done.outcome, done.retries) == ("modify", "ok", 2)
    assert done.cache_hit is True  # the first attempt read the cached record


def test_a_sweep_reports_its_report_and_slot_batches(
    store_factory: StoreFactory, clock: Clock
) -> None:
    seen = Recorder()
    store = store_factory(observer=seen, clock=clock)
    for user in ("alice", "bob", "carol"):
        store.create_session(user)
    clock.advance(days=31)
    report = store.cleanup_expired_sessions()
    assert report.deleted == 3
    ((told, batches),) = seen.sweeps
    assert told == report
    # one sweep script per slot holding expired sessions: the users' slots, as the store knows them
    slots = {store.keyspace.user_slot(user) for user in ("alice", "bob", "carol")}
    assert batches == len(slots) == seen.scripts.count("sweep")
    assert seen.last().operation == "cleanup_expired_sessions"
    assert seen.last().round_trips == 32 + batches  # 16384 slots / 512 per pipeline, then scripts


def test_damage_is_reported_to_the_observer_and_logged_once(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()
    store = store_factory(observer=seen, cache_size=0)
    sid = str(store.create_session("alice"))
    key = store.keyspace.session("alice", sid)
    store.client.hset(key, "version", b"not a number")
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        for _ in range(3):
            with pytest.raises(CorruptData):
                store.get_session(sid, "alice")
    assert seen.corrupt_keys == [key] * 3  # counted each time
    assert store.stats().undecodable_records == 3
    logged = [r for r in caplog.records if getattr(r, "event", None) == "corrupt_data"]
    assert [r.key for r in logged] == [key]  # type: ignore[attr-defined]  # logged once
    assert b"not a number" not in caplog.text.encode()  # the key, never the content
    assert summary(seen.last())[:2] == ("get_session", "error")


def test_evictions_are_reported(store_factory: StoreFactory) -> None:
    seen = Recorder()
    store = store_factory(observer=seen, cache_size=2)
    sids = [store.create_session("alice") for _ in range(2)]
    for sid in sids:
        store.get_session(sid, "alice")
    assert seen.cache == []
    third = store.create_session("alice")  # enters cold in a full cache: not kept
    assert seen.cache == ["eviction"]
    store.get_session(third, "alice")  # a miss fills the cache: the oldest goes
    assert seen.cache == ["eviction", "eviction"]
    assert summary(seen.last())[:4] == ("get_session", "ok", 1, False)


def test_the_default_observer_observes_stores_made_without_one(
    store_factory: StoreFactory,
) -> None:
    seen, own = Recorder(), Recorder()
    assert default_observer() is None
    set_default_observer(seen)
    try:
        store = store_factory()
        explicit = store_factory(observer=own)
    finally:
        set_default_observer(None)
    unobserved = store_factory()
    store.create_session("alice")
    explicit.create_session("alice")
    unobserved.create_session("alice")
    assert [r.operation for r in seen.results] == ["create_session"]
    assert [r.operation for r in own.results] == ["create_session"]


def test_several_observers_are_each_told_with_their_own_handle(
    store_factory: StoreFactory,
) -> None:
    first, second = Recorder(), Recorder()
    second.started.append("offset")  # its handles differ from the first one's
    store = store_factory(observer=Observers(first, second, LoggingObserver()))
    store.create_session("alice")
    assert [r.operation for r in first.results] == ["create_session"]
    assert [r.operation for r in second.results] == ["create_session"]
    assert first.scripts == second.scripts == ["create"]


class FinishOnly(ObserverBase):
    """Overrides finish alone: its start is ObserverBase's, which does nothing."""

    def __init__(self) -> None:
        self.handles: list[object] = []
        self.operations: list[str] = []

    def finish(self, handle: object, result: OperationResult) -> None:
        self.handles.append(handle)
        self.operations.append(result.operation)


def test_a_start_that_does_nothing_is_left_uncalled_and_an_overridden_one_is_called(
    store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting(self: ObserverBase, operation: str) -> object:
        calls.append(operation)
        return None

    def marked_counting(self: ObserverBase, operation: str) -> object:
        calls.append(operation)
        return None

    assert needs_start(FinishOnly()) is False  # ObserverBase.start is marked
    monkeypatch.setattr(FinishOnly, "start", start_does_nothing(marked_counting))
    quiet = FinishOnly()
    store = store_factory(observer=quiet)
    sid = store.create_session("alice")
    assert store.get_session(sid, "alice") is not None  # a hit
    assert quiet.operations == ["create_session", "get_session"]
    assert quiet.handles == [None, None] and calls == []  # never called
    monkeypatch.setattr(FinishOnly, "start", counting)  # an override: called
    counted = FinishOnly()
    store_factory(observer=counted).create_session("alice")
    assert calls == ["create_session"] and counted.operations == ["create_session"]


def test_no_result_carries_an_id(store_factory: StoreFactory) -> None:
    seen = Recorder()
    store = store_factory(observer=seen)
    user = f"user-{uuid.uuid4().hex}"
    sid = store.create_session(user)
    store.append_message(sid, user, "user", "hello")
    store.get_messages(sid, user)
    text = repr(seen.results) + repr(seen.scripts)
    assert user not in text and str(sid) not in text


def test_an_async_operation_cancelled_in_flight_is_reported_as_cancelled(
    real_server: Any,
) -> None:
    import asyncio

    from redis_sessions import AsyncSessionStore

    seen = Recorder()

    async def main() -> None:
        store = AsyncSessionStore.from_url(
            real_server.url,
            config=StoreConfig(key_prefix=f"cx{uuid.uuid4().hex[:8]}", invalidation=False),
            observer=seen,
        )
        try:
            sid = await store.create_session("alice")
            entered = asyncio.Event()

            async def slow(ctx: Any) -> None:  # modify's function, awaited by the driver
                entered.set()
                await asyncio.sleep(10)

            task = asyncio.create_task(store.modify(sid, "alice", slow))
            await entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await store.aclose()

    asyncio.run(main())
    done = seen.last()
    assert (done.operation, done.outcome, done.error) == ("modify", "cancelled", "GeneratorExit")
    assert seen.started == [r.operation for r in seen.results]
