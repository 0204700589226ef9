"""Prometheus metrics of the store (needs the ``metrics`` extra: ``prometheus-client``).

``PrometheusObserver(registry)`` counts what a store does into ``registry`` (prometheus-client's
default one unless told); :data:`METRICS` lists every metric with its labels and meaning (the
README's table). No label carries a user or session id: labels are operation names, outcomes and
script names, all from fixed sets.

Exposing them: :func:`render_latest` (bytes and content type, for any web framework),
:func:`metrics_app` (an ASGI app to mount at ``/metrics``), :func:`start_metrics_server` (a thread
serving ``/metrics`` on a port, for workers). Each reads prometheus-client's multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``) when it is set, so that a scrape of any one worker process of a
multi-process server (gunicorn, uvicorn ``--workers``) or of an RQ worker (which forks a process per
job) reports all of them. The variable must be set before ``prometheus_client`` is first imported,
that is, before this module is (see prometheus-client's documentation, "Multiprocess Mode").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_asgi_app,
    multiprocess,
    start_http_server,
)

from .._observe import OUTCOMES, CacheEvent, OperationResult
from ._base import ObserverBase

if TYPE_CHECKING:
    from ..maintenance import SweepReport

__all__ = [
    "LATENCY_BUCKETS",
    "METRICS",
    "MetricInfo",
    "PrometheusObserver",
    "metrics_app",
    "metrics_registry",
    "render_latest",
    "start_metrics_server",
]

#: Seconds: from a cache hit on loopback (tens of µs) to an operation timing out (seconds).
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Seconds a sweep takes: a tenth of a second (nothing expired) to many minutes.
SWEEP_BUCKETS: Final[tuple[float, ...]] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Seconds from an invalidation's publication to its receipt (1 s is the store's flush threshold).
LAG_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class MetricInfo(NamedTuple):
    """One metric the store exports: its full name (as scraped, without ``_bucket`` and the like),
    type, labels and meaning."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


#: Every metric of :class:`PrometheusObserver`, in the README's order.
METRICS: Final[tuple[MetricInfo, ...]] = (
    MetricInfo(
        "redis_sessions_operations_total",
        "counter",
        ("operation", "outcome"),
        "Store operations, by method name and outcome (" + ", ".join(OUTCOMES) + ").",
    ),
    MetricInfo(
        "redis_sessions_operation_duration_seconds",
        "histogram",
        ("operation",),
        "Time of one store operation, cache hits included.",
    ),
    MetricInfo(
        "redis_sessions_round_trips_total",
        "counter",
        ("operation",),
        "Requests sent to Redis (scripts, commands, pipelines, SCAN steps) by store operations.",
    ),
    MetricInfo(
        "redis_sessions_cache_hits_total",
        "counter",
        (),
        "Reads served from the in-process cache.",
    ),
    MetricInfo(
        "redis_sessions_cache_misses_total",
        "counter",
        (),
        "Reads the serving cache did not hold (they went to Redis).",
    ),
    MetricInfo(
        "redis_sessions_cache_evictions_total",
        "counter",
        (),
        "Entries the full cache pushed out (least recently used).",
    ),
    MetricInfo(
        "redis_sessions_cache_invalidations_total",
        "counter",
        (),
        "Writes of other processes announced to this one (their entries evicted).",
    ),
    MetricInfo(
        "redis_sessions_cache_flushes_total",
        "counter",
        (),
        "Times the whole cache was emptied (the invalidation link dropped or fell behind).",
    ),
    MetricInfo(
        "redis_sessions_version_conflicts_total",
        "counter",
        ("operation",),
        "Writes refused because another writer got there first (modify: each retry counts).",
    ),
    MetricInfo(
        "redis_sessions_modify_retries_total",
        "counter",
        (),
        "Attempts modify started again after a version conflict.",
    ),
    MetricInfo(
        "redis_sessions_corrupt_records_total",
        "counter",
        (),
        "Damaged data met (undecodable records, keys of the wrong type, bad messages).",
    ),
    MetricInfo(
        "redis_sessions_script_duration_seconds",
        "histogram",
        ("script",),
        "Round trip of one Lua script, by script name (its file in lua/).",
    ),
    MetricInfo(
        "redis_sessions_sweeps_total",
        "counter",
        (),
        "Expiry sweeps completed (dry runs not counted).",
    ),
    MetricInfo(
        "redis_sessions_sweep_deleted_sessions_total",
        "counter",
        (),
        "Sessions the sweeps deleted.",
    ),
    MetricInfo(
        "redis_sessions_sweep_duration_seconds",
        "histogram",
        (),
        "Time of one sweep.",
    ),
    MetricInfo(
        "redis_sessions_last_sweep_timestamp_seconds",
        "gauge",
        (),
        "When the last sweep ended (Unix time; the newest over all processes).",
    ),
    MetricInfo(
        "redis_sessions_invalidation_lag_seconds",
        "histogram",
        (),
        "Time from a write's announcement (publish) to its receipt by this process.",
    ),
    MetricInfo(
        "redis_sessions_listener_reconnects_total",
        "counter",
        (),
        "Times the invalidation link was lost and made anew.",
    ),
)


