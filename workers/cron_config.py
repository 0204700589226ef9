"""The sweep's schedule, for RQ's CronScheduler: ``rq cron workers.cron_config``.

Settings come from the environment: REDIS_SESSIONS_PREFIX (default ``rs``),
REDIS_SESSIONS_SWEEP_INTERVAL (seconds, default 600), REDIS_SESSIONS_QUEUE (default
``redis-sessions``), and REDIS_SESSIONS_URL for the sessions' Redis when it is not the queue's.
"""

from __future__ import annotations

import os

from rq import cron

from workers.sweeper import DEFAULT_INTERVAL, QUEUE, sweep_expired_sessions

cron.register(
    sweep_expired_sessions,
    queue_name=os.environ.get("REDIS_SESSIONS_QUEUE", QUEUE),
    kwargs={"key_prefix": os.environ.get("REDIS_SESSIONS_PREFIX", "rs")},
    interval=int(os.environ.get("REDIS_SESSIONS_SWEEP_INTERVAL", DEFAULT_INTERVAL)),
)
