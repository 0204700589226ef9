"""The counting of a single-process PrometheusObserver: plain Python numbers on the hot path.

prometheus-client's metric objects take a lock for each ``inc()`` and ``observe()``: a
metrics-observed cache hit paid about 2.2 µs for its five updates. Here each thread counts into
lists of its own (no lock: one writer per list, so no increment is ever lost), and a scrape sums
them (:class:`FastCounts` is a prometheus-client collector, ``registry.register(...)``): the same
families, names, labels, buckets and ``_created`` samples as the metric objects would show. The
rare events (cache evictions, invalidations, sweeps...) stay on prometheus-client's metric objects,
collected through this collector so that the families keep :data:`METRICS`' order.

Only for one process: prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) reads
what every process wrote to its files, and these numbers are in no file; :mod:`.metrics` uses
prometheus-client's metric objects there. A forked child starts from zero (its parent's counts
are its parent's to report): see :func:`_after_fork`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .._observe import OUTCOMES, OperationResult
from ._catalog import LATENCY_BUCKETS, METRICS, MetricInfo

__all__ = ["FAST_METRICS", "FastCounts"]

# What one thread counts of one operation that ended with one outcome (a narrow row): [duration
# buckets..., duration sum, round trips, cache hits, cache misses, modify retries]; the bucket
# counts add up to the count. A scrape adds every thread's narrow rows, then makes one wide row
# per operation: [duration buckets..., count by outcome..., duration sum, round trips, cache hits,
# cache misses, modify retries]. An operation's version conflicts are its conflict outcomes plus
# its retries.
_NARROW_SUM: Final = len(LATENCY_BUCKETS) + 1
_FIRST_BUCKET: Final = LATENCY_BUCKETS[0]
_NARROW_TRIPS: Final = _NARROW_SUM + 1
_NARROW_HITS: Final = _NARROW_SUM + 2
_NARROW_MISSES: Final = _NARROW_SUM + 3
_NARROW_RETRIES: Final = _NARROW_SUM + 4
_NARROW_WIDTH: Final = _NARROW_SUM + 5
_OUTCOME: Final[dict[str, int]] = {
    outcome: len(LATENCY_BUCKETS) + 1 + i for i, outcome in enumerate(OUTCOMES)
}
_CONFLICT: Final = _OUTCOME["conflict"]
_SUM: Final = len(LATENCY_BUCKETS) + 1 + len(OUTCOMES)
_TRIPS: Final = _SUM + 1
_HITS: Final = _TRIPS + 1
_MISSES: Final = _HITS + 1
_RETRIES: Final = _MISSES + 1
_WIDTH: Final = _RETRIES + 1
# One script's row: [duration buckets..., duration sum]
_SCRIPT_SUM: Final = len(LATENCY_BUCKETS) + 1

#: The metrics counted here; the others are prometheus-client metric objects.
FAST_METRICS: Final = frozenset(
    {
        "redis_sessions_operations_total",
        "redis_sessions_operation_duration_seconds",
        "redis_sessions_round_trips_total",
        "redis_sessions_cache_hits_total",
        "redis_sessions_cache_misses_total",
        "redis_sessions_version_conflicts_total",
        "redis_sessions_modify_retries_total",
        "redis_sessions_script_duration_seconds",
    }
)
#: The ``le`` labels of the latency buckets, +Inf last
_BOUNDS: Final[tuple[str, ...]] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*LATENCY_BUCKETS, float("inf"))
)


class _Table:
    """One thread's counts: a narrow row per outcome and operation name, a row per script."""

    __slots__ = ("operations", "scripts")

    def __init__(self) -> None:
        self.operations: dict[str, dict[str, list[float]]] = {}
        self.scripts: dict[str, list[float]] = {}

    def add(self, other: _Table) -> None:
        for outcome, rows in list(other.operations.items()):
            _add_rows(self.operations.setdefault(outcome, {}), rows)
        _add_rows(self.scripts, other.scripts)

    def wide(self) -> dict[str, list[float]]:
        """One wide row per operation name (see the layout above)."""
        wide: dict[str, list[float]] = {}
        for outcome, rows in self.operations.items():
            for name, row in rows.items():
                into = wide.setdefault(name, [0.0] * _WIDTH)
                for index in range(_NARROW_SUM):
                    into[index] += row[index]
                into[_OUTCOME[outcome]] += sum(row[:_NARROW_SUM])
                for offset in range(5):  # sum, round trips, hits, misses, retries
                    into[_SUM + offset] += row[_NARROW_SUM + offset]
        return wide


