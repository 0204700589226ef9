"""Structured logs: an observer that logs what the store does, and a JSON formatter.

Every record the store and this package log carries ``extra`` fields under stable names: ``event``
(what happened: ``operation``, ``sweep``, ``corrupt_data``, ``late_invalidation``,
``listener_reconnect``, ...) and the event's own fields (``operation``, ``outcome``,
``duration_seconds``, ``round_trips``, ``key``, ``deleted``, ...). No record holds a session's
content; a user id appears only inside a key, where the store names damage.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from .._observe import OperationResult
from ._base import ObserverBase

if TYPE_CHECKING:
    from ..maintenance import SweepReport

__all__ = ["JsonFormatter", "LoggingObserver"]

logger: logging.Logger = logging.getLogger("redis_sessions.observability")

#: The attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class LoggingObserver(ObserverBase):
    """Logs each sweep (INFO: deleted, scanned, kept, duration, per-slot batches), each listener
    reconnection (WARNING), each failed operation (``unavailable`` and ``error`` at WARNING) and,
    at DEBUG, every operation, with stable ``extra`` fields (see the module docstring).

    Damage (corrupt data) is logged by the store itself, once per key; late invalidations too.
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log: logging.Logger = log if log is not None else logger

    def finish(self, handle: object, result: OperationResult) -> None:
        """Log a failed operation (WARNING) or, at DEBUG, any operation."""
        failed = result.outcome in ("unavailable", "error")
        level = logging.WARNING if failed else logging.DEBUG
        if not self.log.isEnabledFor(level):
            return
        self.log.log(
            level,
            "%s: %s in %.6f s, %d round trips",
            result.operation,
            result.outcome,
            result.seconds,
            result.round_trips,
            extra={
                "event": "operation",
                "operation": result.operation,
                "outcome": result.outcome,
                "duration_seconds": result.seconds,
                "round_trips": result.round_trips,
                "cache_hit": result.cache_hit,
                "retries": result.retries,
                "error": result.error,
            },
        )

    def listener_reconnect(self) -> None:
        """Log that the invalidation link was lost (WARNING)."""
        self.log.warning(
            "the invalidation link was lost: the cache is off until the listener is subscribed again",
            extra={"event": "listener_reconnect"},
        )

    def sweep(self, report: SweepReport, batches: int) -> None:
        """Log one sweep (INFO)."""
        self.log.info(
            "sweep%s: %d scanned, %d deleted, %d kept, %d malformed, %d slot batches, %.3f s",
            " (dry run)" if report.dry_run else "",
            report.scanned,
            report.deleted,
            report.kept,
            report.malformed,
            batches,
            report.duration_seconds,
            extra={
                "event": "sweep",
                "dry_run": report.dry_run,
                "scanned": report.scanned,
                "deleted": report.deleted,
                "kept": report.kept,
                "malformed": report.malformed,
                "batches": batches,
                "duration_seconds": report.duration_seconds,
            },
        )


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, then
    every ``extra`` field of the record (values JSON cannot hold are written as text), and
    ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in data:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
