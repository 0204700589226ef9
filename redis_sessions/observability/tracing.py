"""OpenTelemetry traces of the store (needs the ``tracing`` extra).

``TracingObserver`` makes one span per store operation, ``redis_sessions.<method>`` (e.g.
``redis_sessions.get_session``), a child of whatever span is current (an HTTP server span), and
current itself while the operation runs, so that the spans of ``opentelemetry-instrumentation-redis``
(:func:`instrument_redis`) nest below it. Its attributes:

================================ ====================================================
``redis_sessions.operation``     the method name
``redis_sessions.outcome``       ok, not_found, conflict, invalid, unavailable, error, cancelled
``redis_sessions.cache_hit``     true / false (absent when the operation reads no cache)
``redis_sessions.round_trips``   requests sent to Redis
``redis_sessions.retries``       modify's attempts after a version conflict
``error.type``                   the exception's class name, when it raised
================================ ====================================================

No span holds a user id, a session id or any content: not even hashed. The Redis spans of the
instrumentation show commands with their arguments replaced by ``?``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._observe import OperationResult
from ._base import ObserverBase

__all__ = ["TracingObserver", "instrument_redis"]

_FAILED = frozenset({"unavailable", "error"})


class TracingObserver(ObserverBase):
    """One span per store operation (see the module docstring), from ``tracer_provider`` (the
    global one unless given)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer: trace.Tracer = trace.get_tracer(
            "redis_sessions", tracer_provider=tracer_provider
        )

    def start(self, operation: str) -> object:
        """Start the operation's span and make it current (until :meth:`finish`)."""
        span = self.tracer.start_span(
            f"redis_sessions.{operation}",
            kind=trace.SpanKind.INTERNAL,
            attributes={"redis_sessions.operation": operation},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return span, token

    def finish(self, handle: object, result: OperationResult) -> None:
        """Describe the operation on its span, end it, and make its parent current again."""
        span, token = _unpack(handle)
        span.set_attribute("redis_sessions.outcome", result.outcome)
        span.set_attribute("redis_sessions.round_trips", result.round_trips)
        span.set_attribute("redis_sessions.retries", result.retries)
        if result.cache_hit is not None:
            span.set_attribute("redis_sessions.cache_hit", result.cache_hit)
        if result.error is not None:
            span.set_attribute("error.type", result.error)
        if result.outcome in _FAILED:
            span.set_status(trace.Status(trace.StatusCode.ERROR, result.error))
        otel_context.detach(token)
        span.end()


def _unpack(handle: object) -> tuple[trace.Span, Any]:
    assert isinstance(handle, tuple)
    span, token = handle
    return span, token


def instrument_redis(
    client: Any = None, tracer_provider: trace.TracerProvider | None = None
) -> None:
    """Turn on ``opentelemetry-instrumentation-redis``: for ``client`` alone (a redis-py client,
    sync or asyncio, e.g. ``store.client``), or for every client when None."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if client is None:
        RedisInstrumentor().instrument(tracer_provider=tracer_provider)
    else:
        RedisInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