def _add_rows(mine: dict[str, list[float]], theirs: dict[str, list[float]]) -> None:
    for name, row in list(theirs.items()):
        into = mine.setdefault(name, [0.0] * len(row))
        for index, value in enumerate(row):
            into[index] += value


class FastCounts:
    """The hot-path metrics of one registry, counted per thread, summed by :meth:`collect`.

    ``make_others`` makes the prometheus-client metric objects of the remaining metrics (without
    a registry): :attr:`others` holds them (made anew in a forked child), collected here too, in
    :data:`METRICS` order."""

    def __init__(self, make_others: Callable[[], dict[str, Any]]) -> None:
        self._make_others = make_others
        self.others: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._reset()
        _living.add(self)

    def _reset(self) -> None:
        self.others.clear()  # in place: the observers hold this dict
        self.others.update(self._make_others())
        self._local = threading.local()
        #: every thread's table, with its thread (a dead thread's table is added to _retired)
        self._tables: list[tuple[weakref.ref[threading.Thread], _Table]] = []
        self._retired = _Table()
        #: when each labelled series first counted (its ``_created`` sample), by key
        self._created: dict[tuple[str, ...], float] = {}
        self._since = time.time()

    # ------------------------------------------------------------------ the hot path

    def _table(self) -> _Table:
        """This thread's table (made and registered on its first count)."""
        table = _Table()
        self._local.operations, self._local.scripts = table.operations, table.scripts
        with self._lock:
            self._retire()  # a server's threads come and go: keep one table per living thread
            self._tables.append((weakref.ref(threading.current_thread()), table))
        return table

    def _retire(self) -> None:
        """Add the tables of dead threads to ``_retired`` (they count no more: once, for good).
        Under ``_lock``."""
        living = []
        for thread, table in self._tables:
            found = thread()
            if found is None or not found.is_alive():
                self._retired.add(table)
            else:
                living.append((thread, table))
        self._tables = living

    def finish(self, handle: object, result: OperationResult) -> None:
        """Count one operation: outcome, latency, round trips, cache read, retries."""
        try:
            table = self._local.operations
        except AttributeError:
            table = self._table().operations
        rows = table.get(result.outcome)
        if rows is None:
            rows = table[result.outcome] = {}
        name = result.operation
        row = rows.get(name)
        if row is None:  # this thread's first (operation, outcome): when the series began
            row = rows[name] = [0.0] * _NARROW_WIDTH
            self._created.setdefault((name, result.outcome), time.time())
        seconds = result.seconds
        # a cache hit falls in the first bucket: no search for it
        row[0 if seconds <= _FIRST_BUCKET else bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[_NARROW_SUM] += seconds
        trips = result.round_trips
        if trips:
            row[_NARROW_TRIPS] += trips
        hit = result.cache_hit
        if hit is not None:
            row[_NARROW_HITS if hit else _NARROW_MISSES] += 1
        retries = result.retries
        if retries:  # each is a version conflict too (collect adds them to the conflict outcome)
            if not row[_NARROW_RETRIES]:
                self._created.setdefault(("conflict", name), time.time())
            row[_NARROW_RETRIES] += retries

    def script(self, name: str, seconds: float) -> None:
        """Observe one script's latency."""
        try:
            rows = self._local.scripts
        except AttributeError:
            rows = self._table().scripts
        row = rows.get(name)
        if row is None:
            row = rows[name] = [0.0] * (_SCRIPT_SUM + 1)
            self._created.setdefault(("script", name), time.time())
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[_SCRIPT_SUM] += seconds

    # ------------------------------------------------------------------ a scrape

    def _totals(self) -> _Table:
        """Every thread's counts added up (the tables of dead threads retired on the way)."""
        total = _Table()
        with self._lock:
            self._retire()
            for _, table in self._tables:
                total.add(table)
            total.add(self._retired)
        return total

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (for the registry's check of duplicate names)."""
        for info in METRICS:
            if info.name in FAST_METRICS:
                yield _family(info)
            else:
                yield from self.others[info.name].describe()

    def collect(self) -> Iterator[Metric]:
        """Every metric of the store, in :data:`METRICS` order."""
        total = self._totals()
        created = dict(self._created) if prometheus_metrics._use_created else {}
        first: dict[str, float] = {}  # an operation's first series: when its histogram began
        for (operation, outcome), moment in created.items():
            if outcome in _OUTCOME and moment < first.get(operation, moment + 1):
                first[operation] = moment
        operations = sorted(total.wide().items())
        for info in METRICS:
            if info.name not in FAST_METRICS:
                yield from self.others[info.name].collect()
                continue
            family: Any = _family(info)
            name = info.name
            if name == "redis_sessions_operations_total":
                for operation, row in operations:
                    for outcome, index in _OUTCOME.items():
                        if row[index]:
                            when = created.get((operation, outcome))
                            family.add_metric([operation, outcome], row[index], when)
            elif name == "redis_sessions_operation_duration_seconds":
                for operation, row in operations:
                    when = first.get(operation)
                    _histogram(family, operation, row[: len(_BOUNDS)], row[_SUM], when)
            elif name == "redis_sessions_round_trips_total":
                for operation, row in operations:
                    family.add_metric([operation], row[_TRIPS], first.get(operation))
            elif name == "redis_sessions_version_conflicts_total":
                for operation, row in operations:
                    if row[_CONFLICT] or row[_RETRIES]:
                        seen = [(operation, "conflict"), ("conflict", operation)]
                        when = min((created[key] for key in seen if key in created), default=None)
                        family.add_metric([operation], row[_CONFLICT] + row[_RETRIES], when)
            elif name == "redis_sessions_script_duration_seconds":
                for script, row in sorted(total.scripts.items()):
                    when = created.get(("script", script))
                    _histogram(family, script, row[: len(_BOUNDS)], row[_SCRIPT_SUM], when)
            else:  # the label-free counters, there from the start
                index = {
                    "redis_sessions_cache_hits_total": _HITS,
                    "redis_sessions_cache_misses_total": _MISSES,
                    "redis_sessions_modify_retries_total": _RETRIES,
                }[name]
                value = sum(row[index] for _, row in operations)
                family.add_metric(
                    [], value, self._since if prometheus_metrics._use_created else None
                )
            yield family


def _family(info: MetricInfo) -> Any:
    if info.kind == "counter":
        return CounterMetricFamily(info.name, info.help, labels=info.labels)
    return HistogramMetricFamily(info.name, info.help, labels=info.labels)


def _histogram(
    family: Any, label: str, counts: list[float], total: float, when: float | None
) -> None:
    """One child of a histogram family labelled by one label (operation, script): cumulative
    buckets, sum, count, and its ``_created`` sample when ``when`` is known."""
    buckets, running = [], 0.0
    for bound, count in zip(_BOUNDS, counts, strict=True):
        running += count
        buckets.append((bound, running))
    family.add_metric([label], buckets, total)
    if when is not None:
        family.add_sample(family.name + "_created", {family._labelnames[0]: label}, when)


# Every FastCounts of the process, for _after_fork.
_living: weakref.WeakSet[FastCounts] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: every count starts from zero. The child's copies of its parent's numbers
    are its parent's to report (an RQ work horse scraped, or summed with its parent, would count
    them twice), and the parent's other threads do not exist here (nor their lock holds)."""
    for counts in list(_living):
        counts._lock = threading.Lock()
        counts._reset()


register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if register_at_fork is not None:  # not on Windows, which does not fork
    register_at_fork(after_in_child=_after_fork)
