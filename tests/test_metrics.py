"""Prometheus metrics: a scripted workload, then a scrape that must show every documented metric with
the value the workload implies (and what ``stats()`` counted), on every backend and both stores."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from redis_sessions import CorruptData, InvalidInput, SessionStore, StoreConfig, VersionConflict
from redis_sessions.observability.metrics import METRICS, PrometheusObserver

from .conftest import StoreFactory

MISSING = "00000000-0000-4000-8000-000000000000"


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Scraped:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = scrape(text)

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def pump(store: Any, until: Callable[[], bool], within: float = 5.0) -> None:
    """Let the store's listener run (the async one only runs while its loop does) until ``until``."""
    deadline = time.monotonic() + within
    while not until():
        assert time.monotonic() < deadline, "timed out"
        if hasattr(store, "loop"):  # an AsyncSessionStore behind the tests' SyncFacade
            store.loop.run_until_complete(asyncio.sleep(0.01))
        else:
            time.sleep(0.01)


def test_a_scripted_workload_shows_every_metric_with_the_right_values(
    store_factory: StoreFactory, backend: Any
) -> None:
    registry = CollectorRegistry()
    # real clocks: an announcement carries its writer's time, and its lag is measured by it
    store = store_factory(observer=PrometheusObserver(registry), cache_size=2)
    other = SessionStore(  # another process's store: unobserved, no cache, same keys
        store.client, config=StoreConfig(key_prefix=store.config.key_prefix, cache_size=0)
    )
    try:
        a, b = store.create_session("alice"), store.create_session("alice")
        store.get_session(a, "alice")  # hit
        store.get_session(b, "alice")  # hit
        c = store.create_session("alice")  # enters cold in a full cache: evicted at once
        store.get_session(c, "alice")  # miss; filling the cache evicts a
        assert store.get_session(MISSING, "alice") is None  # miss, not found
        with pytest.raises(InvalidInput):
            store.get_session("nope", "alice")
        session = store.get_session(c, "alice")  # hit
        assert session is not None
        with pytest.raises(VersionConflict):
            store.update_session_context(c, "alice", session.context, expected_version=99)
        damaged = other.create_session("bob")
        other.client.hset(other.keyspace.session("bob", str(damaged)), "version", b"x")
        with pytest.raises(CorruptData):
            store.get_session(damaged, "bob")  # miss, then damage
        calls = 0

        def change(ctx: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:  # another process writes first: one conflict, one retry
                fresh = other.get_session_context(a, "alice")
                assert fresh is not None
                other.update_session_context(a, "alice", fresh)
            ctx.high_cost_calls += 1

        store.modify(a, "alice", change)  # first read: a miss (a was evicted); fills: [b, a]
        # other's two writes were announced to store
        pump(store, lambda: store.stats().invalidations_received == 2)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
        report = store.cleanup_expired_sessions(now=later)
        assert report.deleted == 4
        reconnects = 0
        if backend.real:  # cut the listening connection: the listener subscribes anew
            admin: redis.Redis = store.client
            for client in admin.client_list():
                if int(client.get("sub", 0)) > 0:
                    admin.client_kill_filter(_id=client["id"])
            reconnects = 1
            pump(store, lambda: store.stats().link_drops == 1)
    finally:
        other.close()
    stats = store.stats()
    got = Scraped(generate_latest(registry).decode())

    def ops(operation: str, outcome: str) -> float:
        return got("redis_sessions_operations_total", operation=operation, outcome=outcome)

    assert ops("create_session", "ok") == 3
    assert ops("get_session", "ok") == 4
    assert ops("get_session", "not_found") == 1
    assert ops("get_session", "invalid") == 1
    assert ops("get_session", "error") == 1
    assert ops("update_session_context", "conflict") == 1
    assert ops("modify", "ok") == 1
    assert ops("cleanup_expired_sessions", "ok") == 1
    total = sum(
        value
        for (name, _), value in got.samples.items()
        if name == "redis_sessions_operations_total"
    )
    assert total == 13
    count = "redis_sessions_operation_duration_seconds_count"
    assert got(count, operation="get_session") == 7
    assert got("redis_sessions_round_trips_total", operation="create_session") == 3
    assert got("redis_sessions_round_trips_total", operation="get_session") == 3  # the misses
    assert got("redis_sessions_cache_hits_total") == stats.cache_hits == 3
    assert got("redis_sessions_cache_misses_total") == stats.cache_misses == 4
    # c entering a full cache cold, a pushed out by c's fill (later fills find room: the failed
    # update evicted c, the damaged record is evicted when it does not decode)
    assert got("redis_sessions_cache_evictions_total") == 2
    assert got("redis_sessions_cache_invalidations_total") == stats.invalidations_received == 2
    assert got("redis_sessions_invalidation_lag_seconds_count") == 2
    assert got("redis_sessions_invalidation_lag_seconds_sum") < 2  # seconds, not ms
    conflicts = "redis_sessions_version_conflicts_total"
    assert got(conflicts, operation="update_session_context") == 1
    assert got(conflicts, operation="modify") == 1
    assert got("redis_sessions_modify_retries_total") == 1
    assert got("redis_sessions_corrupt_records_total") == stats.undecodable_records == 1
    script = "redis_sessions_script_duration_seconds_count"
    assert got(script, script="create") == 3  # the other store's create is not this one's
    assert got(script, script="sweep") >= 1
    assert got("redis_sessions_sweeps_total") == 1
    assert got("redis_sessions_sweep_deleted_sessions_total") == 4
    assert got("redis_sessions_sweep_duration_seconds_count") == 1
    assert abs(got("redis_sessions_last_sweep_timestamp_seconds") - time.time()) < 60
    assert got("redis_sessions_listener_reconnects_total") == stats.link_drops == reconnects
    assert got("redis_sessions_cache_flushes_total") == stats.cache_flushes
    # every documented metric was scraped, and no other of ours
    sample = {"counter": "", "gauge": "", "histogram": "_count"}
    assert {info.name + sample[info.kind] for info in METRICS} <= got.names()
    ours = {name for name in got.names() if name.startswith("redis_sessions_")}
    documented = {
        info.name + suffix
        for info in METRICS
        for suffix in ("", "_bucket", "_count", "_sum", "_created")
    } | {info.name.removesuffix("_total") + "_created" for info in METRICS}
    assert ours <= documented
