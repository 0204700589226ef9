"""The ASGI app: the routes behind bearer-token auth, problem+json errors, OpenAPI and health."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from ..aio import AsyncSessionStore
from . import _compat, _sessions
from ._auth import AuthConfig, Authenticator, log
from ._caller import caller, operator
from ._problems import EXCEPTION_HANDLERS, RETRY_AFTER, HTTPProblem, responses
from ._schemas import Health

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

DEFAULT_MAX_BODY = 2 * 1024 * 1024
NO_AUTH_WARNING = (
    "WARNING: authentication is OFF (insecure no-auth development mode): every request acts as "
    "user {user!r}, with admin rights. Never expose this server."
)


def _store(request: Request[Any, Any, Any]) -> AsyncSessionStore:
    store: AsyncSessionStore = request.app.state.store
    return store


@get("/healthz", summary="The process is up", security=[])
async def healthz() -> Health:
    """Always 200 while the process serves (no token needed)."""
    return Health(status="ok")


@get("/readyz", summary="Redis is reachable", responses=responses(503))
async def readyz(request: Request[Any, Any, Any]) -> Health:
    """200 when Redis answers a PING within 2 s, else 503 (no token needed). One round trip."""
    try:
        await asyncio.wait_for(_store(request).client.ping(), timeout=2)
    except Exception as exc:
        raise HTTPProblem(
            503, "Redis is not reachable", headers={"Retry-After": RETRY_AFTER}
        ) from exc
    return Health(status="ready")


@get("/openapi.json", include_in_schema=False, media_type="application/json")
async def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The app's OpenAPI document."""
    cached: bytes | None = request.app.state.get("openapi_bytes")
    if cached is None:
        import msgspec

        cached = msgspec.json.encode(request.app.openapi_schema.to_schema())
        request.app.state.openapi_bytes = cached
    return Response(cached, media_type="application/json")


def _metrics_mount() -> Any:
    """``/metrics`` (prometheus-client's ASGI app) as a Litestar mount."""
    from litestar import asgi
    from litestar.types import Receive, Scope, Send

    from ..observability.metrics import metrics_app

    scrape = metrics_app()

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        await scrape(scope, receive, send)

    return asgi("/metrics", is_mount=True, copy_scope=True)(metrics)


def create_app(
    store: AsyncSessionStore | Callable[[], AsyncSessionStore],
    auth: AuthConfig,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    close_store: bool | None = None,
    cors_origins: Sequence[str] = (),
    metrics: bool = False,
    tracing: bool | TracerProvider = False,
) -> Litestar:
    """The HTTP service over ``store`` as an ASGI app (Litestar), checking tokens by ``auth``.

    ``store`` is an AsyncSessionStore, or a callable that makes one when the app starts (on the
    server's event loop: what a multi-worker server needs). ``close_store`` (default: only a store
    the app made) closes it when the app stops. A body over ``max_body_bytes`` answers 413.
    Every error is ``application/problem+json``; the OpenAPI document is at ``/openapi.json``
    and a docs page at ``/docs``. ``metrics``: Prometheus metrics at ``/metrics``, without a token
    (for the scraper, inside the network; needs the ``metrics`` extra, and the store made with a
    ``PrometheusObserver`` for the store's own metrics). ``tracing`` (True: the global tracer
    provider; or a TracerProvider; needs the ``tracing`` extra): each request's HTTP server span,
    named after its route (``GET /sessions/{session_id}``: no path, no id), and the Redis spans of
    the store's client below the store's operation spans (for those, make the store with a
    ``TracingObserver`` of the same provider). See ``redis_sessions.http._tracing``.
    """
    authenticator = Authenticator(auth)
    made_here = callable(store) and not isinstance(store, AsyncSessionStore)
    closing = made_here if close_store is None else close_store

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if auth.insecure_no_auth:
            message = NO_AUTH_WARNING.format(user=auth.dev_user)
            log.warning(message)
            print(message, file=sys.stderr, flush=True)
        if made_here:
            assert callable(store)
            app.state.store = store()
        if tracing:
            from ..observability.tracing import instrument_redis

            instrument_redis(app.state.store.client, provider)
        try:
            yield
        finally:
            if closing:
                await app.state.store.aclose()

    protected = Router(
        path="/",
        route_handlers=[*_sessions.ROUTES, *_compat.ROUTES],
        dependencies={"caller": Provide(caller), "operator": Provide(operator)},
        security=[{"BearerToken": []}],
    )
    state = State({"authenticator": authenticator})
    if not made_here:
        state.store = store
    handlers: list[Any] = [protected, healthz, readyz, openapi_json]
    if metrics:
        handlers.append(_metrics_mount())
    middleware: list[Any] = []
    provider = None if isinstance(tracing, bool) else tracing
    if tracing:
        from ._tracing import name_span_after_route, server_span_middleware

        middleware = [server_span_middleware(provider), name_span_after_route]
    return Litestar(
        route_handlers=handlers,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=middleware,
        state=state,
        request_max_body_size=max_body_bytes,
        cors_config=CORSConfig(
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key"],
            expose_headers=["ETag", "Location", "Retry-After"],
        )
        if cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="redis-sessions",
            version="1",
            description="Tutoring sessions over HTTP: every route but the health checks needs "
            "`Authorization: Bearer <JWT>`; the user is the token's `sub`.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
        ),
        debug=False,
    )
