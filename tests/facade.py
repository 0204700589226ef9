"""Run an AsyncSessionStore through the sync test bodies: the same assertions prove parity.

Each call of a store method runs its coroutine to completion on the test's own event loop. ``client``
is a sync client on the same server (fakeredis: the same FakeServer), for the tests' raw checks.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from redis_sessions import AsyncSessionStore


class SyncFacade:
    def __init__(
        self, store: AsyncSessionStore, loop: asyncio.AbstractEventLoop, client: Any
    ) -> None:
        object.__setattr__(self, "wrapped", store)
        object.__setattr__(self, "loop", loop)
        object.__setattr__(self, "client", client)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.wrapped, name)
        if not callable(value) or isinstance(value, type):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            return self.loop.run_until_complete(result) if inspect.isawaitable(result) else result

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.wrapped, name, value)

    def close(self) -> None:
        self.loop.run_until_complete(self.wrapped.aclose())

    def __enter__(self) -> SyncFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
