"""``redis-sessions worker``: an RQ worker, with RQ's CronScheduler enqueueing the sweep beside it."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from dataclasses import dataclass
from typing import Any

import redis

logger: logging.Logger = logging.getLogger("redis_sessions.worker")


@dataclass(frozen=True)
class WorkerOptions:
    """What ``redis-sessions worker`` schedules: the sweep of ``prefix`` every ``interval``
    seconds on ``queue_name``, with the job's ``max_age`` and ``batch_size``."""

    prefix: str = "rs"
    queue_name: str = "redis-sessions"
    interval: int = 600
    max_age: dt.timedelta | None = None
    batch_size: int = 100
    ca_file: str | None = None

    def job_kwargs(self) -> dict[str, Any]:
        """The sweep job's keyword arguments."""
        kwargs: dict[str, Any] = {"key_prefix": self.prefix, "batch_size": self.batch_size}
        if self.max_age is not None:
            kwargs["max_age"] = self.max_age.total_seconds()
        if self.ca_file is not None:
            kwargs["ca_file"] = self.ca_file
        return kwargs


def connect(url: str, ca_file: str | None) -> redis.Redis:
    """The worker's connection (redis-py's default retries: the worker outlives blips)."""
    return redis.Redis.from_url(url, **({"ssl_ca_certs": ca_file} if ca_file else {}))


def make_scheduler(connection: redis.Redis, options: WorkerOptions) -> Any:
    """RQ's CronScheduler with the sweep registered every ``options.interval`` seconds."""
    from rq.cron import CronScheduler

    from .jobs import sweep_expired_sessions

    scheduler = CronScheduler(connection=connection)
    scheduler.register(
        sweep_expired_sessions,
        queue_name=options.queue_name,
        kwargs=options.job_kwargs(),
        interval=options.interval,
    )
    return scheduler


def _run_scheduler(url: str, options: WorkerOptions) -> None:
    """The scheduler's own process (it installs signal handlers, so it needs a main thread)."""
    logging.basicConfig(level=logging.INFO)
    make_scheduler(connect(url, options.ca_file), options).start()


def run_worker(url: str, options: WorkerOptions, *, burst: bool) -> None:
    """Work the queue; with ``burst``, enqueue one sweep first and stop when the queue is empty.
    Each sweep is logged (logger ``redis_sessions.worker``, INFO, to stderr unless logging is
    configured otherwise)."""
    from rq import Queue, Worker

    from .jobs import _ensure_logging

    _ensure_logging()
    connection = connect(url, options.ca_file)
    worker = Worker([Queue(options.queue_name, connection=connection)], connection=connection)
    if burst:
        make_scheduler(connection, options).enqueue_jobs()
        worker.work(burst=True)
        return
    scheduler = multiprocessing.get_context("spawn").Process(
        target=_run_scheduler, args=(url, options), name="redis-sessions-cron", daemon=True
    )
    scheduler.start()
    logger.info(
        "sweep of %r scheduled every %d s on queue %r (scheduler pid %s)",
        options.prefix,
        options.interval,
        options.queue_name,
        scheduler.pid,
    )
    try:
        worker.work()
    finally:
        scheduler.terminate()
        scheduler.join(timeout=10)
