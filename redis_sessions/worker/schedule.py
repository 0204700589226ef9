"""The sweep's schedule as the environment sets it (see ``cron_config`` for the variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .jobs import DEFAULT_INTERVAL, QUEUE, seconds_of, sweep_expired_sessions


def job_kwargs(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The job's keyword arguments that the environment sets (a bad duration raises InvalidInput)."""
    environ = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {"key_prefix": environ.get("REDIS_SESSIONS_PREFIX", "rs")}
    for name, variable in (
        ("max_age", "REDIS_SESSIONS_MAX_AGE"),
        ("ended_max_age", "REDIS_SESSIONS_ENDED_MAX_AGE"),
    ):
        value = environ.get(variable)
        if value:
            seconds_of(value, variable)  # refused here, when the schedule is made
            kwargs[name] = value
    if environ.get("REDIS_SESSIONS_BATCH_SIZE"):
        kwargs["batch_size"] = int(environ["REDIS_SESSIONS_BATCH_SIZE"])
    return kwargs


def register_sweep(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Register the sweep with ``rq.cron.register`` (what a config file for ``rq cron`` does)."""
    from rq import cron

    environ = os.environ if environ is None else environ
    registered: dict[str, Any] = cron.register(
        sweep_expired_sessions,
        queue_name=environ.get("REDIS_SESSIONS_QUEUE", QUEUE),
        kwargs=job_kwargs(environ),
        interval=int(environ.get("REDIS_SESSIONS_SWEEP_INTERVAL", DEFAULT_INTERVAL)),
    )
    return registered
