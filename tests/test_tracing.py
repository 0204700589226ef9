"""OpenTelemetry traces: a span per store operation, below the caller's span (an HTTP request's),
with the Redis spans of opentelemetry-instrumentation-redis below it; no id in any of them. Recorded
with the SDK's in-memory exporter, on a real Redis, with the sync and the async store."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")
pytest.importorskip(
    "opentelemetry.instrumentation.redis", reason="the tracing extra is not installed"
)

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from redis_sessions import AsyncSessionStore, InvalidInput, SessionStore, StoreConfig
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.observability.tracing import TracingObserver, instrument_redis

MISSING = "00000000-0000-4000-8000-000000000000"


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def workload_sync(url: str, provider: TracerProvider, user: str) -> None:
    config = StoreConfig(key_prefix=f"tr{uuid.uuid4().hex[:8]}")
    store = SessionStore.from_url(url, config=config, observer=TracingObserver(provider))
    instrument_redis(store.client, provider)
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("POST /sessions"):
            sid = store.create_session(user)
        with tracer.start_as_current_span("GET /sessions/{id}"):
            store.get_session(sid, user)  # a cache hit: no Redis span
            store.get_session(MISSING, user)
            with pytest.raises(InvalidInput):
                store.get_session("nope", user)
    finally:
        store.close()


def workload_async(url: str, provider: TracerProvider, user: str) -> None:
    async def main() -> None:
        config = StoreConfig(key_prefix=f"tr{uuid.uuid4().hex[:8]}")
        store = AsyncSessionStore.from_url(url, config=config, observer=TracingObserver(provider))
        instrument_redis(store.client, provider)
        tracer = provider.get_tracer("test")
        try:
            with tracer.start_as_current_span("POST /sessions"):
                sid = await store.create_session(user)
            with tracer.start_as_current_span("GET /sessions/{id}"):
                # two tasks at once: each span stays in its own task
                await asyncio.gather(store.get_session(sid, user), store.get_session(MISSING, user))
                with pytest.raises(InvalidInput):
                    await store.get_session("nope", user)
        finally:
            await store.aclose()

    asyncio.run(main())


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_operation_spans_nest_between_the_request_and_redis(
    real_server: EmbeddedRedis, flavor: str
) -> None:
    provider, exporter = recording()
    user = f"ada-{uuid.uuid4().hex}@example.com"
    (workload_sync if flavor == "sync" else workload_async)(real_server.url, provider, user)
    spans = list(exporter.get_finished_spans())
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)

    (post,) = by_name["POST /sessions"]
    (create,) = children(spans, post)
    assert create.name == "redis_sessions.create_session"
    attributes: dict[str, Any] = dict(create.attributes or {})
    assert attributes["redis_sessions.operation"] == "create_session"
    assert attributes["redis_sessions.outcome"] == "ok"
    assert attributes["redis_sessions.round_trips"] == 1
    assert "redis_sessions.cache_hit" not in attributes  # a create reads no cache
    # the Redis spans of the instrumentation: EVALSHA (after NOSCRIPT, the script's load and
    # EVALSHA again: the first run of a script on this server)
    scripts = [s.name.split()[0] for s in children(spans, create)]
    assert scripts in (["EVALSHA"], ["EVALSHA", "SCRIPT", "EVALSHA"]), scripts

    (get,) = by_name["GET /sessions/{id}"]
    gets = children(spans, get)
    assert [s.name for s in gets] == ["redis_sessions.get_session"] * 3
    found = {(s.attributes or {})["redis_sessions.outcome"]: s for s in gets}
    assert set(found) == {"ok", "not_found", "invalid"}
    assert (found["ok"].attributes or {})["redis_sessions.cache_hit"] is True
    assert children(spans, found["ok"]) == []  # served from memory
    assert (found["not_found"].attributes or {})["redis_sessions.cache_hit"] is False
    assert [s.name for s in children(spans, found["not_found"])] == ["HGETALL"]
    assert (found["invalid"].attributes or {})["error.type"] == "InvalidInput"
    assert found["invalid"].status.status_code is not StatusCode.ERROR  # the caller's mistake

    # no span, ours or the instrumentation's, names the user or a session
    text = repr([(s.name, dict(s.attributes or {}), s.events) for s in spans])
    assert user not in text and MISSING not in text
    assert "@example.com" not in text


def test_a_failed_operation_marks_its_span_as_an_error() -> None:
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from redis_sessions import StoreUnavailable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider, exporter = recording()
    client = redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    store = SessionStore(
        client, config=StoreConfig(invalidation=False), observer=TracingObserver(provider)
    )
    with pytest.raises(StoreUnavailable):
        store.create_session("alice")
    store.close()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["redis_sessions.outcome"] == "unavailable"
    assert (span.attributes or {})["error.type"] == "StoreUnavailable"
