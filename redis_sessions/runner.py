"""``redis-sessions worker``: an RQ worker, with RQ's CronScheduler enqueueing the sweep beside it."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from typing import Any

import redis

logger: logging.Logger = logging.getLogger("redis_sessions.worker")


def make_scheduler(
    connection: redis.Redis,
    *,
    prefix: str,
    queue_name: str,
    interval: int,
    max_age: dt.timedelta | None,
) -> Any:
    """RQ's CronScheduler with the sweep registered every ``interval`` seconds."""
    from rq.cron import CronScheduler

    from workers.sweeper import sweep_expired_sessions

    kwargs: dict[str, Any] = {"key_prefix": prefix}
    if max_age is not None:
        kwargs["max_age_seconds"] = max_age.total_seconds()
    scheduler = CronScheduler(connection=connection)
    scheduler.register(
        sweep_expired_sessions, queue_name=queue_name, kwargs=kwargs, interval=interval
    )
    return scheduler


def _run_scheduler(url: str, options: dict[str, Any]) -> None:
    """The scheduler's own process (it installs signal handlers, so it needs a main thread)."""
    logging.basicConfig(level=logging.INFO)
    make_scheduler(redis.Redis.from_url(url), **options).start()


def run_worker(
    url: str,
    *,
    prefix: str,
    queue_name: str,
    interval: int,
    max_age: dt.timedelta | None,
    burst: bool,
) -> None:
    """Work the queue; with ``burst``, enqueue one sweep first and stop when the queue is empty."""
    from rq import Queue, Worker

    connection = redis.Redis.from_url(url)
    connection.ping()
    options: dict[str, Any] = {
        "prefix": prefix,
        "queue_name": queue_name,
        "interval": interval,
        "max_age": max_age,
    }
    worker = Worker([Queue(queue_name, connection=connection)], connection=connection)
    if burst:
        make_scheduler(connection, **options).enqueue_jobs()
        worker.work(burst=True)
        return
    scheduler = multiprocessing.get_context("spawn").Process(
        target=_run_scheduler, args=(url, options), name="redis-sessions-cron", daemon=True
    )
    scheduler.start()
    logger.info(
        "sweep scheduled every %d s on queue %r (scheduler pid %s)",
        interval,
        queue_name,
        scheduler.pid,
    )
    try:
        worker.work()
    finally:
        scheduler.terminate()
        scheduler.join(timeout=10)
