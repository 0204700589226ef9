"""The asyncio store, on ``redis.asyncio`` (``Redis`` or ``cluster.RedisCluster``).

Every operation of :class:`~redis_sessions.SessionStore` is here under the same name and signature,
as a coroutine method (``_async_api``, from which the sync ones are generated): the two stores differ
only in the client they hold and how their listener runs (a task here). The in-process cache never blocks the event loop: it does no I/O, and
its lock guards a few dict operations (the periodic purge of expired entries walks at most
``cache_size`` entries).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry

from ._async_api import _AsyncAPI


class AsyncSessionStore(_AsyncAPI):
    """Sessions of a tutoring backend in Redis, for asyncio apps. Safe to share across tasks.

    Cancelling an operation leaves no partial session: every write is one atomic script, either
    sent whole or not at all, and the cache entry it touched is evicted.
    """

    is_async = True
    _client_class = redis.asyncio.Redis
    _pool_class = redis.asyncio.ConnectionPool
    _retry_class = Retry

    async def aclose(self) -> None:
        """Stop the invalidation listener, empty the cache, and close the client if the store made
        it (``from_url``). Every operation after this raises StoreClosed; closing again is fine."""
        await self._close()

    def _sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        return asyncio.sleep(seconds)

    def _spawn(self, listening: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(listening, name="redis-sessions-invalidation")

    async def _join_listener(self) -> None:
        task: asyncio.Task[None] = self._listener
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.LISTEN_POLL * 5)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
