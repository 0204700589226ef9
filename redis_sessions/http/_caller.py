"""Who calls a route, resolved once per request: the query check, the token, the store.

One dependency per route (not a chain of them) keeps Litestar's per-request work small.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.enums import ParamType
from litestar.params import ParameterKwarg

from ..aio import AsyncSessionStore
from ._auth import Authenticator, unauthorized
from ._problems import FieldError, HTTPProblem

__all__ = ["Caller", "CallerDep", "OperatorDep", "caller", "operator"]


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """The token's subject and the store to act on."""

    user: str
    store: AsyncSessionStore


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


async def caller(request: Request[Any, Any, Any]) -> Caller:
    """The authenticated user (the token's ``sub``) and the store; 400 / 401 otherwise."""
    _refuse_unknown_query(request)
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(request.headers.get("authorization"))
    if principal.user_id is None:
        raise unauthorized("the token has no subject (sub)")
    return Caller(principal.user_id, request.app.state.store)


async def operator(request: Request[Any, Any, Any]) -> AsyncSessionStore:
    """The store, for a token with the admin claim; 401 / 403 otherwise."""
    _refuse_unknown_query(request)
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(request.headers.get("authorization"))
    if not principal.is_admin:
        raise HTTPProblem(403, "this route needs the admin claim")
    store: AsyncSessionStore = request.app.state.store
    return store


CallerDep = NamedDependency[Caller]
OperatorDep = NamedDependency[AsyncSessionStore]
