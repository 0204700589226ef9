"""See the store run: Prometheus metrics, OpenTelemetry traces and structured logs.

The store tells an observer what it does (``SessionStore(..., observer=...)``, or for every store
of the process :func:`set_default_observer`); this package has three:

- :class:`~redis_sessions.observability.metrics.PrometheusObserver` (extra ``metrics``),
- :class:`~redis_sessions.observability.tracing.TracingObserver` (extra ``tracing``),
- :class:`LoggingObserver` (stdlib logging; :class:`JsonFormatter` writes one JSON object a line),

and :class:`Observers` to use several at once. This module imports neither prometheus-client nor
OpenTelemetry; its submodules ``metrics`` and ``tracing`` do.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from .._observe import (
    CacheEvent,
    OperationResult,
    Outcome,
    StoreObserver,
    default_observer,
    set_default_observer,
)
from ._base import ObserverBase, Observers
from .logs import JsonFormatter, LoggingObserver

__all__ = [
    "CacheEvent",
    "JsonFormatter",
    "LoggingObserver",
    "ObserverBase",
    "Observers",
    "OperationResult",
    "Outcome",
    "StoreObserver",
    "default_observer",
    "prepare_multiprocess",
    "serve_worker_metrics",
    "set_default_observer",
]


def prepare_multiprocess(directory: str | None = None) -> str:
    """Turn on prometheus-client's multiprocess mode for this process and the ones it forks:
    ``PROMETHEUS_MULTIPROC_DIR`` is set to ``directory`` (kept when already set; a new temporary
    directory when neither). Returns the directory. Must run before ``prometheus_client`` is
    imported: RuntimeError if it already was without the variable."""
    found = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if found:
        return found
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: "
            "call prepare_multiprocess() first (metrics of forked processes would be lost)"
        )
    chosen = directory or tempfile.mkdtemp(prefix="redis-sessions-metrics-")
    os.makedirs(chosen, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = chosen
    return chosen


def serve_worker_metrics(
    port: int, *, addr: str = "0.0.0.0", also: StoreObserver | None = None
) -> Any:
    """What a worker's ``--metrics-port`` does: multiprocess mode (an RQ worker forks a process per
    job: see :func:`prepare_multiprocess`), every store of the process (and of its forks) observed
    by a PrometheusObserver (:func:`set_default_observer`; with ``also``, e.g. a LoggingObserver,
    by both), and ``/metrics`` served on ``addr:port`` from a thread. Returns the HTTP server
    (``server.shutdown()``)."""
    prepare_multiprocess()
    from .metrics import PrometheusObserver, start_metrics_server

    metrics = PrometheusObserver()
    set_default_observer(metrics if also is None else Observers(metrics, also))
    server, _ = start_metrics_server(port, addr=addr)
    return server
