"""The synchronous store, on a redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``)."""

from __future__ import annotations

from types import TracebackType

import redis
from redis.retry import Retry

from ._shell import StoreBase


class SessionStore(StoreBase):
    """Sessions of a tutoring backend in Redis. Thread-safe; one instance per process is enough.

    Every call is scoped by (session_id, user_id): another user's session behaves exactly like a
    missing one. Each method says how many round trips to Redis it costs; a cache hit costs none.
    Redis being unreachable raises StoreUnavailable, never reads as "not found".
    The operations are those of ``StoreBase``; this class only picks the sync redis-py client.
    """

    is_async = False
    _client_class = redis.Redis
    _pool_class = redis.BlockingConnectionPool
    _retry_class = Retry

    def close(self) -> None:
        """Close the client if the store made it (``from_url``)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
