"""Structured logs: the loggers and their stable ``extra`` fields; the JSON formatter."""

from __future__ import annotations

import json
import logging

import pytest

from redis_sessions.observability import JsonFormatter, LoggingObserver

from .conftest import Clock, StoreFactory


def test_a_sweep_is_logged_with_its_numbers_and_slot_batches(
    store_factory: StoreFactory, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_factory(observer=LoggingObserver(), clock=clock)
    for user in ("alice", "bob"):
        store.create_session(user)
    clock.advance(days=31)
    with caplog.at_level(logging.INFO, logger="redis_sessions"):
        report = store.cleanup_expired_sessions()
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "sweep"]
    assert record.name == "redis_sessions.observability"
    fields = {k: getattr(record, k) for k in ("deleted", "scanned", "kept", "dry_run", "batches")}
    slots = {store.keyspace.user_slot(user) for user in ("alice", "bob")}
    assert fields == {
        "deleted": report.deleted,
        "scanned": report.scanned,
        "kept": 0,
        "dry_run": False,
        "batches": len(slots),
    }
    assert report.deleted == 2
    assert record.duration_seconds == report.duration_seconds  # type: ignore[attr-defined]


def test_operations_are_logged_at_debug_and_failures_at_warning(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_factory(observer=LoggingObserver())
    with caplog.at_level(logging.DEBUG, logger="redis_sessions"):
        store.create_session("alice")
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "operation"]
    assert record.levelno == logging.DEBUG
    assert (record.operation, record.outcome, record.round_trips) == (  # type: ignore[attr-defined]
        "create_session",
        "ok",
        1,
    )
    assert "alice" not in record.getMessage()


def test_the_json_formatter_writes_one_object_with_the_extra_fields() -> None:
    record = logging.LogRecord(
        "redis_sessions.core", logging.WARNING, __file__, 1, "corrupt data at %s", ("k",), None
    )
    record.event, record.key = "corrupt_data", "rs:{u:a}:s:1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "corrupt data at k"
    assert (data["level"], data["logger"]) == ("WARNING", "redis_sessions.core")
    assert (data["event"], data["key"]) == ("corrupt_data", "rs:{u:a}:s:1")
    assert data["time"].endswith("+00:00")
    assert "args" not in data and "msg" not in data  # only the extra fields beyond the standard
