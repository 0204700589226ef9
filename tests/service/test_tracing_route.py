"""The service's traces (``create_app(..., tracing=provider)``): each request's HTTP server span,
made by the service (Litestar's OpenTelemetry plugin), holds the store's operation span, which holds
the Redis spans; the server span is named after the route's template, and no span (name or
attribute) holds the session id, the user id or the token. Recorded with the SDK's in-memory
exporter through Litestar's in-process test client, on a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("litestar", reason="the http extra is not installed")
pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")
pytest.importorskip(
    "opentelemetry.instrumentation.asgi", reason="the tracing extra is not installed"
)

from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from redis_sessions import AsyncSessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.http import AuthConfig, create_app
from redis_sessions.observability.tracing import TracingObserver

from .support import SECRET, bearer, token


def traced_app(url: str, provider: TracerProvider, *, tracing: Any = None) -> Any:
    config = StoreConfig(key_prefix=f"ht{uuid.uuid4().hex[:8]}")
    return create_app(
        lambda: AsyncSessionStore.from_url(url, config=config, observer=TracingObserver(provider)),
        AuthConfig(secret=SECRET),
        tracing=provider if tracing is None else tracing,
    )


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def everything_said(span: ReadableSpan) -> str:
    """The span's name and every attribute and event, as exported."""
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    return f"{span.name} {dict(span.attributes or {})} {events}"


def test_request_span_holds_the_operation_span_which_holds_the_redis_spans(
    http_redis: EmbeddedRedis,
) -> None:
    provider, exporter = recording()
    user = f"user-{uuid.uuid4().hex}"
    jwt = token(user)
    missing = uuid.uuid4()
    with TestClient(traced_app(http_redis.url, provider)) as client:
        headers = bearer(jwt)
        created = client.post("/sessions", json={}, headers=headers)
        assert created.status_code == 201
        sid = created.json()["session_id"]
        read = client.get(f"/sessions/{missing}", headers=headers)
        assert read.status_code == 404
        listed = client.get(f"/sessions/{sid}/messages?limit=7", headers=headers)
        assert listed.status_code == 200
        unrouted = client.get(f"/nowhere/{sid}", headers=headers)
        assert unrouted.status_code == 404
    spans = list(exporter.get_finished_spans())
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == [
        "POST /sessions",
        "GET /sessions/{session_id}",
        "GET /sessions/{session_id}/messages",
        "GET",  # no route: the method alone
    ]
    routes = [(s.attributes or {}).get("http.route") for s in servers]
    assert routes[:3] == ["/sessions", "/sessions/{session_id}", "/sessions/{session_id}/messages"]
    assert [(s.attributes or {}).get("http.status_code") for s in servers] == [201, 404, 200, 404]
    expected = [["create_session"], ["get_session"], ["get_messages", "session_exists"]]
    for server, operations in zip(servers, expected, strict=False):
        store_spans = children(spans, server)
        assert [s.name for s in store_spans] == [f"redis_sessions.{op}" for op in operations]
        for store_span in store_spans:
            assert store_span.context is not None and server.context is not None
            assert store_span.context.trace_id == server.context.trace_id
            redis_spans = children(spans, store_span)
            assert all(s.kind == SpanKind.CLIENT for s in redis_spans)
            assert {s.name for s in redis_spans} <= {"EVALSHA", "HGETALL", "HMGET", "SCRIPT LOAD"}
            # Redis spans for its round trips (a fresh server's NOSCRIPT adds a SCRIPT LOAD and a
            # second EVALSHA), none for a cache hit
            trips = (store_span.attributes or {})["redis_sessions.round_trips"]
            assert len(redis_spans) >= trips and (trips == 0) == (redis_spans == [])
    hits = [s for s in spans if (s.attributes or {}).get("redis_sessions.cache_hit") is True]
    assert [s.name for s in hits] == ["redis_sessions.session_exists"]  # the create cached it
    assert children(spans, servers[3]) == []  # no route, no operation
    said = "\n".join(everything_said(s) for s in spans)
    for secret in (sid, str(missing), user, jwt, sid.replace("-", ""), "limit=7"):
        assert secret not in said  # (the query string is not shown either)


def test_no_server_span_without_tracing(http_redis: EmbeddedRedis) -> None:
    provider, exporter = recording()
    with TestClient(traced_app(http_redis.url, provider, tracing=False)) as client:
        assert client.post("/sessions", json={}, headers=bearer(token("ann"))).status_code == 201
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans if s.kind == SpanKind.SERVER] == []
    assert [s.name for s in spans if s.parent is None] == ["redis_sessions.create_session"]


# `serve --tracing` as a worker process builds its app (app_from_env, from the environment serve
# sets), with the global tracer provider the operator configured: in a process of its own, so that
# setting the global provider touches no other test.
SERVE_TRACING = """
import os, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from litestar.testing import TestClient
from redis_sessions.http._cli import app_from_env

with TestClient(app_from_env()) as client:
    sid = client.post("/sessions", json={}).json()["session_id"]
    assert client.get(f"/sessions/{sid}/messages").status_code == 200
by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
for span in by_id.values():
    parent = by_id.get(span.parent.span_id) if span.parent else None
    print(f"{span.name} <- {parent.name if parent else '-'}")
print("ID-FREE" if sid not in repr([dict(s.attributes) for s in by_id.values()]) else "LEAK")
"""


def test_serve_tracing_makes_the_server_span_itself(
    http_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "REDIS_SESSIONS_URL": http_redis.url,
        "REDIS_SESSIONS_PREFIX": f"hs{uuid.uuid4().hex[:8]}",
        "REDIS_SESSIONS_INSECURE_NO_AUTH": "1",
        "REDIS_SESSIONS_TRACING": "1",
        "REDIS_SESSIONS_METRICS": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", SERVE_TRACING],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = set(done.stdout.splitlines())
    assert {
        "POST /sessions <- -",
        "redis_sessions.create_session <- POST /sessions",
        "EVALSHA <- redis_sessions.create_session",
        "GET /sessions/{session_id}/messages <- -",
        "redis_sessions.get_messages <- GET /sessions/{session_id}/messages",
        "ID-FREE",
    } <= lines, done.stdout
