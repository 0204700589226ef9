"""The sweep as an RQ job.

Run it with the stock tools (``rq worker redis-sessions`` and ``rq cron workers.cron_config``) or with
``redis-sessions worker``. Every argument is a plain value, so the job can be enqueued from anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import msgspec
import redis

from redis_sessions import SessionStore, StoreConfig

logger = logging.getLogger("redis_sessions.worker")

QUEUE = "redis-sessions"
DEFAULT_INTERVAL = 600  # seconds between sweeps
LOCK_TIMEOUT = 900  # seconds a sweep may hold the lock (a longer one just lets another start)


def sweep_expired_sessions(
    *,
    url: str | None = None,
    key_prefix: str = "rs",
    max_age_seconds: float | None = None,
    ended_max_age_seconds: float | None = None,
    batch_size: int = 100,
    now: str | None = None,
) -> dict[str, Any]:
    """Delete expired sessions; returns the SweepReport as a dict (the job result) and logs it.

    The sessions' Redis is ``url``, else ``$REDIS_SESSIONS_URL``, else the connection of the RQ
    worker running the job. ``now`` (ISO-8601 with a timezone) replaces the clock. One sweep runs at
    a time per store: a job that finds another holding the sweep lock returns ``{"skipped": ...}``
    (sweeps are safe to overlap anyway: each session is deleted atomically, after a fresh check).
    """
    connection, owned = _connection(url)
    try:
        defaults = StoreConfig()
        config = StoreConfig(
            key_prefix=key_prefix,
            cache_size=0,  # a sweep reads nothing twice: no cache, so no invalidation listener
            max_age=dt.timedelta(seconds=max_age_seconds) if max_age_seconds else defaults.max_age,
            ended_max_age=dt.timedelta(seconds=ended_max_age_seconds)
            if ended_max_age_seconds
            else None,
        )
        store = SessionStore(connection, config=config)
        moment = dt.datetime.fromisoformat(now) if now else None
        lock = connection.lock(store.keyspace.sweep_lock(), timeout=LOCK_TIMEOUT, blocking=False)
        if not lock.acquire():
            logger.info("sweep skipped: another sweep holds %s", store.keyspace.sweep_lock())
            return {"skipped": f"another sweep holds {store.keyspace.sweep_lock()}"}
        try:
            report = store.cleanup_expired_sessions(now=moment, batch_size=batch_size)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("the sweep lock expired before the sweep ended")
        store.close()
        result: dict[str, Any] = msgspec.to_builtins(report)
        logger.info(
            "sweep of %r: %d scanned, %d deleted, %d kept, %d malformed, %.3f s",
            key_prefix,
            report.scanned,
            report.deleted,
            report.kept,
            report.malformed,
            report.duration_seconds,
        )
        return result
    finally:
        if owned:
            connection.close()


def _connection(url: str | None) -> tuple[redis.Redis, bool]:
    url = url or os.environ.get("REDIS_SESSIONS_URL")
    if url:
        return redis.Redis.from_url(url), True
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("no url given, no $REDIS_SESSIONS_URL, and not running as an RQ job")
    return job.connection, False
