"""RQ jobs of redis-sessions: the expired-session sweep and its schedule.

- ``workers.sweeper.sweep_expired_sessions``: the job (plain arguments, importable by dotted path).
- ``workers.cron_config``: its schedule for RQ's CronScheduler (``rq cron workers.cron_config``).
- ``redis-sessions worker`` runs both: an RQ worker on the queue, and the scheduler beside it.
"""
