"""``rq cron workers.cron_config``: the sweep's schedule, as ``redis_sessions.worker.cron_config``
makes it (see that module for the environment variables it reads)."""

from redis_sessions.worker.schedule import register_sweep

register_sweep()
