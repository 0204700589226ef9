"""The ASGI app: the routes behind bearer-token auth, problem+json errors, OpenAPI and health."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import ParamType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import ParameterKwarg

from ..aio import AsyncSessionStore
from . import _compat, _sessions
from ._auth import AuthConfig, Authenticator, Principal, log, unauthorized
from ._problems import EXCEPTION_HANDLERS, RETRY_AFTER, FieldError, HTTPProblem, responses
from ._schemas import Health

DEFAULT_MAX_BODY = 2 * 1024 * 1024
NO_AUTH_WARNING = (
    "WARNING: authentication is OFF (insecure no-auth development mode): every request acts as "
    "user {user!r}, with admin rights. Never expose this server."
)


async def _principal(request: Request[Any, Any, Any]) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.principal(request.headers.get("authorization"))


async def _user(principal: NamedDependency[Principal]) -> str:
    if principal.user_id is None:
        raise unauthorized("the token has no subject (sub)")
    return principal.user_id


async def _admin(principal: NamedDependency[Principal]) -> bool:
    if not principal.is_admin:
        raise HTTPProblem(403, "this route needs the admin claim")
    return True


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(handler: Any) -> frozenset[str]:
    """The query parameters a route handler declares (``QueryParameter``), cached per handler."""
    names = _QUERY_NAMES.get(id(handler))
    if names is None:
        found = set()
        for name, field in handler.parsed_fn_signature.parameters.items():
            kwarg = field.kwarg_definition
            if isinstance(kwarg, ParameterKwarg) and kwarg.param_type == ParamType.QUERY:
                found.add(kwarg.name or name)
        names = _QUERY_NAMES[id(handler)] = frozenset(found)
    return names


def _refuse_unknown_query(request: Request[Any, Any, Any]) -> None:
    """400 for a query parameter the route does not take (a typo never passes unnoticed)."""
    if request.query_params:
        unknown = set(request.query_params) - _query_names(request.route_handler)
        if unknown:
            raise HTTPProblem(
                400,
                "unknown query parameter",
                errors=[
                    FieldError(path=name, message="not a parameter of this route")
                    for name in sorted(unknown)
                ],
            )


def _store(request: Request[Any, Any, Any]) -> AsyncSessionStore:
    store: AsyncSessionStore = request.app.state.store
    return store


@get("/healthz", summary="The process is up", security=[])
async def healthz() -> Health:
    """Always 200 while the process serves (no token needed)."""
    return Health(status="ok")


@get("/readyz", summary="Redis is reachable", responses=responses(503))
async def readyz(store: NamedDependency[AsyncSessionStore]) -> Health:
    """200 when Redis answers a PING within 2 s, else 503 (no token needed)."""
    try:
        await asyncio.wait_for(store.client.ping(), timeout=2)
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


def create_app(
    store: AsyncSessionStore | Callable[[], AsyncSessionStore],
    auth: AuthConfig,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    close_store: bool | None = None,
) -> Litestar:
    """The HTTP service over ``store`` as an ASGI app (Litestar), checking tokens by ``auth``.

    ``store`` is an AsyncSessionStore, or a callable that makes one when the app starts (on the
    server's event loop: what a multi-worker server needs). ``close_store`` (default: only a store
    the app made) closes it when the app stops. A body over ``max_body_bytes`` answers 413.
    Every error is ``application/problem+json``; the OpenAPI document is at ``/openapi.json``
    and a docs page at ``/docs``.
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
        try:
            yield
        finally:
            if closing:
                await app.state.store.aclose()

    protected = Router(
        path="/",
        route_handlers=[*_sessions.ROUTES, *_compat.ROUTES],
        dependencies={
            "principal": Provide(_principal),
            "user": Provide(_user),
            "admin": Provide(_admin),
        },
        security=[{"BearerToken": []}],
        before_request=_refuse_unknown_query,
    )
    state = State({"authenticator": authenticator})
    if not made_here:
        state.store = store
    return Litestar(
        route_handlers=[protected, healthz, readyz, openapi_json],
        dependencies={"store": Provide(_store, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=state,
        request_max_body_size=max_body_bytes,
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
