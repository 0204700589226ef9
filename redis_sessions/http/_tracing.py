"""The service's OpenTelemetry wiring (``create_app(..., tracing=...)``, ``serve --tracing``).

Each request gets its HTTP server span from Litestar's OpenTelemetry plugin (built on
``opentelemetry-instrumentation-asgi``); the store's operation spans (``redis_sessions.<method>``,
from the store's TracingObserver) nest below it, and the Redis command spans of
``opentelemetry-instrumentation-redis`` below those.

No span may hold a session or user id, and the request's path holds the session id
(``/sessions/3f1c...``): the instrumentation is shown the request without its path and query
string (so ``http.target``, ``http.url``, ``url.path`` and ``url.query`` carry neither), and once
the request is routed its span is named after the route's template, ``GET /sessions/{session_id}``,
which is also its ``http.route``. A request that matches no route keeps the name of its method.
Request and response headers are not recorded (the instrumentation's default): the token is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.plugins.opentelemetry import (
    OpenTelemetryConfig,
    OpenTelemetryInstrumentationMiddleware,
)
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

if TYPE_CHECKING:
    from litestar.middleware.base import DefineMiddleware
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["name_span_after_route", "server_span_middleware"]

_REAL_SCOPE = "redis_sessions.real_scope"


class _PathlessTelemetry(OpenTelemetryInstrumentationMiddleware):
    """Litestar's OpenTelemetry middleware, shown each request without its path and query string;
    the app below it gets the request as it came."""

    def __init__(self, app: ASGIApp, config: OpenTelemetryConfig) -> None:
        async def real(scope: Scope, receive: Receive, send: Send) -> None:
            await app(scope[_REAL_SCOPE], receive, send)  # type: ignore[literal-required]

        super().__init__(app=real, config=config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shown: Any = {**scope, "path": "", "raw_path": b"", "query_string": b"", _REAL_SCOPE: scope}
        await self.open_telemetry_middleware(shown, receive, send)  # type: ignore[arg-type]


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's name before routing: the method alone (the path is not shown)."""
    return str(scope.get("method") or scope.get("type") or "HTTP"), {}


def server_span_middleware(tracer_provider: trace.TracerProvider | None = None) -> DefineMiddleware:
    """The middleware making each request's server span (Litestar's OpenTelemetry plugin takes
    it from the app's middleware), from ``tracer_provider`` (the global one unless given)."""
    config = OpenTelemetryConfig(
        tracer_provider=tracer_provider,
        scope_span_details_extractor=_span_details,
        exclude_spans=["receive", "send"],  # the ASGI messages' own spans: noise here
        middleware_class=_PathlessTelemetry,
    )
    return config.middleware


def name_span_after_route(app: ASGIApp) -> ASGIApp:
    """A route's middleware: the current span (the request's server span) is named after the
    route's template, ``GET /sessions/{session_id}``, its ``http.route`` that template."""

    async def named(scope: Scope, receive: Receive, send: Send) -> None:
        template = scope.get("path_template")
        if template:
            span = trace.get_current_span()
            span.update_name(f"{scope.get('method') or scope['type']} {template}")
            span.set_attribute(HTTP_ROUTE, template)
        await app(scope, receive, send)

    return named
