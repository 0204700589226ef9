"""The service's /metrics: the store's operations as the HTTP routes made them, no token needed."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("litestar", reason="the http extra is not installed")
pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from litestar.testing import TestClient

from redis_sessions import AsyncSessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.http import AuthConfig, create_app
from redis_sessions.observability.metrics import PrometheusObserver

from ..test_metrics import Scraped
from .support import SECRET, bearer, token


def test_metrics_count_what_the_routes_did(http_redis: EmbeddedRedis) -> None:
    config = StoreConfig(key_prefix=f"hm{uuid.uuid4().hex[:8]}")
    app = create_app(
        lambda: AsyncSessionStore.from_url(
            http_redis.url, config=config, observer=PrometheusObserver()
        ),
        AuthConfig(secret=SECRET),
        metrics=True,
    )
    ops = "redis_sessions_operations_total"
    with TestClient(app) as client:
        before = Scraped(client.get("/metrics").text)  # no token: for the scraper
        headers = bearer(token("ann"))
        created = client.post("/sessions", json={}, headers=headers)
        assert created.status_code == 201
        sid = created.json()["session_id"]
        assert client.get(f"/sessions/{sid}", headers=headers).status_code == 200
        assert client.get(f"/sessions/{uuid.uuid4()}", headers=headers).status_code == 404
        after = Scraped(client.get("/metrics").text)
    for operation, outcome, count in (
        ("create_session", "ok", 1),
        ("get_session", "not_found", 1),
    ):
        labels = {"operation": operation, "outcome": outcome}
        assert after(ops, **labels) - before(ops, **labels) == count, (operation, outcome)


def test_no_metrics_route_unless_asked(http_redis: EmbeddedRedis) -> None:
    config = StoreConfig(key_prefix=f"hm{uuid.uuid4().hex[:8]}")
    app = create_app(
        lambda: AsyncSessionStore.from_url(http_redis.url, config=config),
        AuthConfig(secret=SECRET),
    )
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