def _short(name: str, kind: str) -> str:
    """The name prometheus-client wants: counters without their ``_total``."""
    return name.removesuffix("_total") if kind == "counter" else name


class _Metrics:
    """The metric objects of one registry (made once per registry: see PrometheusObserver)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        made: dict[str, Any] = {}
        for info in METRICS:
            name = _short(info.name, info.kind)
            if info.kind == "counter":
                made[info.name] = Counter(name, info.help, info.labels, registry=registry)
            elif info.kind == "gauge":
                made[info.name] = Gauge(
                    name, info.help, info.labels, registry=registry, multiprocess_mode="max"
                )
            else:
                buckets = {
                    "redis_sessions_sweep_duration_seconds": SWEEP_BUCKETS,
                    "redis_sessions_invalidation_lag_seconds": LAG_BUCKETS,
                }.get(info.name, LATENCY_BUCKETS)
                made[info.name] = Histogram(
                    name, info.help, info.labels, registry=registry, buckets=buckets
                )
        self.operations: Counter = made["redis_sessions_operations_total"]
        self.duration: Histogram = made["redis_sessions_operation_duration_seconds"]
        self.round_trips: Counter = made["redis_sessions_round_trips_total"]
        self.hits: Counter = made["redis_sessions_cache_hits_total"]
        self.misses: Counter = made["redis_sessions_cache_misses_total"]
        self.cache: dict[str, Counter] = {
            "eviction": made["redis_sessions_cache_evictions_total"],
            "invalidation": made["redis_sessions_cache_invalidations_total"],
            "flush": made["redis_sessions_cache_flushes_total"],
        }
        self.conflicts: Counter = made["redis_sessions_version_conflicts_total"]
        self.retries: Counter = made["redis_sessions_modify_retries_total"]
        self.corrupt: Counter = made["redis_sessions_corrupt_records_total"]
        self.scripts: Histogram = made["redis_sessions_script_duration_seconds"]
        self.sweeps: Counter = made["redis_sessions_sweeps_total"]
        self.swept: Counter = made["redis_sessions_sweep_deleted_sessions_total"]
        self.sweep_duration: Histogram = made["redis_sessions_sweep_duration_seconds"]
        self.last_sweep: Gauge = made["redis_sessions_last_sweep_timestamp_seconds"]
        self.lag: Histogram = made["redis_sessions_invalidation_lag_seconds"]
        self.reconnects: Counter = made["redis_sessions_listener_reconnects_total"]
        # label children, made once: labels() costs a lock and a dict lookup per call
        self._by_operation: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._by_script: dict[str, Any] = {}

    def operation(self, name: str, outcome: str) -> tuple[Any, Any, Any]:
        """(operations counter, duration histogram, round trips counter) of one operation
        ending with ``outcome``."""
        key = (name, outcome)
        found = self._by_operation.get(key)
        if found is None:
            found = (
                self.operations.labels(name, outcome),
                self.duration.labels(name),
                self.round_trips.labels(name),
            )
            self._by_operation[key] = found
        return found

    def script(self, name: str) -> Any:
        found = self._by_script.get(name)
        if found is None:
            found = self._by_script[name] = self.scripts.labels(name)
        return found


_made: dict[int, tuple[CollectorRegistry, _Metrics]] = {}
_made_lock = threading.Lock()


def _metrics_of(registry: CollectorRegistry) -> _Metrics:
    with _made_lock:
        found = _made.get(id(registry))
        if found is None or found[0] is not registry:
            found = _made[id(registry)] = (registry, _Metrics(registry))
        return found[1]


class PrometheusObserver(ObserverBase):
    """Counts what the stores observed by it do into ``registry`` (prometheus-client's default
    ``REGISTRY`` unless given). Several observers, and several stores, may share a registry: its
    metrics are registered once. See :data:`METRICS`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else REGISTRY
        self._metrics = _metrics_of(self.registry)

    def finish(self, handle: object, result: OperationResult) -> None:
        """Count the operation, its outcome, latency, round trips, cache read and conflicts."""
        metrics, name = self._metrics, result.operation
        count, duration, round_trips = metrics.operation(name, result.outcome)
        count.inc()
        duration.observe(result.seconds)
        if result.round_trips:
            round_trips.inc(result.round_trips)
        if result.cache_hit is not None:
            (metrics.hits if result.cache_hit else metrics.misses).inc()
        conflicts = result.retries + (result.outcome == "conflict")
        if conflicts:
            metrics.conflicts.labels(name).inc(conflicts)
        if result.retries:
            metrics.retries.inc(result.retries)

    def script(self, name: str, seconds: float) -> None:
        """Observe one script's latency."""
        self._metrics.script(name).observe(seconds)

    def cache_event(self, kind: CacheEvent, count: int) -> None:
        """Count cache evictions, invalidations received and flushes."""
        self._metrics.cache[kind].inc(count)

    def corrupt(self, key: str, problem: str) -> None:
        """Count damage met (the key is not a label: it is logged instead)."""
        self._metrics.corrupt.inc()

    def invalidation(self, lag_seconds: float) -> None:
        """Observe one invalidation's lag (a negative one, from clock skew, counts as 0)."""
        self._metrics.lag.observe(max(lag_seconds, 0.0))

    def listener_reconnect(self) -> None:
        """Count a lost invalidation link."""
        self._metrics.reconnects.inc()

    def sweep(self, report: SweepReport, batches: int) -> None:
        """Count a sweep (not a dry run), what it deleted, and when it ended."""
        if report.dry_run:
            return
        metrics = self._metrics
        metrics.sweeps.inc()
        metrics.swept.inc(report.deleted)
        metrics.sweep_duration.observe(report.duration_seconds)
        metrics.last_sweep.set(time.time())


def metrics_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """What a scrape should read: ``registry`` if given; else, in multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set), a registry collecting every process's metrics from that
    directory; else prometheus-client's default registry."""
    if registry is not None:
        return registry
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected, path=directory)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


def render_latest(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """(body, content type) of a scrape of :func:`metrics_registry` (``registry``), in
    Prometheus's text format, for a ``/metrics`` route of any web framework."""
    return generate_latest(metrics_registry(registry)), CONTENT_TYPE_LATEST


def metrics_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app serving a scrape of :func:`metrics_registry` (``registry``): mount it at
    ``/metrics`` (FastAPI/Starlette ``app.mount``, Litestar ``@asgi("/metrics", is_mount=True)``)."""
    app: Callable[..., Any] = make_asgi_app(metrics_registry(registry))
    return app


def start_metrics_server(
    port: int, registry: CollectorRegistry | None = None, *, addr: str = "0.0.0.0"
) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` (a scrape of :func:`metrics_registry` (``registry``)) on ``addr:port``
    from a daemon thread; returns (server, thread): ``server.shutdown()`` stops it. ``port=0``
    picks a free port (``server.server_port``)."""
    server, thread = start_http_server(port, addr=addr, registry=metrics_registry(registry))
    return server, thread
