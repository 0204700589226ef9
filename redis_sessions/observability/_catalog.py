"""What the store exports to Prometheus: every metric, its labels, meaning and buckets.

Apart from prometheus-client, so that both ways of counting (:mod:`._fast`, one process; the
prometheus-client metric objects of :mod:`.metrics`, multiprocess mode) share one list.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from .._observe import OUTCOMES

__all__ = ["LAG_BUCKETS", "LATENCY_BUCKETS", "METRICS", "SWEEP_BUCKETS", "MetricInfo"]

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
