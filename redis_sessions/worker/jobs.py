"""The sweep as an RQ job.

Run it with the stock tools (``rq worker redis-sessions`` and ``rq cron
redis_sessions.worker.cron_config``), with ``rq enqueue`` (``rq enqueue -q redis-sessions
redis_sessions.worker.jobs.sweep_expired_sessions max_age=7d batch_size=500``) or with
``redis-sessions worker``. Every argument is a plain value (durations as ``7d``/``12h``/``90m`` text
or seconds), so the job can be enqueued from anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from typing import Any

import msgspec
import redis

from .._durations import parse_duration
from ..config import StoreConfig
from ..exceptions import InvalidInput
from ..store import SessionStore

logger: logging.Logger = logging.getLogger("redis_sessions.worker")

QUEUE = "redis-sessions"
DEFAULT_INTERVAL = 600  # seconds between sweeps
LOCK_TIMEOUT = 900  # seconds a sweep may hold the lock (a longer one just lets another start)
ENV_URL = "REDIS_SESSIONS_URL"
ENV_CA_FILE = "REDIS_SESSIONS_CA_FILE"


def seconds_of(value: str | float | None, name: str) -> float | None:
    """A duration as the command line reads it (``7d``, ``12h``, ``90m``, ``1d12h``, seconds), in
    seconds; None (or "") stays None; anything else raises InvalidInput naming ``name``."""
    if value is None or value == "":
        return None
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}") from exc


def _ensure_logging() -> None:
    """Where nothing configured logging (a stock ``rq worker`` configures only RQ's loggers),
    send this logger's INFO records to stderr, so each sweep is visible in the worker's log."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def sweep_expired_sessions(
    *,
    url: str | None = None,
    key_prefix: str = "rs",
    max_age: str | float | None = None,
    ended_max_age: str | float | None = None,
    batch_size: int | str = 100,
    now: str | None = None,
    max_age_seconds: float | None = None,
    ended_max_age_seconds: float | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Delete expired sessions; returns the SweepReport as a dict (the job result) and logs it
    (logger ``redis_sessions.worker``: sessions deleted, duration, batches, malformed entries; a
    failure is logged with its error and raised, so RQ marks the job failed).

    ``max_age`` / ``ended_max_age``: ``7d``, ``12h``, ``90m``, ``45s`` or seconds (default
    ``StoreConfig.max_age``, 30 days; ended sessions: ``max_age``); ``max_age_seconds`` and
    ``ended_max_age_seconds`` are the older spelling. The sessions' Redis is ``url``, else
    ``$REDIS_SESSIONS_URL``, else the connection of the RQ worker running the job; ``ca_file``
    (else ``$REDIS_SESSIONS_CA_FILE``) verifies a ``rediss://`` server. ``now`` (ISO-8601 with a
    timezone) replaces the clock. One sweep runs at a time per store: a job that finds another
    holding the sweep lock returns ``{"skipped": ...}`` (sweeps are safe to overlap anyway: each
    session is deleted atomically, after a fresh check). Round trips: the lock (2), then the sweep's
    (64 pipelined reads, plus 1 script per slot holding expired sessions, per ``batch_size``).
    """
    _ensure_logging()
    started = time.perf_counter()
    try:
        return _sweep(
            url=url,
            key_prefix=key_prefix,
            max_age=seconds_of(max_age if max_age is not None else max_age_seconds, "max_age"),
            ended_max_age=seconds_of(
                ended_max_age if ended_max_age is not None else ended_max_age_seconds,
                "ended_max_age",
            ),
            batch_size=int(batch_size),
            now=now,
            ca_file=ca_file,
        )
    except Exception as exc:
        logger.error(
            "sweep of %r failed after %.3f s: %s: %s",
            key_prefix,
            time.perf_counter() - started,
            type(exc).__name__,
            exc,
        )
        raise


def _sweep(
    *,
    url: str | None,
    key_prefix: str,
    max_age: float | None,
    ended_max_age: float | None,
    batch_size: int,
    now: str | None,
    ca_file: str | None,
) -> dict[str, Any]:
    connection, owned = _connection(url, ca_file)
    try:
        config = StoreConfig(
            key_prefix=key_prefix,
            cache_size=0,  # a sweep reads nothing twice: no cache, so no invalidation listener
            max_age=dt.timedelta(seconds=max_age) if max_age else StoreConfig().max_age,
            ended_max_age=dt.timedelta(seconds=ended_max_age) if ended_max_age else None,
        )
        store = SessionStore(connection, config=config)
        moment = dt.datetime.fromisoformat(now) if now else None
        lock_key = store.keyspace.sweep_lock()
        lock = connection.lock(lock_key, timeout=LOCK_TIMEOUT, blocking=False)
        if not lock.acquire():
            logger.info("sweep of %r skipped: another sweep holds %s", key_prefix, lock_key)
            return {"skipped": f"another sweep holds {lock_key}"}
        try:
            report = store.cleanup_expired_sessions(now=moment, batch_size=batch_size)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("the sweep lock expired before the sweep ended")
        store.close()
        logger.info(
            "sweep of %r: %d sessions deleted (%d candidates, %d kept, %d malformed entries "
            "removed) in %.3f s, %d batches; max age %.0f s, ended %.0f s",
            key_prefix,
            report.deleted,
            report.scanned,
            report.kept,
            report.malformed,
            report.duration_seconds,
            report.batches,
            report.max_age.total_seconds(),
            report.ended_max_age.total_seconds(),
        )
        result: dict[str, Any] = msgspec.to_builtins(report)
        return result
    finally:
        if owned:
            connection.close()


def _connection(url: str | None, ca_file: str | None) -> tuple[redis.Redis, bool]:
    url = url or os.environ.get(ENV_URL)
    if url:
        options: dict[str, Any] = {}
        ca_file = ca_file or os.environ.get(ENV_CA_FILE)
        if ca_file:
            options["ssl_ca_certs"] = ca_file
        return redis.Redis.from_url(url, **options), True
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError(f"no url given, no ${ENV_URL}, and not running as an RQ job")
    return job.connection, False
