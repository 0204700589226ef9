"""Deployable entry points for the RQ jobs of redis-sessions, for a checkout of the repository.

The jobs live in the installed package, ``redis_sessions.worker`` (this folder is not in the wheel):
``workers.sweeper`` and ``workers.cron_config`` re-export them, so schedules made with these older
paths keep working. New deployments name ``redis_sessions.worker.jobs.sweep_expired_sessions`` and
``redis_sessions.worker.cron_config``.
"""
