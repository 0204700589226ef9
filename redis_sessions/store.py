"""The synchronous store, on a redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

import redis
from redis.retry import Retry

from ._shell import run_to_end
from ._sync_api import _SyncAPI


class SessionStore(_SyncAPI):
    """Sessions of a tutoring backend in Redis. Thread-safe; one instance per process is enough.

    Every call is scoped by (session_id, user_id): another user's session behaves exactly like a
    missing one. Each method says how many round trips to Redis it costs; a cache hit costs none.
    Redis being unreachable raises StoreUnavailable, never reads as "not found".
    Its operations are generated from the async store's (``_sync_api``); this class only picks
    the sync redis-py client and how the listener runs (a thread).
    """

    is_async = False
    _client_class = redis.Redis
    _pool_class = redis.ConnectionPool
    _retry_class = Retry

    def close(self) -> None:
        """Stop the invalidation listener, empty the cache, and close the client if the store made
        it (``from_url``). Every operation after this raises StoreClosed; closing again is fine."""
        run_to_end(self._close())

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _spawn(self, listening: Coroutine[Any, Any, None]) -> threading.Thread:
        thread = threading.Thread(
            target=run_to_end, args=(listening,), name="redis-sessions-invalidation", daemon=True
        )
        thread.start()
        return thread

    async def _join_listener(self) -> None:
        self._listener.join(timeout=self.LISTEN_POLL * 5)

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
