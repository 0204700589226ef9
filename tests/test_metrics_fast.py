"""The single-process counting of PrometheusObserver (observability/_fast.py): a scrape shows exactly
what prometheus-client's own metric objects (the multiprocess-mode path) would show for the same
events; no increment is lost to threads (counting, dying, scraped meanwhile); a forked child
starts from zero and can count even if its parent forked while holding the collector's lock."""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)
from prometheus_client import metrics as prometheus_metrics

from redis_sessions.maintenance import SweepReport
from redis_sessions.observability import OperationResult
from redis_sessions.observability import metrics as metrics_module
from redis_sessions.observability.metrics import PrometheusObserver

from .test_metrics import Scraped


def result(
    operation: str = "get_session",
    outcome: Any = "ok",
    seconds: float = 3e-5,
    *,
    round_trips: int = 0,
    cache_hit: bool | None = None,
    retries: int = 0,
    error: str | None = None,
) -> OperationResult:
    return OperationResult(operation, outcome, seconds, round_trips, cache_hit, retries, error)


def workload(observer: PrometheusObserver) -> None:
    """Every kind of event, with latencies on and between the bucket bounds."""
    for seconds in (0.000025, 0.00003, 0.0001, 0.002, 0.7, 12.0):
        observer.finish(None, result(seconds=seconds, cache_hit=True))
    observer.finish(None, result(outcome="not_found", round_trips=1, cache_hit=False))
    observer.finish(None, result("create_session", round_trips=1))
    observer.finish(None, result("update_session_context", "conflict", round_trips=1))
    observer.finish(None, result("modify", round_trips=5, cache_hit=True, retries=2))
    observer.finish(None, result("modify", "error", round_trips=1, error="BackendError"))
    observer.finish(None, result("get_session", "invalid", error="InvalidInput"))
    for name, seconds in (("create", 0.0004), ("update", 0.0003), ("create", 0.03)):
        observer.script(name, seconds)
    observer.cache_event("eviction", 3)
    observer.cache_event("invalidation", 1)
    observer.cache_event("flush", 1)
    observer.corrupt("key", "version is not an integer")
    observer.invalidation(0.004)
    observer.invalidation(-0.001)
    observer.listener_reconnect()
    day = dt.timedelta(days=1)
    report = SweepReport(
        scanned=9,
        deleted=4,
        kept=5,
        malformed=0,
        duration_seconds=0.2,
        dry_run=False,
        max_age=day,
        ended_max_age=day,
        now=dt.datetime.now(dt.timezone.utc),
    )
    observer.sweep(report, 2)


def objects_observer(monkeypatch: pytest.MonkeyPatch) -> PrometheusObserver:
    """A PrometheusObserver counting into prometheus-client's metric objects, as it does in
    multiprocess mode (in this process they hold their values in memory)."""
    with monkeypatch.context() as patch:
        patch.setattr(metrics_module, "multiprocess_mode", lambda: True)
        observer = PrometheusObserver(CollectorRegistry())
    assert observer._metrics.fast is None
    return observer


@pytest.fixture(params=[True, False], ids=["created", "no-created"])
def created(request: pytest.FixtureRequest) -> Iterator[bool]:
    """With and without ``_created`` samples (PROMETHEUS_DISABLE_CREATED_SERIES does the same)."""
    before = prometheus_metrics._use_created
    if not request.param:
        disable_created_metrics()
    try:
        yield request.param
    finally:
        (enable_created_metrics if before else disable_created_metrics)()


def without_times(scraped: Scraped) -> dict[Any, float]:
    """The samples, less those that are moments (``_created``, the last sweep's time)."""
    return {
        key: value
        for key, value in scraped.samples.items()
        if "_created" not in key[0] and "timestamp" not in key[0]
    }


