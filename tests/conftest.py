from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import hypothesis
import pytest
import redis
import redis.asyncio

from redis_sessions import AsyncSessionStore, SessionStore, StoreConfig, codec
from redis_sessions.embedded import EmbeddedRedis

from .backends import Backend, all_backends, backend_params, server_params
from .facade import SyncFacade
from .migrate_support import pg_server  # noqa: F401  (PostgreSQL for tests/test_migrate*.py)

# The machines that run the suite are shared and noisy, and a fresh clone builds Hypothesis's
# character tables on the first text() it draws (seconds, once): a property is judged by the examples
# it checks, never by how long drawing or running one took.
hypothesis.settings.register_profile(
    "suite", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("suite")

_servers: dict[str, EmbeddedRedis] = {}


@pytest.fixture(scope="session")
def real_servers() -> Iterator[dict[str, EmbeddedRedis]]:
    """One throwaway redis-server per real backend, started lazily, stopped at the end."""
    yield _servers
    for server in _servers.values():
        server.stop()
    _servers.clear()


def server_for(backend: Backend, servers: dict[str, EmbeddedRedis]) -> EmbeddedRedis:
    assert backend.binary is not None
    if backend.name not in servers:
        servers[backend.name] = EmbeddedRedis(backend.binary).start()
    return servers[backend.name]


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    return b


@pytest.fixture(params=server_params())
def real_backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    return b


@pytest.fixture
def real_server(real_backend: Backend, real_servers: dict[str, EmbeddedRedis]) -> EmbeddedRedis:
    return server_for(real_backend, real_servers)


@pytest.fixture
def real_backend_url(real_server: EmbeddedRedis) -> str:
    return real_server.url


@pytest.fixture
def real_prefix(real_backend_url: str) -> Iterator[str]:
    """A key prefix of the test's own on the real server; what it wrote is deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(real_backend_url)
    delete_prefix(client, name)
    client.close()


class Clock:
    """A settable clock for ``clock=``: time moves only when a test moves it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(backend: Backend, servers: dict[str, EmbeddedRedis]) -> redis.Redis:
    if backend.real:
        return redis.Redis.from_url(server_for(backend, servers).url)
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class StoreMaker:
    """Makes stores of one backend and flavor; the async flavor comes wrapped in a SyncFacade."""

    def __init__(self, backend: Backend, servers: dict[str, EmbeddedRedis]) -> None:
        self.backend = backend
        self.client = make_client(backend, servers)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_client: Any = None
        if backend.flavor == "async":
            self.loop = asyncio.new_event_loop()
            if backend.real:
                self.async_client = redis.asyncio.Redis.from_url(server_for(backend, servers).url)
            else:
                server = self.client.connection_pool.connection_kwargs["server"]
                self.async_client = fakeredis.FakeAsyncRedis(server=server)

    def __call__(self, config: StoreConfig, **options: Any) -> Any:
        if self.loop is None:
            return SessionStore(self.client, config=config, **options)
        store = AsyncSessionStore(self.async_client, config=config, **options)
        return SyncFacade(store, self.loop, self.client)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.async_client.aclose())
            self.loop.close()
        self.client.close()


def shown(record: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A record as Redis holds it, less the bookkeeping the cache leaves out (ttl_until)."""
    return {k: v for k, v in record.items() if k not in codec.BOOKKEEPING_FIELDS}


def data_keys(client: Any, prefix: str, *, match: str = "*") -> set[bytes]:
    """The keys under ``prefix`` (matching ``match`` after ``prefix:``), less the replay keys of
    writes (``...:req:<id>``), each of which must expire by itself within the replay window."""
    keys = set(client.scan_iter(match=f"{prefix}:{match}", count=1000))
    replay = {key for key in keys if b":req:" in key}
    for key in replay:
        assert 0 < client.pttl(key) <= 60_000, f"replay key {key!r} does not expire"
    return keys - replay


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


StoreFactory = Callable[..., SessionStore]


@pytest.fixture
def store_factory(
    backend: Backend, real_servers: dict[str, EmbeddedRedis]
) -> Iterator[StoreFactory]:
    """Makes stores of this test's backend and flavor (sync, or async behind a SyncFacade), each
    under its own key prefix; closes them and deletes their keys after."""
    prefixes: list[str] = []
    stores: list[Any] = []
    maker = StoreMaker(backend, real_servers)

    def factory(**options: Any) -> SessionStore:
        config_options = {
            k: options.pop(k) for k in list(options) if k in StoreConfig.__dataclass_fields__
        }
        config_options.setdefault("key_prefix", f"t{uuid.uuid4().hex[:10]}")
        prefixes.append(config_options["key_prefix"])
        store: SessionStore = maker(StoreConfig(**config_options), **options)
        stores.append(store)
        return store

    yield factory
    for made in stores:  # stops their invalidation listeners
        made.close()
    for prefix in prefixes:
        delete_prefix(maker.client, prefix)
    maker.close()


@pytest.fixture
def store(store_factory: StoreFactory, clock: Clock) -> SessionStore:
    return store_factory(clock=clock)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "backends: " + ", ".join(b.name for b in all_backends()) + " (each: sync and async store)"
    ]


@pytest.fixture(params=[pytest.param(b, id=b.name) for b in all_backends()])
def agent_stores(request: pytest.FixtureRequest, real_servers: dict[str, EmbeddedRedis]) -> Any:
    """AsyncSessionStores on each backend for the agent framework integrations (tests/agent_stores.py)."""
    from .agent_stores import AgentStores

    stores = AgentStores(request.param, real_servers)
    yield stores
    stores.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The skipped tests counted by reason, and the servers this machine could not test on: a test
    that cannot run here is never silently absent."""
    from .backends import missing_backends

    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    missing = missing_backends()
    if not reasons and not missing:
        return
    terminalreporter.section("skipped tests by reason")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{count:6d}  {reason}")
    total = sum(reasons.values())
    terminalreporter.write_line(f"{total:6d}  skipped in all")
    for name, why in missing.items():
        terminalreporter.write_line(f"  not in the backend table: {name}: {why}")
