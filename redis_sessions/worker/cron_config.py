"""The sweep's schedule, for RQ's CronScheduler: ``rq cron redis_sessions.worker.cron_config``.

Settings come from the environment (read when RQ loads this module):

- ``REDIS_SESSIONS_PREFIX``: the store's key prefix (default ``rs``);
- ``REDIS_SESSIONS_SWEEP_INTERVAL``: seconds between sweeps (default 600);
- ``REDIS_SESSIONS_MAX_AGE`` / ``REDIS_SESSIONS_ENDED_MAX_AGE``: idle time after which a session
  (an ended one) goes: ``30d``, ``12h``, ``90m`` or seconds (default: ``StoreConfig``'s);
- ``REDIS_SESSIONS_BATCH_SIZE``: candidates per slot per script (default 100);
- ``REDIS_SESSIONS_QUEUE``: the queue (default ``redis-sessions``);
- ``REDIS_SESSIONS_URL`` (and ``REDIS_SESSIONS_CA_FILE``): the sessions' Redis when it is not the
  queue's (read by the job when it runs).
"""

from __future__ import annotations

from .schedule import register_sweep

register_sweep()
