"""The asyncio store, on ``redis.asyncio`` (``Redis`` or ``cluster.RedisCluster``).

Every operation of :class:`~redis_sessions.SessionStore` is here under the same name and signature,
as a coroutine function, built from the very same definitions (see ``_shell``): the two stores differ
only in the client they hold. The in-process cache never blocks the event loop: it does no I/O, and
its lock guards a few dict operations (the periodic purge of expired entries walks at most
``cache_size`` entries).
"""

from __future__ import annotations

from types import TracebackType

import redis.asyncio
from redis.asyncio.retry import Retry

from ._shell import StoreBase


class AsyncSessionStore(StoreBase):
    """Sessions of a tutoring backend in Redis, for asyncio apps. Safe to share across tasks.

    Cancelling an operation leaves no partial session: every write is one atomic script, either
    sent whole or not at all, and the cache entry it touched is evicted.
    """

    is_async = True
    _client_class = redis.asyncio.Redis
    _pool_class = redis.asyncio.BlockingConnectionPool
    _retry_class = Retry

    async def aclose(self) -> None:
        """Close the client if the store made it (``from_url``)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
