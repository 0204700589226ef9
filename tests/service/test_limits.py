"""Limits and outages: a body over the size limit is 413, Redis down is 503 with Retry-After
(never a 404 or a bare 500), and the app's OpenAPI document describes what it can answer."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("litestar", reason="needs the http extra: pip install '.[http]'")

from redis_sessions.embedded import EmbeddedRedis

from .support import Api, serving


def test_a_body_over_the_limit_is_413_and_writes_nothing(http_redis: EmbeddedRedis) -> None:
    with serving(http_redis.url, max_body_bytes=4096) as api:
        sid = api.new_session()
        big = {"role": "user", "text": "x" * 5000}
        reply = api.client.post(f"/sessions/{sid}/messages", json=big, headers=api.alice)
        assert reply.status_code == 413
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert reply.json()["status"] == 413
        fits = {"role": "user", "text": "x" * 3000}
        assert (
            api.client.post(f"/sessions/{sid}/messages", json=fits, headers=api.alice).status_code
            == 201
        )
        with api.store() as store:
            assert [len(m.text) for m in store.get_messages(sid, "alice")] == [3000]


def test_a_context_over_the_store_limit_is_422(api: Api) -> None:
    sid = api.new_session()
    huge = {"session_goal": "x" * 1_100_000}
    reply = api.client.put(f"/sessions/{sid}", json=huge, headers=api.alice)
    assert reply.status_code in (413, 422)
    assert reply.headers["content-type"].startswith("application/problem+json")


def test_redis_down_is_503_with_retry_after() -> None:
    server = EmbeddedRedis().start()
    try:
        with serving(server.url) as api:
            sid = api.new_session()
            server.stop()
            started = time.monotonic()
            replies = [
                api.client.get(f"/sessions/{sid}/messages", headers=api.alice),
                api.client.get("/sessions", headers=api.alice),
                api.client.post("/sessions", json={}, headers=api.alice),
                api.client.post(
                    f"/sessions/{sid}/messages",
                    json={"role": "user", "text": "x"},
                    headers=api.alice,
                ),
                api.client.delete(f"/sessions/{sid}", headers=api.alice),
                api.client.get("/readyz"),
            ]
            for reply in replies:
                assert reply.status_code == 503, reply.text
                assert reply.headers["retry-after"] == "1"
                assert reply.headers["content-type"].startswith("application/problem+json")
                assert "Traceback" not in reply.text and "Error" not in reply.json()["detail"]
            assert time.monotonic() - started < 30
            assert api.client.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_cors_only_for_the_configured_origins(http_redis: EmbeddedRedis) -> None:
    with serving(http_redis.url, cors_origins=["https://tutor.example"]) as api:
        sid = api.new_session()
        preflight = {
            "Origin": "https://tutor.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match, content-type",
        }
        reply = api.client.options(f"/sessions/{sid}", headers=preflight)
        assert reply.status_code in (200, 204)
        assert reply.headers["access-control-allow-origin"] == "https://tutor.example"
        assert "if-match" in reply.headers["access-control-allow-headers"].lower()
        got = api.client.get(
            f"/sessions/{sid}", headers={**api.alice, "Origin": "https://tutor.example"}
        )
        assert "etag" in got.headers["access-control-expose-headers"].lower()
        other = api.client.get(f"/sessions/{sid}", headers={**api.alice, "Origin": "https://evil"})
        assert "access-control-allow-origin" not in other.headers
    with serving(http_redis.url) as api:  # none by default
        reply = api.client.get("/healthz", headers={"Origin": "https://tutor.example"})
        assert "access-control-allow-origin" not in reply.headers
