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
from .exceptions import WrongEventLoop


class AsyncSessionStore(_AsyncAPI):
    """Sessions of a tutoring backend in Redis, for asyncio apps. Safe to share across tasks.

    Cancelling an operation leaves no partial session: every write is one atomic script, either
    sent whole or not at all, and the cache entry it touched is evicted.
    """

    is_async = True
    _client_class = redis.asyncio.Redis
    _pool_class = redis.asyncio.ConnectionPool
    _retry_class = Retry
    #: the event loop the store was first used in: its connections and listener live there
    _loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        """Stop the invalidation listener, empty the cache, and close the client if the store made
        it (``from_url``). Every operation after this raises StoreClosed; closing again is fine.

        Called in another event loop than the store's own (that one closed, say), it makes no
        round trip: the listener stops by itself within a second if its loop still runs, and the
        connections, which belong to that loop, are left to it."""
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            self._abandon()
            return
        await self._close()

    def _check_loop(self, op: Any) -> None:
        """Bind the store to the loop of its first operation; refuse any other, with a clear
        error rather than redis.asyncio's "Event loop is closed" from deep inside a read."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is None:
            self._loop = loop
            return
        op.close()
        state = "closed" if self._loop.is_closed() else "still open"
        raise WrongEventLoop(
            f"this AsyncSessionStore belongs to the event loop it was first used in ({state}), "
            "not the one running now: its connections and its listener live there. Make one store "
            "per event loop, inside it (in the app's startup, or in a test's fixture)"
        )

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
