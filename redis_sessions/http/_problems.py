"""One shape for every error: RFC 9457 ``application/problem+json``.

Store errors, the framework's own (validation, unknown route, body too large) and anything
unexpected all become a :class:`Problem`; a traceback never reaches the client (it is logged).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from ..exceptions import (
    CorruptData,
    InvalidInput,
    SessionNotFound,
    SessionStoreError,
    StoreClosed,
    StoreUnavailable,
    VersionConflict,
)

log = logging.getLogger("redis_sessions.http")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "1"
_PATH = re.compile(r"(\$.*?): (.*)", re.DOTALL)
_SPLIT = re.compile(r"; (?=\$)")  # the store joins several problems with "; "


class FieldError(msgspec.Struct, kw_only=True):
    """One invalid field: its JSON path (``$.a.b``, or a parameter's name) and what is wrong."""

    path: str
    message: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []


class HTTPProblem(Exception):
    """Raised by the routes: answered as a problem with this status (and these headers)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = errors or []
        self.headers = headers or {}


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    detail: str | None,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """The problem+json response for ``status``."""
    body = Problem(
        title=title or _TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors or [],
    )
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def not_found(what: str = "session") -> HTTPProblem:
    """404 for a missing resource: a foreign one answers exactly the same."""
    return HTTPProblem(404, f"no such {what}")


def invalid(errors: list[str], detail: str = "invalid input") -> HTTPProblem:
    """422 listing the store's messages (each starting with its JSON path, ``$.field: ...``)."""
    fields = []
    for text in errors:
        found = _PATH.search(text)
        fields.append(
            FieldError(path=found.group(1), message=found.group(2))
            if found
            else FieldError(path="$", message=text)
        )
    return HTTPProblem(422, detail, errors=fields)


def _on_problem(request: Request[Any, Any, Any], exc: HTTPProblem) -> Response[bytes]:
    return problem_response(
        exc.status, exc.detail, title=exc.title, errors=exc.errors, headers=exc.headers
    )


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    errors: list[FieldError] = []
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                path = str(item.get("key") or "$")
                errors.append(FieldError(path=path, message=str(item.get("message", ""))))
    headers = dict(exc.headers or {})
    status = exc.status_code
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(status, None, headers=headers)
    return problem_response(status, str(exc.detail), errors=errors, headers=headers)


def _on_store_error(request: Request[Any, Any, Any], exc: SessionStoreError) -> Response[bytes]:
    if isinstance(exc, InvalidInput):
        text = str(exc)
        if "REQUEST_ID_REUSED" in text:  # the rest names a Redis key
            return problem_response(
                422,
                "the Idempotency-Key was used for another request within the replay window",
                errors=[FieldError(path="Idempotency-Key", message="already used")],
            )
        return _on_problem(request, invalid(_SPLIT.split(text)))
    if isinstance(exc, SessionNotFound):
        return problem_response(404, "no such session")
    if isinstance(exc, VersionConflict):
        return problem_response(409, "another writer changed the session meanwhile; try again")
    if isinstance(exc, (StoreUnavailable, StoreClosed)):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            503, "the session store is unavailable", headers={"Retry-After": RETRY_AFTER}
        )
    if isinstance(exc, CorruptData):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(500, "the stored session is damaged; an operator has to look")
    log.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    return problem_response(503, "the session store failed", headers={"Retry-After": RETRY_AFTER})


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPProblem: _on_problem,
    HTTPException: _on_http_exception,
    SessionStoreError: _on_store_error,
    Exception: _on_unexpected,
}


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


_DESCRIPTIONS = {
    400: "Malformed request: a parameter or body that does not decode (problem+json)",
    401: "Missing, expired or invalid bearer token",
    403: "The token lacks the admin claim this route needs",
    404: "No such resource for this user (another user's answers the same), or an id that is not a UUID",
    409: "Another writer won every retry",
    412: "If-Match did not match the current version",
    413: "Request body over the configured size",
    422: "Invalid input, with the JSON path of every problem",
    503: "Redis unreachable: retry after Retry-After seconds",
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries (problem+json) for these statuses."""
    return {status: _spec(_DESCRIPTIONS[status]) for status in statuses}
