"""RQ jobs of redis-sessions: the expired-session sweep and its schedule (needs the ``rq`` package).

- ``redis_sessions.worker.jobs.sweep_expired_sessions``: the job (plain arguments, importable by
  dotted path, so ``rq enqueue`` and any producer can send it).
- ``redis_sessions.worker.cron_config``: its schedule for RQ's CronScheduler
  (``rq cron redis_sessions.worker.cron_config``), set by environment variables.
- ``redis-sessions worker`` (``redis_sessions.worker.runner``) runs both: an RQ worker on the queue,
  and the scheduler beside it.

The store itself never imports this package.
"""
