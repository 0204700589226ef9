"""An AsyncSessionStore on each backend (fakeredis and every real redis-server), for the agent
framework integrations, whose APIs are async only. Each test gets its own key prefix and event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import fakeredis
import redis
import redis.asyncio

from redis_sessions import AsyncSessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis

from .backends import Backend
from .conftest import delete_prefix, server_for

T = TypeVar("T")


class AgentStores:
    """Makes AsyncSessionStores of one backend on one event loop; ``run`` runs a coroutine."""

    def __init__(self, backend: Backend, servers: dict[str, EmbeddedRedis]) -> None:
        self.loop = asyncio.new_event_loop()
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.stores: list[AsyncSessionStore] = []
        if backend.real:
            url = server_for(backend, servers).url
            self.client: Any = redis.Redis.from_url(url)
            self.make_client: Callable[[], Any] = lambda: redis.asyncio.Redis.from_url(url)
        else:
            server = fakeredis.FakeServer()
            self.client = fakeredis.FakeRedis(server=server)
            self.make_client = lambda: fakeredis.FakeAsyncRedis(server=server)
        self.clients: list[Any] = []

    def store(self, **config: Any) -> AsyncSessionStore:
        client = self.make_client()
        self.clients.append(client)
        config.setdefault("key_prefix", self.prefix)
        store = AsyncSessionStore(client, config=StoreConfig(**config))
        self.stores.append(store)
        return store

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def close(self) -> None:
        for store in self.stores:
            self.run(store.aclose())
        for client in self.clients:
            self.run(client.aclose())
        delete_prefix(self.client, self.prefix)
        self.client.close()
        self.loop.close()
