"""Re-exports ``redis_sessions.worker.jobs`` (the sweep job) under its older path."""

from redis_sessions.worker.jobs import (
    DEFAULT_INTERVAL,
    LOCK_TIMEOUT,
    QUEUE,
    sweep_expired_sessions,
)

__all__ = ["DEFAULT_INTERVAL", "LOCK_TIMEOUT", "QUEUE", "sweep_expired_sessions"]