def test_a_scrape_shows_what_the_metric_objects_would(
    monkeypatch: pytest.MonkeyPatch, created: bool
) -> None:
    fast = PrometheusObserver(CollectorRegistry())
    assert fast._metrics.fast is not None
    objects = objects_observer(monkeypatch)
    for observer in (fast, objects):
        workload(observer)
    got_text = generate_latest(fast.registry).decode()
    want_text = generate_latest(objects.registry).decode()
    got, want = Scraped(got_text), Scraped(want_text)
    assert without_times(got) == without_times(want)
    # the same _created series, each a moment of this test
    assert {k for k in got.samples if "_created" in k[0]} == {
        k for k in want.samples if "_created" in k[0]
    }
    now = time.time()
    moments = [v for k, v in got.samples.items() if "_created" in k[0]]
    assert all(now - 60 < v <= now for v in moments)
    assert bool(moments) is created
    # the same families, in the same order, with the same help and type lines
    assert [line for line in got_text.splitlines() if line.startswith("#")] == [
        line for line in want_text.splitlines() if line.startswith("#")
    ]
    # a value the workload implies (not only "equal to the other path")
    assert got("redis_sessions_operations_total", operation="get_session", outcome="ok") == 6
    assert got("redis_sessions_version_conflicts_total", operation="modify") == 2
    assert got("redis_sessions_version_conflicts_total", operation="update_session_context") == 1
    bucket = "redis_sessions_operation_duration_seconds_bucket"
    assert got(bucket, operation="get_session", le="2.5e-05") == 1  # le: the bound is in
    assert got(bucket, operation="get_session", le="5e-05") == 4  # 3e-05 twice (+ not_found)


def test_no_increment_is_lost_to_threads_counting_dying_and_scraped() -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        registry = CollectorRegistry()
        observer = PrometheusObserver(registry)
        per_thread, rounds, width = 3000, 3, 6
        stop = threading.Event()
        scrapes: list[float] = []

        def count() -> None:
            hit = result(cache_hit=True)
            for _ in range(per_thread):
                observer.finish(None, hit)
                observer.script("create", 0.0004)

        def scrape() -> None:  # scrapes while the threads count: each total only grows
            while not stop.is_set():
                got = Scraped(generate_latest(registry).decode())
                scrapes.append(got("redis_sessions_cache_hits_total"))

        scraper = threading.Thread(target=scrape)
        scraper.start()
        for _ in range(rounds):  # threads that end, then new ones: the dead ones' counts stay
            threads = [threading.Thread(target=count) for _ in range(width)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        stop.set()
        scraper.join()
    finally:
        sys.setswitchinterval(interval)
    expected = per_thread * rounds * width
    for _ in range(2):  # twice: a dead thread's table is added once, for good
        got = Scraped(generate_latest(registry).decode())
        assert got("redis_sessions_operations_total", operation="get_session", outcome="ok") == (
            expected
        )
        assert got("redis_sessions_cache_hits_total") == expected
        count = "redis_sessions_operation_duration_seconds_count"
        assert got(count, operation="get_session") == expected
        assert got("redis_sessions_script_duration_seconds_count", script="create") == expected
    assert scrapes and scrapes == sorted(scrapes)
    assert len(observer._metrics.fast._tables) <= 1  # type: ignore[union-attr]  # living only


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_counts_from_zero_even_if_forked_under_the_lock() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    for _ in range(3):
        observer.finish(None, result(cache_hit=True))
    counts = observer._metrics.fast
    assert counts is not None
    read, write = os.pipe()
    counts._lock.acquire()  # another thread of the parent registering its table at the fork
    try:
        pid = os.fork()
        if pid == 0:  # the child: count from a new thread (it takes the lock), scrape, report
            try:
                worker = threading.Thread(
                    target=observer.finish, args=(None, result(cache_hit=False))
                )
                worker.start()
                worker.join(10)
                observer.cache_event("eviction", 2)
                got = Scraped(generate_latest(registry).decode())
                values = (
                    got("redis_sessions_operations_total", operation="get_session", outcome="ok"),
                    got("redis_sessions_cache_hits_total"),
                    got("redis_sessions_cache_misses_total"),
                    got("redis_sessions_cache_evictions_total"),
                )
                os.write(write, repr(values).encode())
            finally:
                os._exit(0)
    finally:
        counts._lock.release()
    os.close(write)
    deadline = dt.datetime.now() + dt.timedelta(seconds=30)
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        assert dt.datetime.now() < deadline, "the child hangs (the lock held at the fork?)"
        time.sleep(0.05)
    child = os.read(read, 1000).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert child == repr((1.0, 0.0, 1.0, 2.0))  # its own counts only
    got = Scraped(generate_latest(registry).decode())  # the parent's are untouched
    assert got("redis_sessions_operations_total", operation="get_session", outcome="ok") == 3
    assert got("redis_sessions_cache_misses_total") == 0
    assert got("redis_sessions_cache_evictions_total") == 0
