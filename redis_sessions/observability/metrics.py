"""Prometheus metrics of the store (needs the ``metrics`` extra: ``prometheus-client``).

``PrometheusObserver(registry)`` counts what a store does into ``registry`` (prometheus-client's
default one unless told); :data:`METRICS` lists every metric with its labels and meaning (the
README's table). No label carries a user or session id: labels are operation names, outcomes and
script names, all from fixed sets.

In one process, what every operation updates (operations, latency, round trips, cache hits and
misses, conflicts, retries, script latency) is counted in plain per-thread numbers and summed at
each scrape (:mod:`._fast`: a fraction of a µs per operation, where prometheus-client's metric
objects, a lock per update, cost over 2 µs); in multiprocess mode every metric is a
prometheus-client metric object, written to the directory's files. A scrape shows the same either
way.

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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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
    values,
)

from .._observe import CacheEvent, OperationResult
from ._base import ObserverBase
from ._catalog import LAG_BUCKETS, LATENCY_BUCKETS, METRICS, SWEEP_BUCKETS, MetricInfo
from ._fast import FAST_METRICS, FastCounts

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

_BUCKETS = {
    "redis_sessions_sweep_duration_seconds": SWEEP_BUCKETS,
    "redis_sessions_invalidation_lag_seconds": LAG_BUCKETS,
}
_CACHE_EVENTS = {
    "eviction": "redis_sessions_cache_evictions_total",
    "invalidation": "redis_sessions_cache_invalidations_total",
    "flush": "redis_sessions_cache_flushes_total",
}


def multiprocess_mode() -> bool:
    """Whether prometheus-client keeps its values in ``PROMETHEUS_MULTIPROC_DIR``'s files (the
    variable was set when it was imported)."""
    return values.ValueClass is not values.MutexValue


def _objects(registry: CollectorRegistry | None, names: Iterable[str]) -> dict[str, Any]:
    """prometheus-client metric objects of the metrics ``names``, registered in ``registry``
    (None: in none)."""
    made: dict[str, Any] = {}
    for info in METRICS:
        if info.name not in names:
            continue
        if info.kind == "counter":  # prometheus-client wants counters without their _total
            name = info.name.removesuffix("_total")
            made[info.name] = Counter(name, info.help, info.labels, registry=registry)
        elif info.kind == "gauge":
            made[info.name] = Gauge(
                info.name, info.help, info.labels, registry=registry, multiprocess_mode="max"
            )
        else:
            buckets = _BUCKETS.get(info.name, LATENCY_BUCKETS)
            made[info.name] = Histogram(
                info.name, info.help, info.labels, registry=registry, buckets=buckets
            )
    return made


class _Metrics:
    """The metrics of one registry (made once per registry: see PrometheusObserver).

    In one process, a :class:`~._fast.FastCounts` collector counts the hot-path metrics and holds
    the metric objects of the others (it makes them anew in a forked child); in multiprocess
    mode, every metric is a metric object registered in the registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fast: FastCounts | None = None
        if multiprocess_mode():
            self.made = _objects(registry, [info.name for info in METRICS])
        else:
            rare = [info.name for info in METRICS if info.name not in FAST_METRICS]
            self.fast = FastCounts(lambda: _objects(None, rare))
            registry.register(self.fast)
            self.made = self.fast.others  # the same dict, refilled in a forked child
        # label children, made once: labels() costs a lock and a dict lookup per call
        self._by_operation: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._by_script: dict[str, Any] = {}

    def finish(self, handle: object, result: OperationResult) -> None:
        """Count one operation into the metric objects (multiprocess mode)."""
        made, name = self.made, result.operation
        key = (name, result.outcome)
        found = self._by_operation.get(key)
        if found is None:
            found = self._by_operation[key] = (
                made["redis_sessions_operations_total"].labels(name, result.outcome),
                made["redis_sessions_operation_duration_seconds"].labels(name),
                made["redis_sessions_round_trips_total"].labels(name),
            )
        count, duration, round_trips = found
        count.inc()
        duration.observe(result.seconds)
        if result.round_trips:
            round_trips.inc(result.round_trips)
        if result.cache_hit is not None:
            hits = (
                "redis_sessions_cache_hits_total"
                if result.cache_hit
                else "redis_sessions_cache_misses_total"
            )
            made[hits].inc()
        conflicts = result.retries + (result.outcome == "conflict")
        if conflicts:
            made["redis_sessions_version_conflicts_total"].labels(name).inc(conflicts)
        if result.retries:
            made["redis_sessions_modify_retries_total"].inc(result.retries)

    def script(self, name: str, seconds: float) -> None:
        """Observe one script's latency into the metric objects (multiprocess mode)."""
        found = self._by_script.get(name)
        if found is None:
            found = self._by_script[name] = self.made[
                "redis_sessions_script_duration_seconds"
            ].labels(name)
        found.observe(seconds)


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
        self._metrics = metrics = _metrics_of(self.registry)
        # the hot path's two calls go straight to the counting, without a call in between
        counting: Any = metrics.fast if metrics.fast is not None else metrics
        self.finish = counting.finish  # type: ignore[method-assign]
        self.script = counting.script  # type: ignore[method-assign]

    def finish(self, handle: object, result: OperationResult) -> None:
        """Count the operation, its outcome, latency, round trips, cache read and conflicts."""
        (self._metrics.fast or self._metrics).finish(handle, result)  # (see __init__)

    def script(self, name: str, seconds: float) -> None:
        """Observe one script's latency."""
        (self._metrics.fast or self._metrics).script(name, seconds)  # (see __init__)

    def cache_event(self, kind: CacheEvent, count: int) -> None:
        """Count cache evictions, invalidations received and flushes."""
        self._metrics.made[_CACHE_EVENTS[kind]].inc(count)

    def corrupt(self, key: str, problem: str) -> None:
        """Count damage met (the key is not a label: it is logged instead)."""
        self._metrics.made["redis_sessions_corrupt_records_total"].inc()

    def invalidation(self, lag_seconds: float) -> None:
        """Observe one invalidation's lag (a negative one, from clock skew, counts as 0)."""
        self._metrics.made["redis_sessions_invalidation_lag_seconds"].observe(max(lag_seconds, 0.0))

    def listener_reconnect(self) -> None:
        """Count a lost invalidation link."""
        self._metrics.made["redis_sessions_listener_reconnects_total"].inc()

    def sweep(self, report: SweepReport, batches: int) -> None:
        """Count a sweep (not a dry run), what it deleted, and when it ended."""
        if report.dry_run:
            return
        made = self._metrics.made
        made["redis_sessions_sweeps_total"].inc()
        made["redis_sessions_sweep_deleted_sessions_total"].inc(report.deleted)
        made["redis_sessions_sweep_duration_seconds"].observe(report.duration_seconds)
        made["redis_sessions_last_sweep_timestamp_seconds"].set(time.time())


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
