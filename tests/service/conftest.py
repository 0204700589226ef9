"""Fixtures of the HTTP service tests. Each test module skips itself (with the reason) when the
``http`` extra is not installed; nothing here imports it at collection time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from redis_sessions.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from .support import Api


@pytest.fixture(scope="session")
def http_redis() -> Iterator[EmbeddedRedis]:
    """A throwaway redis-server for the HTTP tests (a free port; never 6379)."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


@pytest.fixture
def api(http_redis: EmbeddedRedis) -> Iterator[Api]:
    """The app with HS256 tokens and the admin claim ``role=service_role``."""
    from .support import serving

    with serving(http_redis.url) as served:
        yield served
